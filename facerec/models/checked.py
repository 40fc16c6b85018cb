"""A model file checked against the record that describes it, before and after its weights are read.

Used for every model facerec loads from disk (a workspace's weights, the shipped model, a model given
with ``--init-from``): a damaged or foreign file is one :class:`WorkspaceError`, never a traceback
or an allocation the record did not announce.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from facerec.core.errors import WorkspaceError

if TYPE_CHECKING:
    import torch

    from facerec.models import FaceViT, FaceViTConfig


def weights_version(state: dict[str, torch.Tensor]) -> str:
    """Content hash of a state dict (names, dtypes, shapes, values): the model version.

    Hashing the tensors rather than the file keeps it stable: safetensors does not write its
    metadata in a fixed order.
    """
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def check_model_file(path: Path, config: dict, num_classes: int, record) -> FaceViTConfig:
    """Check that ``path`` holds the tensors of the model ``record`` describes, reading no weights:
    the config is built on the meta device (a config that asks for a huge model allocates
    nothing) and the file's tensor shapes compared with it. Anything wrong is one
    :class:`WorkspaceError`."""
    import torch
    from safetensors import safe_open

    from facerec.models import FaceViT, FaceViTConfig

    try:
        cfg = FaceViTConfig.from_dict(config)
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in FaceViT(cfg, num_classes).state_dict().items()}
    except Exception as err:  # unknown keys, wrong types, impossible shapes: timm raises many kinds
        raise WorkspaceError(f"{record}: model.config is invalid ({type(err).__name__}: {err})") from None
    try:
        with safe_open(path, "pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for a damaged header
        raise WorkspaceError(f"model weights {path} are unreadable (corrupt file?): {err}") from None
    if stored != expected:
        raise WorkspaceError(f"{record}: model.config and model.num_classes describe a model "
                             f"whose tensors {path.name} does not hold")
    return cfg


def load_checked_model(path: Path, config: dict, num_classes: int, version: str, record, device="cpu") -> FaceViT:
    """The model that ``record`` (a manifest or a model file's record) describes, with the weights
    in ``path``: :func:`check_model_file` before any weight is read, then the weights' content
    hash against ``version``. Anything wrong is one :class:`WorkspaceError`."""
    from safetensors.torch import load_file

    from facerec.models import FaceViT

    cfg = check_model_file(path, config, num_classes, record)
    try:
        state = load_file(path, device="cpu")
    except Exception as err:
        raise WorkspaceError(f"model weights {path} are unreadable (corrupt file?): {err}") from None
    if weights_version(state) != version:
        raise WorkspaceError(f"{record}: model.version does not match the weights in {path.name} (a corrupt file?)")
    model = FaceViT(cfg, num_classes)
    model.load_state_dict(state)
    return model.to(device).eval()
