"""Training on several processes: torchrun's environment, the sampler, and DistributedDataParallel.

``torchrun --nproc_per_node N [--nnodes M ...] -m facerec train ...`` starts N processes per
machine with ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous in their environment;
:func:`from_environment` joins them into one process group (gloo on CPU, NCCL on GPUs). Without
those variables nothing changes: one process, no launcher.

The recipe's batch size is the *global* batch: each of W ranks takes ``batch / W`` samples of it,
so a run means the same thing (the same learning rate for the same batch) whatever the world size.
:class:`EpochSampler` cuts one seeded permutation per epoch into global batches and deals each rank
every W-th sample of them: the union of the ranks' batches at step s is exactly the single
process's batch s, and DDP's averaged gradient is the single process's gradient when the trunk has
no batch norm and no dropout (augmentation is seeded per sample, so it is the same in any process;
dropout masks are not).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from facerec.core.errors import FaceRecError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: one process, no process group

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the workspace, checkpoints and progress."""
        return self.rank == 0

    def to_dict(self) -> dict:
        return {"world_size": self.size, "backend": self.backend}


SINGLE = World()


def from_environment(device: torch.device) -> World:
    """The world torchrun describes in the environment (a process group is started once), or
    :data:`SINGLE` when ``WORLD_SIZE`` is absent or 1."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise FaceRecError("WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers (torchrun sets them)") from None
    if size <= 1:
        return SINGLE
    if not 0 <= rank < size:
        raise FaceRecError(f"RANK {rank} is outside a world of {size} processes")
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())


def device_for(world: World, device: torch.device) -> torch.device:
    """Each GPU process drives the GPU of its local rank."""
    if device.type == "cuda" and world.backend is not None:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def per_rank_batch(batch_size: int, world: World) -> int:
    if batch_size % world.size:
        raise FaceRecError(f"the batch size {batch_size} (the global batch) must be a multiple of the "
                           f"{world.size} processes")
    return batch_size // world.size


class EpochSampler(torch.utils.data.Sampler):
    """One epoch's samples for one rank: ``randperm(n)`` seeded with ``seed`` (the permutation a
    shuffling DataLoader draws from the same generator, as training always had), cut to whole global batches, every
    ``world.size``-th sample from ``world.rank`` on."""

    def __init__(self, n: int, batch_size: int, seed: int, world: World = SINGLE):
        self.n, self.batch_size, self.seed, self.world = n, batch_size, seed, world

    def steps(self) -> int:
        return self.n // self.batch_size

    def __len__(self) -> int:
        return self.steps() * self.batch_size // self.world.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # the draw a shuffling DataLoader makes
        order = torch.randperm(self.n, generator=generator)  # first (its base seed): runs keep their order
        return iter(order[self.world.rank:self.steps() * self.batch_size:self.world.size].tolist())


def wrap(model: torch.nn.Module, world: World, device: torch.device, *, sum_gradients: bool = False):
    """``model`` in DistributedDataParallel (itself for one process). ``sum_gradients``: add the
    ranks' gradients instead of averaging them, for a loss that is already the global batch's mean
    on every rank (the sharded head's)."""
    if world.backend is None:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if sum_gradients:
        ddp.register_comm_hook(None, _sum_hook)
    return ddp


def _sum_hook(state, bucket):
    import torch.distributed as dist

    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda fut: fut.value()[0])


def barrier(world: World) -> None:
    if world.backend is not None:
        import torch.distributed as dist

        dist.barrier()
