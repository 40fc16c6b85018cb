"""Unlearning baselines behind one interface: ``(model, forget, retain, config) -> statistics``.

Every method changes ``model`` in place (the identity head stays frozen, so forgotten rows keep
their place) and returns ``seconds`` and the trainable share. They are the comparison points of
the GS-LoRA papers (spec Part C) and of SalUn (Fan et al., ICLR 2024):

- ``retrain``: train a fresh model on the replay data only (the gold standard, and the costliest);
- ``finetune``: fine-tune on replay data (forgetting by neglect);
- ``grad-ascent``: gradient ascent on the forget set;
- ``random-label``: forget images with random wrong labels, plus the replay loss;
- ``salun``: random-label, updating only the weights most salient for the forget loss
  (top ``saliency`` share of ``|∇ CE(forget)|`` at the start, global threshold);
- ``scrub``: teacher–student: move away from the original model on forget data (max step) while
  matching it and the labels on replay data (min step) — Kurmanji et al., NeurIPS 2023;
- ``lwf``: random-label forgetting plus distillation of the original model on replay data;
- ``l2`` / ``ewc``: random-label forgetting plus a pull towards the original weights, plain or
  weighted by a diagonal Fisher estimated on replay data.

All full-parameter methods share the training loop: AdamW without weight decay (decay would leak
into weights SalUn must not touch), ``steps`` steps of ``batch_size`` forget + replay images,
model in eval mode (BatchNorm statistics stay those of the original model).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F

from facerec.data.transforms import to_tensor
from facerec.models import MARGINS
from facerec.core.progress import progress_bar

from .gslora import Data, batches, task_steps


@dataclass(frozen=True)
class BaselineConfig:
    steps: int = 60  # at least this many steps, and steps_per_person per forgotten person (gslora.task_steps)
    steps_per_person: int = 6
    batch_size: int = 16
    lr: float = 1e-4
    margin: str = "cosface"
    seed: int = 0
    saliency: float = 0.5  # SalUn: share of weights allowed to move
    l2_weight: float = 0.1  # L2: λ·Σ(θ - θ₀)²
    ewc_weight: float = 10.0  # EWC: λ·Σ F·(θ - θ₀)²
    kd_weight: float = 0.5  # LwF
    temperature: float = 2.0  # LwF and SCRUB distillation temperature
    scrub_max_share: float = 0.5  # SCRUB: share of steps that also take the max (forget) step
    retrain_epochs: int = 60  # retrain: epochs of a fresh training run on the replay data
    retrain_config: dict | None = None  # retrain: the workspace's own TrainConfig (epochs, rate, warm-up, ...)
    retrain_from: str | None = None  # retrain: the shipped model version the workspace was fine-tuned from ...
    retrain_from_file: str | None = None  # ... or the model file (facerec train --init-from) it was fine-tuned from

    def to_dict(self) -> dict:
        return asdict(self)


def _wrong_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from each true one."""
    shift = torch.randint(1, num_classes, labels.shape, generator=generator).to(labels.device)
    return (labels + shift) % num_classes


def _trainable(model) -> list[torch.nn.Parameter]:
    """Everything but the identity head (and a hybrid's frozen SFace stem)."""
    return [p for name, p in model.named_parameters()
            if not name.startswith(("head.", "patch_embed.stem."))]


def _distill(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="batchmean") * t * t


def _fisher(model, retain: Data, cfg: BaselineConfig, margin, device) -> list[torch.Tensor]:
    """Diagonal Fisher information of the replay loss, from up to 8 batches."""
    params = _trainable(model)
    fisher = [torch.zeros_like(p) for p in params]
    batches = 0
    for start in range(0, min(len(retain), 8 * cfg.batch_size), cfg.batch_size):
        x = to_tensor(retain.images[start:start + cfg.batch_size]).to(device)
        y = torch.from_numpy(retain.labels[start:start + cfg.batch_size]).to(device)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(margin(model(x), y), y).backward()
        for f, p in zip(fisher, params):
            if p.grad is not None:
                f += p.grad.detach() ** 2
        batches += 1
    return [f / max(batches, 1) for f in fisher]


def _saliency_mask(model, forget: Data, cfg: BaselineConfig, margin, device) -> list[torch.Tensor]:
    """SalUn's mask: 1 for the top ``saliency`` share of |∇ CE(forget)| over all trainable weights."""
    params = _trainable(model)
    model.zero_grad(set_to_none=True)
    for start in range(0, len(forget), cfg.batch_size):
        x = to_tensor(forget.images[start:start + cfg.batch_size]).to(device)
        y = torch.from_numpy(forget.labels[start:start + cfg.batch_size]).to(device)
        (-F.cross_entropy(margin(model(x), y), y)).backward()  # gradients accumulate over batches
    grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).abs().flatten() for p in params])
    keep = max(1, int(cfg.saliency * grads.numel()))
    threshold = torch.topk(grads, keep, sorted=True).values[-1]
    masks = [((p.grad.abs() if p.grad is not None else torch.zeros_like(p)) >= threshold).float() for p in params]
    model.zero_grad(set_to_none=True)
    return masks


