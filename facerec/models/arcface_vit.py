"""insightface arcface_torch's ViTs as a FaceViT: the layout LVFace and TransFace publish weights in.

arcface_torch's ``backbones/vit.py`` (``vit_t``/``vit_s``/``vit_b``/``vit_l``) is a plain ViT on
112x112 crops with 9x9 patches (a 12x12 grid: the last 4 pixel rows and columns are not seen),
no class token, qkv without bias, a ReLU6 FFN, torch's LayerNorm (eps 1e-5) and a final LayerNorm
over all 144 tokens, which are flattened in place and read out by
``feature = Linear(144*D, D, bias=False) -> BatchNorm1d(D) -> Linear(D, 512, bias=False) ->
BatchNorm1d(512)`` (eps 2e-5). Input as facerec's: RGB scaled to [-1, 1]. Their keys map onto
timm's names one to one:

====================================================  ============================================
arcface_torch key                                     FaceViT key
====================================================  ============================================
``patch_embed.proj``, ``pos_embed`` (1, 144, D)       the same (``class_token=False``)
``blocks.i.{norm1,attn.qkv,attn.proj,norm2,           the same (timm's Block; ``mlp_act="relu6"``)
mlp.fc1,mlp.fc2}``
``norm``                                              ``norm``
``feature.{0,1,2,3}``                                 ``neck.{0,1,2,3}`` (``pool="flatten-bn"``)
``mask_token`` (training-time patch masking)          dropped
====================================================  ============================================

Their checkpoints hold the backbone only (the Partial FC head is trained apart and not
published), so the identity head is imprinted for the people it is imported over. The number of
heads is not in the weights: arcface_torch's ViTs all use 8.

Such weights (LVFace, TransFace: trained on WebFace42M / Glint360K) are user-supplied and under
non-commercial terms: facerec never ships them and never distils from them.
"""

from __future__ import annotations

import re

import torch

from facerec.core.errors import FaceRecError
from .config import FaceViTConfig
from .vit import FaceViT
from .vit_face import unwrap

HEADS = 8
LAYOUTS = {(256, 12): "arcface-vit-t", (512, 12): "arcface-vit-s", (512, 24): "arcface-vit-b", (768, 24): "arcface-vit-l"}
_BLOCK = re.compile(r"blocks\.(\d+)\.")
_DROPPED = ("mask_token",)


def is_arcface_vit(state: dict) -> bool:
    keys = set(unwrap(state, check=False))
    return "patch_embed.proj.weight" in keys and "feature.0.weight" in keys


def arcface_config(state: dict[str, torch.Tensor], heads: int = HEADS) -> FaceViTConfig:
    """The FaceViT configuration of an arcface_torch ViT state dict (shapes checked)."""
    try:
        width, tokens = state["pos_embed"].shape[-1], state["pos_embed"].shape[1]
        patch = state["patch_embed.proj.weight"].shape[-1]
        depth = 1 + max(int(m.group(1)) for m in map(_BLOCK.match, state) if m)
        mlp = state["blocks.0.mlp.fc1.weight"].shape[0]
        embedding = state["feature.2.weight"].shape[0]
    except (KeyError, ValueError, IndexError) as err:
        raise FaceRecError(f"not an arcface_torch ViT state dict (missing or odd {err})") from None
    if (112 // patch) ** 2 != tokens:
        raise FaceRecError(f"{tokens} position embeddings do not fit 112x112 crops in {patch}x{patch} patches")
    if width % heads:
        raise FaceRecError(f"width {width} is not a multiple of {heads} heads")
    try:
        return FaceViTConfig(img_size=112, patch_size=patch, width=width, depth=depth, num_heads=heads,
                             mlp_ratio=mlp / width, qkv_bias="blocks.0.attn.qkv.bias" in state,
                             embedding_dim=embedding, drop_path=0.1, pool="flatten-bn", class_token=False,
                             mlp_act="relu6", norm_eps=1e-5)
    except ValueError as err:
        raise FaceRecError(f"this arcface_torch ViT is outside what facerec builds: {err}") from None


def convert_arcface_vit(state: dict, num_classes: int = 1, heads: int = HEADS,
                        dtype: torch.dtype = torch.float32) -> tuple[FaceViT, str]:
    """``(FaceViT holding the weights, model name)``; the identity head (``num_classes`` rows) is
    left as initialised, for the caller to imprint."""
    state = unwrap(state)
    config = arcface_config(state, heads)
    model = FaceViT(config, num_classes).to(dtype)
    mapped = {re.sub(r"^feature\.", "neck.", k): v.to(dtype) if v.is_floating_point() else v
              for k, v in state.items() if k not in _DROPPED}
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if unexpected or set(missing) != {"head.weight"}:
        raise FaceRecError(f"the arcface_torch ViT weights do not fill the model: missing "
                           f"{sorted(set(missing) - {'head.weight'})[:5]}, unexpected {unexpected[:5]}")
    return model.eval(), LAYOUTS.get((config.width, config.depth), "arcface-vit")

