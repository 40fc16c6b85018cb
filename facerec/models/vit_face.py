"""The GS-LoRA authors' Face Transformer checkpoints (``vit_pytorch_face.ViT_face``) as a FaceViT.

Zhao et al. (CVPR 2024) pre-train a Face Transformer (Zhong & Deng's ``ViT_face``: 112x112,
patch 8, width 512, depth 6, 8 heads of 64, MLP 2048, CosFace head) and forget from it. Their
state dict maps onto timm's ViT, which facerec's ``face-transformer`` is, as follows:

======================================================  ==========================================
``ViT_face`` key                                        FaceViT key
======================================================  ==========================================
``patch_to_embedding.weight`` (D, p*p*3)               ``patch_embed.proj.weight`` (D, 3, p, p):
                                                        their patches are flattened ``(p1 p2 c)``
``patch_to_embedding.bias``, ``cls_token``,             ``patch_embed.proj.bias``, ``cls_token``,
``pos_embedding``                                       ``pos_embed`` (class token first, as timm)
``transformer.layers.i.0.fn.norm``                      ``blocks.i.norm1``
``transformer.layers.i.0.fn.fn.to_qkv.weight``          ``blocks.i.attn.qkv.weight`` (q rows scaled)
``transformer.layers.i.0.fn.fn.to_out.0``               ``blocks.i.attn.proj``
``transformer.layers.i.1.fn.norm``                      ``blocks.i.norm2``
``transformer.layers.i.1.fn.fn.net.0`` / ``net.3``      ``blocks.i.mlp.fc1`` / ``fc2``
``mlp_head.0``                                          ``norm`` (LayerNorm of the class token)
``loss.weight`` (classes, D)                            ``head.weight`` (cosine head)
======================================================  ==========================================

Two differences from timm are carried over so the outputs are the same, not merely close:

- their attention scales by ``dim ** -0.5`` (the width, 512), not ``dim_head ** -0.5``; the q rows
  of the (bias-free) qkv weight are multiplied by ``sqrt(dim_head / dim)``, which gives their
  scores exactly (LoRA touches only the FFN, so the folded weight is never trained);
- their LayerNorms use torch's default ``eps=1e-5`` (timm: 1e-6): the config's ``norm_eps``.

Their FFN linears are ``loralib.Linear``; a checkpoint saved with LoRA factors (``lora_A``,
``lora_B``) has them merged as loralib does: ``W + (lora_alpha / r) * B @ A``.
"""

from __future__ import annotations

import math
import re

import torch

from facerec.core.errors import FaceRecError
from ._registry import get_config
from .vit import FaceViT

MODEL_NAME = "face-transformer"
DIM_HEAD = 64  # ViT_face's default, which the paper's model uses
_LAYER = re.compile(r"transformer\.layers\.(\d+)\.")


