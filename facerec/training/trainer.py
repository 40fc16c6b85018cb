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
from facerec.data.transforms import ArrayFaces, AugmentedFaces, to_tensor, train_augmentation
from facerec.core.atomic import atomic_write_with
from facerec.core.errors import FaceRecError
from facerec.models import MARGINS
from facerec.core.progress import progress_bar
from facerec.training.distributed import SINGLE, EpochSampler, World, per_rank_batch, wrap
from facerec.training.recipe import CLIP_NORM, TrainConfig as TrainConfig
from facerec.training.sharded import head_state, load_head_state, restore_head, sharded_head, sharded_step



@dataclass
class TrainResult:
    epochs_run: int  # epochs trained in this call (less than cfg.epochs after a resume)
    resumed_from: int  # completed epochs found in the checkpoint, 0 for a fresh start
    final_loss: float
    seconds: float
    unreadable: int = 0  # samples that could not be decoded, each time one was drawn (left out of the loss)


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
    images,
    labels: np.ndarray | None,
    cfg: TrainConfig,
    *,
    device: torch.device,
    state_path: str | Path | None = None,
    fingerprint: str = "",
    show_progress: bool = True,
    world: World = SINGLE,
    workers: int = 0,
    max_steps: int | None = None,
    per_sample_seeds: bool | None = None,
) -> TrainResult:
    """Train ``model`` in place.

    Args:
        images: ``(N, 112, 112, 3)`` uint8 RGB training crops with ``labels`` ``(N,)`` identity
            indices into the model's head, or a sample source (``labels`` None) whose ``[i]``
            decodes sample i on demand (``facerec.data.streaming``): memory then holds its index
            and the batches in flight, whatever the dataset's size.
        state_path: where the per-epoch resume checkpoint lives; if it holds a checkpoint with the
            same ``fingerprint``, training continues after its last completed epoch.
        fingerprint: identifies the run (model, data, config); a checkpoint of another run is ignored.
        world: the processes training together (``training.distributed``); rank 0 alone writes the
            checkpoint and shows progress. ``cfg.batch_size`` is the global batch.
        workers: DataLoader processes decoding and augmenting samples (0: in this process).
        max_steps: stop after this many steps of this call (benchmarks and smoke runs; no checkpoint
            is written for the cut epoch).
        per_sample_seeds: seed augmentation per sample (``AugmentedFaces``); None: when there are
            loader workers or several processes, which then augment as one process with it would.
    """
    if cfg.margin not in MARGINS:
        raise ValueError(f"unknown margin {cfg.margin!r}; choose one of {sorted(MARGINS)}")
    margin = MARGINS[cfg.margin]
    source = ArrayFaces(images, labels) if labels is not None else images
    model.to(device)
    batch_size = min(cfg.batch_size, len(source) - len(source) % world.size)
    local_batch = per_rank_batch(batch_size, world)
    steps_per_epoch = max(1, len(source) // batch_size)
    head, set_aside = sharded_head(model, cfg, world)
    trunk = wrap(model, world, device, sum_gradients=head is not None)
    optimizer, scheduler = optimizer_and_schedule(model, cfg, steps_per_epoch)
    head_opt = optimizer_and_schedule(head, cfg, steps_per_epoch) if head is not None else None
    start_epoch = resume(state_path, fingerprint, model, optimizer, scheduler, world, head, head_opt)
    transform = train_augmentation() if cfg.augment else None
    per_sample = per_sample_seeds if per_sample_seeds is not None else bool(workers) or world.size > 1
    dataset = AugmentedFaces(source, transform, per_sample=per_sample)
    use_amp = device.type == "cuda"
    unreadable = steps_run = 0

    t0 = time.perf_counter()
    loss_value = float("nan")
    bar = progress_bar(cfg.epochs * steps_per_epoch, "train", enabled=show_progress and world.main, unit="step")
    bar.update(start_epoch * steps_per_epoch)
    for epoch in range(start_epoch, cfg.epochs):
        seed = epoch_seed(cfg.seed, epoch)
        torch.manual_seed(seed)  # dropout / stochastic depth
        dataset.set_epoch(seed)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=local_batch, sampler=EpochSampler(len(source), batch_size, seed, world),
            drop_last=True, num_workers=workers, worker_init_fn=_quiet_worker if workers else None,
        )
        model.train()
        for step, (x, y) in enumerate(loader):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            unreadable += int((y < 0).sum())
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = trunk(x)
            if head is None:
                loss = F.cross_entropy(margin(out.float(), y), y, ignore_index=-1) if (y >= 0).any() \
                    else out.sum() * 0  # the mean over readable samples (none readable: nothing to learn)
                optimizer_step(model, optimizer, scheduler, loss, epoch * steps_per_epoch + step + 1)
            else:
                loss = head.loss(out.float(), y, margin)
                sharded_step(model, head, (optimizer, scheduler), head_opt, loss, epoch * steps_per_epoch + step + 1)
            loss_value = loss.item()
            bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", loss=f"{loss_value:.3f}", refresh=False)
            bar.update(1)
            steps_run += 1
            if max_steps is not None and steps_run >= max_steps:
                break
        if max_steps is not None and steps_run >= max_steps:
            break
        if state_path is not None:
            checkpoint(state_path, fingerprint, epoch + 1, model, optimizer, scheduler, world, head, head_opt)
    bar.close()
    if head is not None:
        restore_head(model, head, set_aside)
    return TrainResult(cfg.epochs - start_epoch, start_epoch, loss_value, time.perf_counter() - t0, unreadable)


