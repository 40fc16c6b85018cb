"""The identity head split across ranks: Partial FC (An et al., "Partial FC: Training 10 Million
Identities on a Single Machine", ICCVW 2021; insightface's arcface_torch).

A 360k x 512 head (Glint360K) is 0.7 GB of weights, as much again in each of AdamW's moments, and
a (batch x 360k) logit matrix per step: more than one device holds. Here each of W ranks keeps the
class centres ``[start_r, end_r)`` (:func:`bounds`). A step gathers every rank's embeddings (the
global batch), computes the cosines against the local centres only, applies the margin to the
target columns that fall in the slice (margins are pure functions of ``(cosines, labels)``;
labels outside the slice are -1 and left unpenalised), and forms the softmax across ranks:
the row maximum by an all-reduce MAX, the sum of exponentials and the target logit by all-reduce
SUMs. Every rank then holds the same loss, the global batch's mean cross-entropy, and
backpropagating it gives each rank the exact gradient of its centres and, through the gather's
backward (the sum over ranks), of its own embeddings: the loss and gradients of the full head.

``sample_rate`` < 1 is Partial FC's sampling: each step keeps the centres of the classes present
in the global batch and a seeded random share of the others (at least ``sample_rate`` of the
slice); the softmax runs over those (an approximation, which the paper shows costs little accuracy
at 0.1 on large sets). At 1.0 nothing is sampled and the loss is the full head's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bounds(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """The class centres ``[start, end)`` rank ``rank`` holds: an even split, in order."""
    return num_classes * rank // world_size, num_classes * (rank + 1) // world_size


class _Gather(torch.autograd.Function):
    """All ranks' rows (each rank the same count), in rank order; backward: the sum over ranks of
    the gradient of this rank's rows (each rank's loss term used them)."""

    @staticmethod
    def forward(ctx, x):
        import torch.distributed as dist

        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


class _Sum(torch.autograd.Function):
    """The sum over ranks; backward passes the gradient through unchanged, because every rank
    computes the same loss from the same sum (an all-reduce there would count it W times)."""

    @staticmethod
    def forward(ctx, x):
        import torch.distributed as dist

        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad


class ShardedCosineHead(nn.Module):
    """This rank's slice of a :class:`facerec.models.heads.CosineHead`, and the cross-rank loss."""

    def __init__(self, in_features: int, num_classes: int, rank: int, world_size: int,
                 sample_rate: float = 1.0, seed: int = 0):
        super().__init__()
        if not 0 < sample_rate <= 1:
            raise ValueError(f"the head's sample rate must be in (0, 1], got {sample_rate}")
        self.num_classes, self.rank, self.world_size = num_classes, rank, world_size
        self.start, self.end = bounds(num_classes, rank, world_size)
        self.sample_rate = sample_rate
        self.weight = nn.Parameter(torch.empty(self.end - self.start, in_features))
        nn.init.xavier_uniform_(self.weight)
        self._generator = torch.Generator().manual_seed(seed * 7919 + rank)

    @classmethod
    def from_full(cls, weight: torch.Tensor, rank: int, world_size: int, **options) -> "ShardedCosineHead":
        head = cls(weight.shape[1], weight.shape[0], rank, world_size, **options)
        with torch.no_grad():
            head.weight.copy_(weight[head.start:head.end])
        return head.to(weight.device)

    def loss(self, embeddings: torch.Tensor, labels: torch.Tensor, margin) -> torch.Tensor:
        """The global batch's mean margin cross-entropy, the same on every rank. ``embeddings``
        ``(n, D)`` and ``labels`` ``(n,)`` are this rank's part of the batch (the same n on every
        rank); a label of -1 (an unreadable sample) counts in no row's loss."""
        import torch.distributed as dist

        x = _Gather.apply(embeddings)
        y = _gather_labels(labels)
        centres = self.weight
        local = torch.where((y >= self.start) & (y < self.end), y - self.start, torch.full_like(y, -1))
        if self.sample_rate < 1:
            centres, local = self._sample(local)
        logits = margin(F.linear(F.normalize(x, dim=-1), F.normalize(centres, dim=-1)).float(), local)
        top = logits.detach().max(dim=1).values if logits.shape[1] else torch.full_like(y, -1e4, dtype=logits.dtype)
        dist.all_reduce(top, op=dist.ReduceOp.MAX)  # a constant shift: the softmax does not depend on it
        exp_sum = _Sum.apply(torch.exp(logits - top[:, None]).sum(dim=1))
        rows = torch.nonzero(local >= 0, as_tuple=True)[0]  # the rows whose class this rank holds
        target = _Sum.apply(torch.zeros_like(top).index_put((rows,), logits[rows, local[rows]]))
        valid = y >= 0
        per_row = torch.log(exp_sum) + top - target
        return per_row[valid].sum() / valid.sum().clamp_min(1)

    def _sample(self, local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Partial FC: the slice's centres of classes in the batch, then random others up to the rate."""
        rows = self.end - self.start
        keep = max(1, int(round(self.sample_rate * rows)))
        positive = torch.unique(local[local >= 0])
        if len(positive) < keep:
            score = torch.rand(rows, generator=self._generator).to(local.device)
            score[positive] = 2.0  # positives first
            chosen = torch.sort(torch.topk(score, keep).indices).values
        else:
            chosen = positive
        remap = torch.full((rows,), -1, dtype=torch.long, device=local.device)
        remap[chosen] = torch.arange(len(chosen), device=local.device)
        return self.weight[chosen], torch.where(local >= 0, remap[local.clamp_min(0)], local)

    @torch.no_grad()
    def full_weight(self) -> torch.Tensor | None:
        """The whole head's weight on rank 0 (None elsewhere): the slices gathered in order."""
        return gather_rows(self.weight.detach(), self.num_classes, self.rank, self.world_size)


def _gather_labels(labels: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    parts = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, labels.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def gather_rows(part: torch.Tensor, total: int, rank: int, world_size: int) -> torch.Tensor | None:
    """Rank 0 receives every rank's row slice (:func:`bounds` of ``total``), joined in order; the
    slices differ in length by one at most, so they travel padded to the longest."""
    import torch.distributed as dist

    longest = max(bounds(total, r, world_size)[1] - bounds(total, r, world_size)[0] for r in range(world_size))
    padded = torch.zeros((longest, *part.shape[1:]), dtype=part.dtype, device=part.device)
    padded[:len(part)] = part
    parts = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(parts, padded)
    if rank != 0:
        return None
    return torch.cat([p[:bounds(total, r, world_size)[1] - bounds(total, r, world_size)[0]]
                      for r, p in enumerate(parts)])
