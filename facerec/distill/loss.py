"""Distillation losses: pure functions of student embeddings and teacher targets.

- ``cosine_loss``: 1 - cos(student, teacher) per image — the student's embedding is pulled onto
  the teacher's (the "embedding-level" distillation of e.g. Huang et al., EKD/ "Evaluation-oriented
  knowledge distillation for deep face recognition", CVPR 2022, in its simplest form). Every image
  gets a dense target, one-photo people included.
- ``relational_loss``: mean squared difference of the batch's pairwise cosine matrices (Park et
  al., "Relational Knowledge Distillation", CVPR 2019): what verification uses is the cosine
  between *two* faces, so matching the teacher's pairwise similarities is matching the metric.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos`` between rows of ``student`` and ``teacher`` (same width, any norms)."""
    return (1.0 - F.cosine_similarity(student, teacher, dim=1)).mean()


def relational_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the off-diagonal pairwise cosines of the two batches."""
    s, t = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
    off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    return ((s @ s.T - t @ t.T)[off] ** 2).mean()
