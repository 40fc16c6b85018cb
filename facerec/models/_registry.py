"""Named model configurations and the one constructor, ``create_model``.

The names and configurations are plain data; torch and timm are imported only when a model is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from facerec.core.errors import UnknownModelError
from .config import FaceViTConfig

if TYPE_CHECKING:
    from .vit import FaceViT

_CONFIGS: dict[str, FaceViTConfig] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_config(name: str, config: FaceViTConfig, description: str) -> None:
    if name in _CONFIGS:
        raise ValueError(f"model {name!r} is registered twice")
    _CONFIGS[name] = config
    _DESCRIPTIONS[name] = description


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description each."""
    return dict(_DESCRIPTIONS)


def get_config(name: str, **overrides) -> FaceViTConfig:
    """The registered configuration of ``name``, with ``overrides`` that are not None applied."""
    if name not in _CONFIGS:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_CONFIGS))}")
    base = _CONFIGS[name].to_dict()
    base.update({k: v for k, v in overrides.items() if v is not None})
    return FaceViTConfig.from_dict(base)


def create_model(name: str, num_classes: int, **overrides) -> FaceViT:
    """Build the face ViT registered as ``name`` with an identity head of ``num_classes`` rows."""
    from .vit import FaceViT

    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return FaceViT(get_config(name, **overrides), num_classes)


register_config(
    "vit-face-cpu",
    FaceViTConfig(patch_size=16, width=192, depth=4, num_heads=3, embedding_dim=512, stem="conv"),
    "CPU default: 112x112, conv stem to 7x7 tokens, width 192, depth 4; trains on 2 CPU cores in minutes",
)
register_config(
    "vit-face-s",
    FaceViTConfig(patch_size=16, width=256, depth=6, num_heads=4, embedding_dim=256, drop_path=0.1, stem="conv"),
    "the pure ViT shipped until 2026-12-07: conv stem to 7x7 tokens, width 256, depth 6, 256-d embedding (5 M)",
)
for _cut, _what in ((12, "hybrid (ViT paper §3.1): "), (6, "hybrid: ")):  # the cut points of issue 25
    register_config(
        f"vit-face-hybrid{_cut}",
        FaceViTConfig(patch_size=16, width=256, depth=6, num_heads=4, embedding_dim=128, stem="sface",
                      stem_stages=_cut, pool="flatten"),
        f"{_what}SFace's first {_cut} conv stages (frozen) to 7x7 tokens, width 256, depth 6, flatten readout",
    )
register_config(
    "face-transformer",
    FaceViTConfig(patch_size=8, width=512, depth=6, num_heads=8, mlp_ratio=4.0, qkv_bias=False,
                  embedding_dim=512, dropout=0.1),
    "GS-LoRA paper's Face Transformer: 112x112, patch 8, width 512, depth 6, 8 heads, MLP 2048 (19.1 M)",
)
register_config(
    "vit-face-test",
    FaceViTConfig(patch_size=16, width=32, depth=2, num_heads=2, embedding_dim=32, stem="conv"),
    "tiny model for tests: conv stem to 7x7 tokens, width 32, depth 2",
)
register_config(
    "vit-face-hybrid-test",
    FaceViTConfig(**{**_CONFIGS["vit-face-test"].to_dict(), "stem": "sface", "stem_stages": 3, "pool": "flatten"}),
    "tiny hybrid for tests: SFace's first 3 stages (frozen) to 7x7 tokens, width 32, depth 2",
)
for (_width, _depth), _name in {(256, 12): "t", (512, 12): "s", (512, 24): "b", (768, 24): "l"}.items():
    register_config(  # insightface arcface_torch's backbones/vit.py (models.arcface_vit)
        f"arcface-vit-{_name}",
        FaceViTConfig(patch_size=9, width=_width, depth=_depth, num_heads=8, qkv_bias=False, embedding_dim=512,
                      drop_path=0.1, pool="flatten-bn", class_token=False, mlp_act="relu6", norm_eps=1e-5),
        f"arcface_torch's vit_{_name} (LVFace / TransFace layout): patch 9 -> 144 tokens, width {_width}, "
        f"depth {_depth}, ReLU6 FFN, flatten + BN readout",
    )
