"""The face ViT's architecture as plain data (no torch), so listing and checking model names
costs no import of torch or timm."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .sface_layout import stage_stride

DEFAULT_MODEL = "vit-face-cpu"  # the model trained from scratch when no face model is shipped


# Far beyond every face ViT in use (the GS-LoRA paper's Face Transformer has width 512 and 19 M
# parameters), far below what would exhaust a machine before the weights were even read.
_INT_LIMITS = (("img_size", 16, 1024), ("patch_size", 1, 256), ("width", 8, 4096), ("depth", 1, 64),
               ("num_heads", 1, 128), ("embedding_dim", 8, 8192))
_FLOAT_LIMITS = (("mlp_ratio", 0.25, 16.0), ("dropout", 0.0, 1.0), ("drop_path", 0.0, 1.0), ("norm_eps", 0.0, 1.0))
MAX_PARAMETERS = 1_000_000_000


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
    stem: str = "patch"  # "patch": one strided conv (plain ViT); "conv": a 3x3 conv stem (ConvStemPatchEmbed);
    # "sface": the hybrid, SFace's first ``stem_stages`` stages then a projection (SFaceStemPatchEmbed)
    stem_stages: int = 0  # K, the SFace stages in the stem (1..14); only with stem="sface"
    # "token": the class token to the embedding (timm's ViT); "flatten": every patch token in place, one linear
    # (the position-specific readout of face CNNs: SFace's flatten + fc, MobileFaceNet's GDC)
    pool: str = "token"  # or "flatten-bn": every token in place, Linear -> BatchNorm -> Linear -> BatchNorm (the
    # readout of insightface's arcface_torch ViTs: LVFace, TransFace)
    norm_eps: float = 1e-6  # LayerNorm epsilon: timm's 1e-6; 1e-5 (torch's default) in imported vit_face models
    class_token: bool = True  # False: patch tokens only (arcface_torch's ViTs); needs a flatten readout
    mlp_act: str = "gelu"  # the FFN's activation: "gelu" (timm) or "relu6" (arcface_torch's ViTs)

    def __post_init__(self):
        if problem := self.problem():
            raise ValueError(problem)

    def problem(self) -> str | None:
        """What makes this architecture one facerec will not build, or None. Checked before any
        module exists, so a config edited to ask for a million blocks costs nothing."""
        for name, low, high in _INT_LIMITS:
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                return f"{name} must be a whole number from {low} to {high}, got {value!r}"
        for name, low, high in _FLOAT_LIMITS:
            value = getattr(self, name)
            if type(value) not in (int, float) or not low <= value <= high:
                return f"{name} must be a number from {low} to {high}, got {value!r}"
        if type(self.qkv_bias) is not bool:
            return f"qkv_bias must be true or false, got {self.qkv_bias!r}"
        if self.stem not in ("patch", "conv", "sface"):
            return f"stem must be 'patch', 'conv' or 'sface', got {self.stem!r}"
        if problem := self._stem_problem():
            return problem
        if self.pool not in ("token", "flatten", "flatten-bn"):
            return f"pool must be 'token', 'flatten' or 'flatten-bn', got {self.pool!r}"
        if type(self.class_token) is not bool or (not self.class_token and self.pool == "token"):
            return "without a class token the readout must flatten the patch tokens (pool 'flatten' or 'flatten-bn')"
        if self.mlp_act not in ("gelu", "relu6"):
            return f"mlp_act must be 'gelu' or 'relu6', got {self.mlp_act!r}"
        if self.img_size % self.patch_size and self.stem != "patch":  # a plain patch conv drops the remainder
            return f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}"  # (112 / 9: 12 x 12)
        if self.width % self.num_heads:
            return f"width {self.width} is not a multiple of num_heads {self.num_heads}"
        if self.norm_eps <= 0:
            return f"norm_eps must be above 0, got {self.norm_eps!r}"
        hidden = int(self.width * self.mlp_ratio)
        tokens = (self.img_size // self.patch_size) ** 2
        params = self.depth * (4 * self.width ** 2 + 2 * self.width * hidden) + tokens * self.width
        if self.pool == "flatten":  # the readout: every token's width to the embedding
            params += tokens * self.width * self.embedding_dim
        elif self.pool == "flatten-bn":
            params += tokens * self.width * self.width + self.width * self.embedding_dim
        if params > MAX_PARAMETERS:
            return f"{params / 1e6:.0f} M backbone parameters, over the {MAX_PARAMETERS / 1e6:.0f} M facerec builds"
        return None

    def _stem_problem(self) -> str | None:
        if type(self.stem_stages) is not int:
            return f"stem_stages must be a whole number, got {self.stem_stages!r}"
        if self.stem != "sface":
            return f"stem_stages is for the 'sface' stem only, got {self.stem_stages}" if self.stem_stages else None
        if not 1 <= self.stem_stages <= 14:
            return f"stem_stages must be from 1 to 14 (SFace's stages), got {self.stem_stages}"
        stride = stage_stride(self.stem_stages)
        if self.img_size != 112 or self.patch_size % stride:
            return (f"the SFace stem takes 112x112 crops and a patch size that is a multiple of its stride "
                    f"{stride}, got {self.img_size} and {self.patch_size}")
        return None

    def to_dict(self) -> dict:
        data = asdict(self)
        for key, default in (("stem_stages", 0), ("pool", "token"), ("class_token", True), ("mlp_act", "gelu")):
            if data[key] == default:  # left out at their defaults: older configs keep their fingerprints
                del data[key]
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
