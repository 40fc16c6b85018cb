"""Face models: the face ViT, its registry of named configurations, the head and the margins.

The registry and the configuration are torch-free; ``FaceViT`` and ``MARGINS`` load torch and timm
on first use (PEP 562), so ``facerec models`` and other listings start without them.
"""

from ._registry import create_model as create_model
from ._registry import get_config as get_config
from ._registry import list_models as list_models
from .config import FaceViTConfig as FaceViTConfig
from .config import DEFAULT_MODEL as DEFAULT_MODEL

__all__ = ["create_model", "get_config", "list_models", "FaceViTConfig", "DEFAULT_MODEL", "FaceViT", "MARGINS"]
_LAZY = {"FaceViT": ".vit", "MARGINS": ".margins"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
