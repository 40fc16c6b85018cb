"""Additive angular / cosine margins as pure functions ``(cosines, labels) -> logits``.

CosFace (Wang et al., CVPR 2018): ``s * (cos θ_j - m·[j = y])``.
ArcFace (Deng et al., CVPR 2019): ``s * cos(θ_y + m)`` for the target, ``s * cos θ_j`` elsewhere.

They transform the cosine logits of a normalised classifier; cross-entropy is applied by the
caller, as in insightface's arcface_torch. The margin belongs to training only: measuring
accuracy uses ``scale_only`` (argmax over plain cosines), never a margin that needs the label.
Rows whose label is -1 are left unpenalised (only scaled), so callers can mask samples.
Unlike arcface_torch's in-place ``no_grad`` trick (a straight-through gradient), these are plain
differentiable expressions.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

MarginFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _target_mask(cosines: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Boolean (N, C) mask of each row's target column; all False where the label is -1."""
    valid = labels >= 0
    mask = torch.zeros_like(cosines, dtype=torch.bool)
    rows = torch.nonzero(valid, as_tuple=True)[0]
    mask[rows, labels[valid]] = True
    return mask


def cosface(cosines: torch.Tensor, labels: torch.Tensor, s: float = 64.0, m: float = 0.35) -> torch.Tensor:
    """CosFace logits: subtract ``m`` from the target cosine, then scale by ``s``."""
    return s * torch.where(_target_mask(cosines, labels), cosines - m, cosines)


def arcface(cosines: torch.Tensor, labels: torch.Tensor, s: float = 64.0, m: float = 0.5) -> torch.Tensor:
    """ArcFace logits: add ``m`` to the target angle, then scale by ``s``.

    Where ``θ + m`` would pass π (cos θ <= cos(π - m)), ``cos(θ + m)`` stops decreasing, so the
    target falls back to the CosFace-like ``cos θ - m·sin(π - m)`` (``easy_margin=False``).
    """
    cos = cosines.clamp(-1.0, 1.0)
    sin = torch.sqrt((1.0 - cos * cos).clamp_min(1e-12))
    cos_theta_plus_m = cos * math.cos(m) - sin * math.sin(m)
    fallback = cos - math.sin(math.pi - m) * m
    target = torch.where(cos > math.cos(math.pi - m), cos_theta_plus_m, fallback)
    return s * torch.where(_target_mask(cosines, labels), target, cosines)


def scale_only(cosines: torch.Tensor, labels: torch.Tensor | None = None, s: float = 64.0) -> torch.Tensor:
    """Evaluation logits: the same scale, no margin (the label is not looked at)."""
    return s * cosines


MARGINS: dict[str, MarginFn] = {"cosface": cosface, "arcface": arcface}
