"""The face ViT's architecture as plain data (no torch), so listing and checking model names
costs no import of torch or timm."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class FaceViTConfig:
    """Architecture of a face ViT; stored in every workspace so the model can be rebuilt."""

    img_size: int = 112  # square input side, pixels
    patch_size: int = 16  # non-overlapping patches of patch_size x patch_size
    width: int = 192  # token dimension (timm's embed_dim)
    depth: int = 6  # Transformer blocks
    num_heads: int = 3
    mlp_ratio: float = 4.0  # FFN hidden = width * mlp_ratio
    qkv_bias: bool = True
    embedding_dim: int = 512  # face embedding; a linear projection is added when != width
    dropout: float = 0.0  # after position embedding, attention projection and FFN
    drop_path: float = 0.0  # stochastic depth, reaching this rate at the last block
    stem: str = "patch"  # "patch": one strided conv (plain ViT); "conv": a 3x3 conv stem (ConvStemPatchEmbed)
    norm_eps: float = 1e-6  # LayerNorm epsilon: timm's 1e-6; 1e-5 (torch's default) in imported vit_face models

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["norm_eps"] == 1e-6:  # stored configs (and fingerprints) from before the field stay as they were
            del data["norm_eps"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FaceViTConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)