def _quiet_worker(_: int) -> None:
    """A loader worker decodes with one OpenCV thread: the workers are the parallelism."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def optimizer_step(model: torch.nn.Module, optimizer, scheduler, loss: torch.Tensor, global_step: int) -> None:
    """The step both training loops take (``train_model`` and the distillation recipe): backward,
    gradients clipped at norm 5 (a ViT's early steps under a margin loss spike), the optimizer,
    then the per-step warmup-cosine schedule (timm's ``step_update``)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
    optimizer.step()
    scheduler.step_update(global_step)


def checkpoint(path, fingerprint, epoch, model, optimizer, scheduler, world: World = SINGLE, head=None,
               head_opt=None) -> None:
    """The resume checkpoint after ``epoch`` completed epochs, written by rank 0 alone (a sharded
    head's slices and their optimizer moments are gathered to it first)."""
    extra = {"world_size": world.size}
    if head is not None:
        extra["head"] = head_state(head, head_opt)
    if world.main:
        save_state(path, fingerprint, epoch, model, optimizer, scheduler, extra)


def save_state(path, fingerprint, epoch, model, optimizer, scheduler, extra: dict | None = None) -> None:
    state = {"fingerprint": fingerprint, "epoch": epoch, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **(extra or {})}
    atomic_write_with(path, lambda tmp: torch.save(state, tmp))


def resume(path, fingerprint, model, optimizer, scheduler, world: World = SINGLE, head=None, head_opt=None) -> int:
    """Completed epochs of a matching checkpoint, restored on every rank (each reads the file: the
    workspace must be on storage every rank sees); 0 to start fresh.

    Raises:
        FaceRecError: the checkpoint was written by another number of processes, or the ranks do
            not all see the same checkpoint.
    """
    state = read_state(path, fingerprint)
    epoch = int(state["epoch"]) if state else 0
    if world.backend is not None:
        import torch.distributed as dist

        seen = torch.tensor([epoch, -epoch], device="cuda" if world.backend == "nccl" else "cpu")
        dist.all_reduce(seen, op=dist.ReduceOp.MAX)
        if int(seen[0]) != -int(seen[1]):
            raise FaceRecError(f"the ranks see different checkpoints in {path} (epochs {-int(seen[1])} to "
                               f"{int(seen[0])}): put the workspace on storage every node shares")
    if not state:
        return 0
    saved = int(state.get("world_size", 1))
    if saved != world.size:
        raise FaceRecError(f"{path} holds an unfinished run of {saved} process(es); resume it with {saved} "
                           f"(torchrun --nproc_per_node ...), or pass --restart to start over with {world.size}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if head is not None:
        load_head_state(head, head_opt, state["head"])
    return epoch


def read_state(path, fingerprint) -> dict | None:
    """The checkpoint in ``path`` when it is this run's (same fingerprint), else None."""
    if path is None or not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle objects
    except Exception:  # a corrupt or foreign file: start over rather than fail
        return None
    return state if isinstance(state, dict) and state.get("fingerprint") == fingerprint else None


def load_state(path, fingerprint, model, optimizer, scheduler) -> int:
    """Restore a matching checkpoint (one process); returns the number of completed epochs (0 if none)."""
    return resume(path, fingerprint, model, optimizer, scheduler)
