"""The identity head: a classifier over L2-normalised class weights.

It returns cosines between the normalised embedding and each class centre, so a margin function
(``margins.py``) can turn them into training logits, and evaluation can argmax them directly.
Used by CosFace/ArcFace and by the GS-LoRA Face Transformer (Zhao et al., CVPR 2024, §3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineHead(nn.Module):
    """``(N, D) embeddings -> (N, C) cosines`` with no bias."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}"