def convert_vit_face(state: dict[str, torch.Tensor], lora_alpha: float = 1.0,
                     dtype: torch.dtype = torch.float32) -> FaceViT:
    """A FaceViT (``face-transformer``) holding the weights of a ``ViT_face`` state dict, converted
    (q scaling, LoRA merge) and stored in ``dtype``."""
    state = unwrap(state)
    try:
        width = state["pos_embedding"].shape[-1]
        patch = math.isqrt(state["patch_to_embedding.weight"].shape[1] // 3)
        tokens = state["pos_embedding"].shape[1] - 1
        depth = 1 + max(int(m.group(1)) for m in map(_LAYER.match, state) if m)
        mlp = state["transformer.layers.0.1.fn.fn.net.0.weight"].shape[0]
        classes = state["loss.weight"].shape[0]
    except (KeyError, ValueError, IndexError) as err:
        raise FaceRecError(f"not a ViT_face state dict (missing or odd {err})") from None
    config = get_config(MODEL_NAME, norm_eps=1e-5)
    side = math.isqrt(tokens) * patch
    found = dict(width=width, patch_size=patch, img_size=side, depth=depth, mlp=mlp)
    wanted = dict(width=config.width, patch_size=config.patch_size, img_size=config.img_size, depth=config.depth,
                  mlp=int(config.width * config.mlp_ratio))
    if found != wanted:
        raise FaceRecError(f"this ViT_face is {found}; facerec's {MODEL_NAME} is {wanted}")
    model = FaceViT(config, classes).to(dtype)
    mapped = _map({k: v.to(dtype) for k, v in state.items()}, width, patch, depth, config.num_heads, lora_alpha)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise FaceRecError(f"the ViT_face weights do not fill the model: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    return model.eval()


def unwrap(state: dict, check: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of a state dict saved bare, under ``state_dict``/``model``, or by DataParallel."""
    for key in ("state_dict", "model", "backbone"):
        if isinstance(state.get(key), dict):
            state = state[key]
    if check and not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FaceRecError("the checkpoint holds something other than tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _map(state: dict, width: int, patch: int, depth: int, heads: int, lora_alpha: float) -> dict[str, torch.Tensor]:
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return state[key]

    def linear(prefix: str) -> torch.Tensor:
        weight = take(prefix + ".weight")
        if prefix + ".lora_A" in state:  # loralib: W + (alpha / r) * B @ A
            a, b = take(prefix + ".lora_A"), take(prefix + ".lora_B")
            weight = weight + (lora_alpha / a.shape[0]) * (b @ a)
        return weight

    out = {
        "patch_embed.proj.weight": take("patch_to_embedding.weight").reshape(width, patch, patch, 3).permute(0, 3, 1, 2),
        "patch_embed.proj.bias": take("patch_to_embedding.bias"),
        "cls_token": take("cls_token"),
        "pos_embed": take("pos_embedding"),
        "norm.weight": take("mlp_head.0.weight"),
        "norm.bias": take("mlp_head.0.bias"),
        "head.weight": take("loss.weight"),
    }
    q_scale = math.sqrt(DIM_HEAD / width)  # their scores use width ** -0.5, timm's head_dim ** -0.5
    for i in range(depth):
        attn, ffn, block = f"transformer.layers.{i}.0.fn", f"transformer.layers.{i}.1.fn", f"blocks.{i}"
        if f"{attn}.fn.to_qkv.bias" in state:
            raise FaceRecError("this ViT_face has a qkv bias; the paper's model (and facerec's) has none")
        qkv = linear(f"{attn}.fn.to_qkv").clone()
        if qkv.shape[0] != 3 * heads * DIM_HEAD:
            raise FaceRecError(f"attention of {qkv.shape[0] // 3} = heads x dim_head; expected {heads} x {DIM_HEAD}")
        qkv[:width] *= q_scale
        out |= {
            f"{block}.norm1.weight": take(f"{attn}.norm.weight"), f"{block}.norm1.bias": take(f"{attn}.norm.bias"),
            f"{block}.attn.qkv.weight": qkv,
            f"{block}.attn.proj.weight": take(f"{attn}.fn.to_out.0.weight"),
            f"{block}.attn.proj.bias": take(f"{attn}.fn.to_out.0.bias"),
            f"{block}.norm2.weight": take(f"{ffn}.norm.weight"), f"{block}.norm2.bias": take(f"{ffn}.norm.bias"),
            f"{block}.mlp.fc1.weight": linear(f"{ffn}.fn.net.0"), f"{block}.mlp.fc1.bias": take(f"{ffn}.fn.net.0.bias"),
            f"{block}.mlp.fc2.weight": linear(f"{ffn}.fn.net.3"), f"{block}.mlp.fc2.bias": take(f"{ffn}.fn.net.3.bias"),
        }
    left = sorted(set(state) - used)
    if left:
        raise FaceRecError(f"{len(left)} checkpoint tensors have no place in the model, e.g. {left[:3]}")
    return out


def read_checkpoint(path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file, or a torch file read with ``weights_only`` (no pickled code)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FaceRecError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch and safetensors raise many types for a damaged or hostile file
        raise FaceRecError(f"{path}: not a readable checkpoint ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(state, dict):
        raise FaceRecError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state
