"""Face ViT: timm's ``VisionTransformer`` with a face-embedding neck and a cosine identity head.

The backbone is timm's ViT unchanged (pre-norm blocks, class token, learned position
embedding), so LoRA can later target ``blocks[i].mlp.fc1`` / ``fc2`` by name. On top of timm's
contract ``forward_features -> forward_head(pre_logits)``:

- ``pre_logits`` is the face embedding: the class token, normalised, then an optional linear
  projection to ``embedding_dim`` (the paper's Face Transformer has none: width = embedding = 512);
- ``forward_head`` without ``pre_logits`` gives the identity head's cosines (``heads.py``);
- ``embed()`` is the one path that returns L2-normalised embeddings for galleries, verification
  and forgetting.

The Face Transformer configuration follows Zhao et al., "Continual Forgetting for Pre-trained
Vision Models" (CVPR 2024), §A2 of the project spec: 112x112 input, 8x8 patches, width 512,
depth 6, 8 heads, MLP 2048, no qkv bias, dropout 0.1.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from facerec.core.compat import import_timm
from .config import FaceViTConfig
from .heads import CosineHead

_timm = import_timm()
VisionTransformer = _timm.models.vision_transformer.VisionTransformer
PatchEmbed = _timm.layers.PatchEmbed


class ConvStemPatchEmbed(PatchEmbed):
    """timm's PatchEmbed with its single strided conv replaced by a stack of 3x3 stride-2 convs.

    "Early Convolutions Help Transformers See Better" (Xiao et al., NeurIPS 2021): a small conv
    stem gives a ViT the locality bias it otherwise has to learn from data, which is what makes a
    from-scratch face ViT trainable on a few hundred images. The token grid is the same as the
    plain patch embedding's (stride = patch_size), so everything downstream is unchanged.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        patch = self.patch_size[0]
        stages = patch.bit_length() - 1  # number of stride-2 convs
        if patch != self.patch_size[1] or patch != 2 ** stages or stages < 1:
            raise ValueError(f"a conv stem needs a square power-of-two patch size, got {self.patch_size}")
        in_chans, embed_dim = self.proj.in_channels, self.proj.out_channels
        widths = [max(16, embed_dim >> (stages - i)) for i in range(1, stages + 1)]  # doubling to embed_dim/2
        layers, prev = [], in_chans
        for width in widths:
            layers += [nn.Conv2d(prev, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            prev = width
        layers.append(nn.Conv2d(prev, embed_dim, 1))  # (N, embed_dim, H/patch, W/patch)
        self.proj = nn.Sequential(*layers)


class SFaceStemPatchEmbed(PatchEmbed):
    """The hybrid ViT's patch embedding (ViT paper §3.1): SFace's first ``stages`` convolution
    stages (``sface.SFaceStem``, frozen) then a ``r x r`` stride-``r`` projection of their feature
    map to the token width, ``r = patch_size / stride(stages)``, so the token grid is the plain
    ViT's (112 / 16 = 7x7) whatever the cut. The stem's weights come from SFace
    (``distill.sface_port``) and ship inside facerec's model file; they are not trained unless a
    recipe unfreezes them (``requires_grad``), so forgetting (LoRA on the blocks' FFN) and
    fine-tuning leave them as they are.
    """

    def __init__(self, *args, stages: int, **kwargs):
        super().__init__(*args, **kwargs)
        from .sface import SFaceStem, stage_channels, stage_stride

        ratio = self.patch_size[0] // stage_stride(stages)
        self.stem = SFaceStem(stages)
        self.stem.requires_grad_(False)
        self.stem.to(memory_format=torch.channels_last)  # depthwise convs run ~2x faster on CPU (weights loaded
        # later are copied into these tensors, keeping the layout)
        self.proj = nn.Conv2d(stage_channels(stages), self.proj.out_channels, ratio, stride=ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 3, 112, 112)``, or the stem's output for them computed earlier (it has
        64 channels or more: ``FaceViT.frozen_stem``), to tokens ``(N, 49, width)``."""
        if x.shape[1] == self.proj.in_channels:
            x = x.to(self.proj.weight.dtype)
        else:
            x = self.stem(x)
        x = self.proj(x)  # (N, width, 7, 7)
        return self.norm(x.flatten(2).transpose(1, 2))


def _embed_layer(config: FaceViTConfig):
    if config.stem == "sface":
        return partial(SFaceStemPatchEmbed, stages=config.stem_stages)
    return ConvStemPatchEmbed if config.stem == "conv" else PatchEmbed


class FaceViT(VisionTransformer):
    """timm ViT whose pre-logits are a face embedding and whose head is a cosine classifier."""

    def __init__(self, config: FaceViTConfig, num_classes: int):
        super().__init__(
            img_size=config.img_size,
            patch_size=config.patch_size,
            num_classes=0,
            global_pool="token" if config.class_token else "",
            class_token=config.class_token,
            act_layer=nn.ReLU6 if config.mlp_act == "relu6" else None,
            embed_dim=config.width,
            depth=config.depth,
            num_heads=config.num_heads,
            mlp_ratio=config.mlp_ratio,
            qkv_bias=config.qkv_bias,
            pos_drop_rate=config.dropout,
            proj_drop_rate=config.dropout,
            drop_path_rate=config.drop_path,
            embed_layer=_embed_layer(config),
            norm_layer=partial(nn.LayerNorm, eps=config.norm_eps),
        )
        self.config = config
        self.num_classes = num_classes
        if config.pool == "flatten":  # every token, in place, to the embedding: SFace's / MobileFaceNet's readout
            self.neck = nn.Linear(self.patch_embed.num_patches * config.width, config.embedding_dim)
        elif config.pool == "flatten-bn":  # arcface_torch's ViT readout ("feature"), eps as theirs
            self.neck = nn.Sequential(
                nn.Linear(self.patch_embed.num_patches * config.width, config.width, bias=False),
                nn.BatchNorm1d(config.width, eps=2e-5),
                nn.Linear(config.width, config.embedding_dim, bias=False),
                nn.BatchNorm1d(config.embedding_dim, eps=2e-5),
            )
        elif config.embedding_dim == config.width:
            self.neck = nn.Identity()
        else:
            self.neck = nn.Sequential(
                nn.Linear(config.width, config.embedding_dim, bias=False),
                nn.LayerNorm(config.embedding_dim),
            )
        self.head = CosineHead(config.embedding_dim, num_classes)

    def reset_requires_grad(self) -> None:
        """Every weight trainable again, except a hybrid's SFace stem, which stays frozen (forgetting
        methods freeze the model while they work and call this when they are done)."""
        self.requires_grad_(True)
        stem = getattr(self.patch_embed, "stem", None)
        if stem is not None:
            stem.requires_grad_(False)

    def frozen_stem(self) -> nn.Module | None:
        """A hybrid's frozen SFace stem (None for other models, or when a recipe trains it).
        ``forward_features`` takes its output in place of images, so a loop over fixed images
        (unlearning reads its photos without augmentation) can run it once per image."""
        stem = getattr(self.patch_embed, "stem", None)
        return None if stem is None or any(p.requires_grad for p in stem.parameters()) else stem

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.config.pool != "token":  # (N, T, width) -> (N, patches * width)
            x = x[:, self.num_prefix_tokens:].flatten(1)
        else:
            x = self.pool(x)  # (N, T, width) -> (N, width): the class token
        x = self.fc_norm(x)
        x = self.head_drop(x)
        x = self.neck(x)  # (N, embedding_dim)
        return x if pre_logits else self.head(x)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` normalised images -> ``(N, embedding_dim)`` unit-length embeddings."""
        return F.normalize(self.forward_head(self.forward_features(images), pre_logits=True), dim=-1)
