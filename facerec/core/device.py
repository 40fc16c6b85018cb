"""Where tensors run: the GPU when there is one, else the CPU."""

from __future__ import annotations

import torch

from facerec.core.errors import FaceRecError


def resolve_device(name: str | None = None) -> torch.device:
    """``None``/"auto" picks CUDA when available; "cpu" or "cuda[:i]" are taken as given."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FaceRecError(f"--device {name}: no CUDA GPU is available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise FaceRecError(f"--device {name!r} is not a device; use auto, cpu or cuda") from None
