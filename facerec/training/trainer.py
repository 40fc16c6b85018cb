"""Training a face ViT with a margin softmax (CosFace by default), resumable per epoch.

Recipe: AdamW (no decay on norms, biases, tokens: timm's parameter grouping), linear warm-up then
cosine decay stepped per iteration (timm's CosineLRScheduler), albumentations augmentation, and
CosFace s=64, m=0.35 (the GS-LoRA paper's head). Each epoch is seeded from ``(seed, epoch)``
(shuffle order, augmentation and dropout), so a run resumed from its last checkpoint continues
exactly as if it had not stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facerec.core.compat import import_timm
from facerec.data.transforms import AugmentedFaces, to_tensor, train_augmentation
from facerec.core.atomic import atomic_write_with
from facerec.models import MARGINS
from facerec.core.progress import progress_bar
from facerec.training.recipe import TrainConfig as TrainConfig



@dataclass
class TrainResult:
    epochs_run: int  # epochs trained in this call (less than cfg.epochs after a resume)
    resumed_from: int  # completed epochs found in the checkpoint, 0 for a fresh start
    final_loss: float
    seconds: float


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def optimizer_and_schedule(model: torch.nn.Module, cfg, steps_per_epoch: int):
    """AdamW with timm's parameter groups (no decay on norms, biases, tokens) and a linear warm-up
    then cosine decay stepped per iteration. ``cfg`` needs ``lr``, ``min_lr``, ``weight_decay``,
    ``warmup_epochs`` and ``epochs`` (``TrainConfig``, the distillation recipe's config)."""
    import_timm()
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    optimizer = create_optimizer_v2(model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = CosineLRScheduler(
        optimizer, t_initial=cfg.epochs * steps_per_epoch, lr_min=cfg.min_lr,
        warmup_t=int(cfg.warmup_epochs * steps_per_epoch), warmup_lr_init=cfg.lr * 0.01, t_in_epochs=False,
    )
    return optimizer, scheduler


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 128) -> np.ndarray:
    """Top-1 identity of each image: argmax of the head's cosines (no margin, all rows intact)."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        cosines = model(to_tensor(images[start:start + batch_size]).to(device))
        out.append(cosines.argmax(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def top1_accuracy(model, images: np.ndarray, labels: np.ndarray, device: torch.device) -> float:
    """Fraction of ``images`` whose predicted identity equals ``labels``."""
    if len(images) == 0:
        return float("nan")
    return float((predict(model, images, device) == labels).mean())


def train_model(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    cfg: TrainConfig,
    *,
    device: torch.device,
    state_path: str | Path | None = None,
    fingerprint: str = "",
    show_progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place on in-memory crops.

    Args:
        images: ``(N, 112, 112, 3)`` uint8 RGB training crops.
        labels: ``(N,)`` identity indices into the model's head.
        state_path: where the per-epoch resume checkpoint lives; if it holds a checkpoint with the
            same ``fingerprint``, training continues after its last completed epoch.
        fingerprint: identifies the run (model, data, config); a checkpoint of another run is ignored.
    """
    if cfg.margin not in MARGINS:
        raise ValueError(f"unknown margin {cfg.margin!r}; choose one of {sorted(MARGINS)}")
    margin = MARGINS[cfg.margin]
    model.to(device)
    batch_size = min(cfg.batch_size, len(images))
    steps_per_epoch = max(1, len(images) // batch_size)
    optimizer, scheduler = optimizer_and_schedule(model, cfg, steps_per_epoch)
    start_epoch = load_state(state_path, fingerprint, model, optimizer, scheduler)
    transform = train_augmentation() if cfg.augment else None
    dataset = AugmentedFaces(images, labels, transform)
    use_amp = device.type == "cuda"

    t0 = time.perf_counter()
    loss_value = float("nan")
    bar = progress_bar(cfg.epochs * steps_per_epoch, "train", enabled=show_progress, unit="step")
    bar.update(start_epoch * steps_per_epoch)
    for epoch in range(start_epoch, cfg.epochs):
        seed = epoch_seed(cfg.seed, epoch)
        torch.manual_seed(seed)  # dropout / stochastic depth
        if transform is not None:
            transform.set_random_seed(seed)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=True, drop_last=True,
            generator=torch.Generator().manual_seed(seed),
        )
        model.train()
        for step, (x, y) in enumerate(loader):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                cosines = model(x)
            loss = F.cross_entropy(margin(cosines.float(), y), y)
            optimizer_step(model, optimizer, scheduler, loss, epoch * steps_per_epoch + step + 1)
            loss_value = loss.item()
            bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss_value:.3f}", refresh=False)
            bar.update(1)
        if state_path is not None:
            save_state(state_path, fingerprint, epoch + 1, model, optimizer, scheduler)
    bar.close()
    return TrainResult(cfg.epochs - start_epoch, start_epoch, loss_value, time.perf_counter() - t0)


def optimizer_step(model: torch.nn.Module, optimizer, scheduler, loss: torch.Tensor, global_step: int) -> None:
    """The step both training loops take (``train_model`` and the distillation recipe): backward,
    gradients clipped at norm 5 (a ViT's early steps under a margin loss spike), the optimizer,
    then the per-step warmup-cosine schedule (timm's ``step_update``)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    scheduler.step_update(global_step)


def save_state(path, fingerprint, epoch, model, optimizer, scheduler) -> None:
    state = {"fingerprint": fingerprint, "epoch": epoch, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    atomic_write_with(path, lambda tmp: torch.save(state, tmp))


def load_state(path, fingerprint, model, optimizer, scheduler) -> int:
    """Restore a matching checkpoint; returns the number of completed epochs (0 if none)."""
    if path is None or not Path(path).exists():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle objects
    except Exception:  # a corrupt or foreign file: start over rather than fail
        return 0
    if state.get("fingerprint") != fingerprint:
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"])
