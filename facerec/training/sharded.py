"""The training loop's side of the sharded head (``sharded_head.ShardedCosineHead``): when to
shard, the optimizer step across the trunk and the slices, and the head's state gathered for a
checkpoint and sliced again on resume.

While it trains, the model's own head is set aside (``model.head`` is an identity, so the trunk
under DistributedDataParallel returns embeddings and holds no parameter that differs between
ranks); each rank trains its slice with its own AdamW, stepped on the same schedule; the trunk's
gradients are summed across ranks (the loss is already the global batch's mean on each). At the
end rank 0 gathers the slices back into the model's head.
"""

from __future__ import annotations

import torch
from torch import nn

from facerec.training.recipe import CLIP_NORM, SHARD_HEAD_FROM
from facerec.training.sharded_head import ShardedCosineHead, bounds, gather_rows


def sharded_head(model: nn.Module, cfg, world) -> tuple[ShardedCosineHead | None, nn.Module | None]:
    """``(this rank's slice of model's head, the head set aside)`` when the recipe shards it
    (``model.head`` is an identity until :func:`restore_head`), else ``(None, None)``."""
    if cfg.sharded_head not in ("auto", "on", "off"):
        raise ValueError(f"sharded_head must be auto, on or off, got {cfg.sharded_head!r}")
    if cfg.sharded_head != "on" and cfg.head_sample_rate != 1.0:
        raise ValueError("head_sample_rate needs the sharded head (sharded_head on)")
    wanted = cfg.sharded_head == "on" or (cfg.sharded_head == "auto" and model.num_classes >= SHARD_HEAD_FROM)
    if world.size == 1 or not wanted:
        return None, None
    if model.num_classes < world.size:
        raise ValueError(f"{model.num_classes} people cannot be split across {world.size} processes")
    head = ShardedCosineHead.from_full(model.head.weight.detach(), world.rank, world.size,
                                       sample_rate=cfg.head_sample_rate, seed=cfg.seed)
    set_aside, model.head = model.head, nn.Identity()
    return head, set_aside


def sharded_step(model, head, trunk_opt, head_opt, loss: torch.Tensor, global_step: int) -> None:
    """Backward, the gradient norm over the whole model (the trunk's, the same on every rank after
    the sum, plus every rank's slice) clipped at ``CLIP_NORM`` as one process clips it, then both
    optimizers and schedules."""
    import torch.distributed as dist

    (optimizer, scheduler), (h_optimizer, h_scheduler) = trunk_opt, head_opt
    optimizer.zero_grad(set_to_none=True)
    h_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trunk = [p.grad for p in model.parameters() if p.grad is not None]
    slice_sq = head.weight.grad.pow(2).sum() if head.weight.grad is not None else torch.zeros((), device=loss.device)
    dist.all_reduce(slice_sq)
    total = torch.sqrt(sum((g.pow(2).sum() for g in trunk), torch.zeros((), device=loss.device)) + slice_sq)
    scale = (CLIP_NORM / (total + 1e-6)).clamp(max=1.0)  # torch's clip_grad_norm_ rule
    for g in trunk + ([head.weight.grad] if head.weight.grad is not None else []):
        g.mul_(scale)
    optimizer.step()
    h_optimizer.step()
    scheduler.step_update(global_step)
    h_scheduler.step_update(global_step)


def head_state(head: ShardedCosineHead, head_opt) -> dict | None:
    """The whole head and its AdamW moments, gathered on rank 0 (None elsewhere); collective."""
    optimizer, scheduler = head_opt
    moments = optimizer.state.get(head.weight, {})
    out = {"weight": head.full_weight(), "scheduler": scheduler.state_dict(),
           "step": float(moments["step"]) if "step" in moments else 0.0}
    for key in ("exp_avg", "exp_avg_sq"):
        part = moments.get(key, torch.zeros_like(head.weight))
        out[key] = gather_rows(part, head.num_classes, head.rank, head.world_size)
    return out if head.rank == 0 else None


def load_head_state(head: ShardedCosineHead, head_opt, state: dict) -> None:
    """This rank's rows of a checkpoint's gathered head (:func:`head_state`)."""
    optimizer, scheduler = head_opt
    start, end = bounds(head.num_classes, head.rank, head.world_size)
    with torch.no_grad():
        head.weight.copy_(state["weight"][start:end])
    if state["step"]:
        optimizer.state[head.weight] = {"step": torch.tensor(state["step"]),
                                        **{k: state[k][start:end].clone().to(head.weight.device)
                                           for k in ("exp_avg", "exp_avg_sq")}}
    scheduler.load_state_dict(state["scheduler"])


def restore_head(model: nn.Module, head: ShardedCosineHead, set_aside: nn.Module) -> None:
    """Put the model's head back, holding the trained slices (complete on rank 0)."""
    weight = head.full_weight()
    model.head = set_aside
    if weight is not None:
        with torch.no_grad():
            model.head.weight.copy_(weight)
