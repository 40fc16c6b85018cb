"""Import-time compatibility for the pinned stack, done in exactly one place.

torch 2.13.0 is installed as a CPU build, but the only torchvision that accepts it (0.28.0) is a
CUDA build whose compiled ops cannot load. ``import torchvision`` (and so ``import timm``) then
fails while registering fake kernels for ``torchvision::nms``. Declaring the two missing op
schemas lets both import; timm's ViT never calls those ops. On a machine whose torchvision ops do
load, nothing is declared. See ``../shared/reference/install-notes.md``.

albumentations checks for updates over the network on import; ``NO_ALBUMENTATIONS_UPDATE``
switches that off (nothing may download at run time).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

_TORCHVISION_SHIM = None  # keeps the torch.library.Library alive for the life of the process


def _declare_missing_torchvision_ops() -> None:
    global _TORCHVISION_SHIM
    import torch

    _TORCHVISION_SHIM = torch.library.Library("torchvision", "DEF")
    _TORCHVISION_SHIM.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_SHIM.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")


def import_timm():
    """Import and return ``timm``, declaring torchvision's op schemas only if they are missing."""
    try:
        import torchvision  # noqa: F401
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
        # Drop the half-imported package, declare the schemas, import again.
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _declare_missing_torchvision_ops()
        import torchvision  # noqa: F401
    import timm

    return timm