def run_baseline(method: str, model, forget: Data, retain: Data, cfg: BaselineConfig, *, device: torch.device,
                 show_progress: bool = True) -> dict:
    """Unlearn ``forget`` from ``model`` in place with a baseline ``method``; returns statistics."""
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}")
    margin = MARGINS[cfg.margin]
    model.to(device).eval()
    torch.manual_seed(cfg.seed)
    total = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    if method == "retrain":
        _retrain(model, retain, cfg, device, show_progress)
        return {"method": method, "seconds": round(time.perf_counter() - t0, 2), "trainable_ratio": 1.0,
                "trainable_parameters": total, "config": cfg.to_dict()}
    params = _trainable(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    teacher = copy.deepcopy(model).eval() if method in ("scrub", "lwf") else None
    anchor = [p.detach().clone() for p in params] if method in ("l2", "ewc") else None
    fisher = _fisher(model, retain, cfg, margin, device) if method == "ewc" else None
    mask = _saliency_mask(model, forget, cfg, margin, device) if method == "salun" else None
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(cfg.seed)
    forget_batches = batches(len(forget), cfg.batch_size, generator)
    retain_batches = batches(len(retain), cfg.batch_size, generator) if len(retain) else None
    steps = task_steps(cfg.steps, cfg.steps_per_person, forget)
    with progress_bar(steps, method, enabled=show_progress, unit="step") as bar:
        for step in range(steps):
            f_idx = next(forget_batches).numpy()
            xf = to_tensor(forget.images[f_idx]).to(device)
            yf = torch.from_numpy(forget.labels[f_idx]).to(device)
            if retain_batches is not None:
                r_idx = next(retain_batches).numpy()
                xr = to_tensor(retain.images[r_idx]).to(device)
                yr = torch.from_numpy(retain.labels[r_idx]).to(device)
            loss = _loss(method, model, teacher, xf, yf, xr if retain_batches else None, yr if retain_batches else None,
                         cfg, margin, generator, step / steps)
            if anchor is not None:
                weights = fisher if fisher is not None else [None] * len(params)
                scale = cfg.ewc_weight if fisher is not None else cfg.l2_weight
                loss = loss + scale * sum(((p - a) ** 2 * (w if w is not None else 1)).sum()
                                          for p, a, w in zip(params, anchor, weights))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if mask is not None:
                for p, m in zip(params, mask):
                    if p.grad is not None:
                        p.grad.mul_(m)
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.2f}", refresh=False)
            bar.update(1)
    model.reset_requires_grad()
    trainable = sum(int(m.sum()) for m in mask) if mask is not None else sum(p.numel() for p in params)
    return {"method": method, "seconds": round(time.perf_counter() - t0, 2), "steps": steps,
            "trainable_parameters": trainable, "trainable_ratio": trainable / total, "config": cfg.to_dict()}


def _loss(method, model, teacher, xf, yf, xr, yr, cfg, margin, generator, progress: float) -> torch.Tensor:
    ce = lambda x, y: F.cross_entropy(margin(model(x), y), y)  # noqa: E731
    retain_ce = ce(xr, yr) if xr is not None else xf.new_zeros(())
    if method == "finetune":
        return retain_ce
    if method == "grad-ascent":
        return -ce(xf, yf)
    relabelled = ce(xf, _wrong_labels(yf, model.num_classes, generator))
    if method in ("random-label", "salun", "l2", "ewc"):
        return relabelled + retain_ce
    scale = 64.0  # distil the scaled cosines (the head's logits without a margin)
    if method == "lwf":
        with torch.no_grad():
            target = teacher(xr) * scale if xr is not None else None
        kd = _distill(model(xr) * scale, target, cfg.temperature) if xr is not None else 0.0
        return relabelled + retain_ce + cfg.kd_weight * kd
    if method == "scrub":
        with torch.no_grad():
            t_r = teacher(xr) * scale if xr is not None else None
            t_f = teacher(xf) * scale
        min_loss = retain_ce + (_distill(model(xr) * scale, t_r, cfg.temperature) if xr is not None else 0.0)
        if progress < cfg.scrub_max_share:
            return min_loss - _distill(model(xf) * scale, t_f, cfg.temperature)  # max step: leave the teacher
        return min_loss
    raise AssertionError(method)


def _retrain(model, retain: Data, cfg: BaselineConfig, device, show_progress: bool) -> None:
    """Replace ``model``'s weights by a fresh training run on the replay data alone: from random
    weights, or, when the workspace was fine-tuned from the shipped model (or a model file), that
    fine-tune again without the forgotten people (their head rows imprint from no images: zero)."""
    from facerec import pretrained
    from facerec.training.run import start_from_pretrained
    from facerec.models.vit import FaceViT
    from facerec.training.trainer import TrainConfig, train_model

    fresh = FaceViT(model.config, model.num_classes)
    if model.config.stem == "sface":  # the frozen stem is SFace's (never trained here): kept, as a retrain would
        fresh.patch_embed.stem.load_state_dict(model.patch_embed.stem.state_dict())
    if cfg.retrain_from:
        start_from_pretrained(fresh, pretrained.load_model(device, cfg.retrain_from_file, cfg.retrain_from),
                              retain.images, retain.labels, device)
    known = TrainConfig.__dataclass_fields__
    recipe = TrainConfig(**{k: v for k, v in cfg.retrain_config.items() if k in known}) if cfg.retrain_config else TrainConfig(epochs=cfg.retrain_epochs,
                                                                                        margin=cfg.margin)
    # the request's seed shifts the recipe's (0: the workspace's own run): two retrains that differ
    # only in their draw of batches and augmentations measure how far apart equivalent models are
    recipe = replace(recipe, seed=recipe.seed + cfg.seed)
    train_model(fresh, retain.images, retain.labels, recipe, device=device, show_progress=show_progress)
    model.load_state_dict(fresh.state_dict())
    model.eval()


BASELINES = ("retrain", "finetune", "grad-ascent", "random-label", "salun", "scrub", "lwf", "l2", "ewc")
