"""LoRA adapters that wrap ``nn.Linear`` layers without changing them, grouped per Transformer block.

``LoRALinear(base)`` computes ``base(x) + scaling · B A x`` (Hu et al., ICLR 2022) with ``A`` of
shape ``(r, in)`` drawn like an ``nn.Linear`` weight and ``B`` of shape ``(out, r)`` at zero, so a
freshly wrapped layer computes exactly what ``base`` does. ``scaling = alpha / r`` (loralib's
convention, alpha = 1 in GS-LoRA). The base layer is held, not copied or re-created: its weight
only changes on :meth:`LoRALinear.merge`, which adds ``scaling · B A`` into it and keeps the
original tensor so :meth:`LoRALinear.unmerge` restores it bit for bit (peft subtracts the
delta again, which is exact only up to rounding).

GS-LoRA (Zhao et al., CVPR 2024) puts LoRA on both FFN linears of every block and treats the LoRA
matrices of one block as one group for the group-lasso penalty; :func:`inject_lora` returns
those groups, :func:`group_norms` and :func:`zero_group_share` measure them.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

FFN_TARGETS = ("mlp.fc1", "mlp.fc2")
ATTENTION_TARGETS = ("attn.qkv", "attn.proj")


class LoRALinear(nn.Module):
    """``y = base(x) + (alpha / r) · x Aᵀ Bᵀ``; ``base`` stays an untouched ``nn.Linear``."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 1.0, init_gain: float = math.sqrt(5)):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=init_gain)  # nn.Linear's own init when gain = sqrt(5)
        self._unmerged_weight: torch.Tensor | None = None
        self.disabled = False  # True: compute base(x) only (the model as it was before the task)

    @property
    def merged(self) -> bool:
        return self._unmerged_weight is not None

    def delta_weight(self) -> torch.Tensor:
        """The update the adapter adds to ``base.weight``: ``scaling · B A`` ``(out, in)``."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged or self.disabled:
            return out
        return out + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling  # (..., in) -> (..., r) -> (..., out)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the adapter into ``base.weight`` (the original is kept for :meth:`unmerge`)."""
        if not self.merged:
            self._unmerged_weight = self.base.weight.detach().clone()
            self.base.weight.add_(self.delta_weight().to(self.base.weight.dtype))

    @torch.no_grad()
    def unmerge(self) -> None:
        """Restore ``base.weight`` exactly as it was before :meth:`merge`."""
        if self.merged:
            self.base.weight.copy_(self._unmerged_weight)
            self._unmerged_weight = None

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scaling={self.scaling:g}, merged={self.merged}"


def inject_lora(model: nn.Module, rank: int = 8, alpha: float = 1.0, targets: tuple[str, ...] = FFN_TARGETS,
                init_gain: float = math.sqrt(5)) -> list[list[LoRALinear]]:
    """Wrap ``targets`` (paths inside each of ``model.blocks``) with LoRA; returns one group per block.

    Every parameter of ``model`` is frozen; only the new ``lora_A`` / ``lora_B`` train.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    groups = []
    for block in model.blocks:
        group = []
        for target in targets:
            parent_path, _, attr = target.rpartition(".")
            parent = block.get_submodule(parent_path) if parent_path else block
            layer = getattr(parent, attr)
            if isinstance(layer, LoRALinear):
                raise ValueError(f"{target} already has a LoRA adapter; merge it first")
            if not isinstance(layer, nn.Linear):
                raise ValueError(f"{target} is a {type(layer).__name__}, not nn.Linear")
            wrapped = LoRALinear(layer, rank, alpha, init_gain)
            setattr(parent, attr, wrapped)
            group.append(wrapped)
        groups.append(group)
    return groups


@contextlib.contextmanager
def adapters_disabled(model: nn.Module):
    """Within the block, every unmerged adapter is bypassed: ``model`` computes what it did before
    the adapters were injected (no copy of the model needed for "before" outputs)."""
    wrapped = [m for m in model.modules() if isinstance(m, LoRALinear)]
    for m in wrapped:
        m.disabled = True
    try:
        yield model
    finally:
        for m in wrapped:
            m.disabled = False


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base layer and put the plain ``nn.Linear`` back; returns how many."""
    wrapped = [(name, module) for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    for name, module in wrapped:
        module.merge()
        parent_path, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_path) if parent_path else model, attr, module.base)
    return len(wrapped)


def group_norms(groups: list[list[LoRALinear]]) -> torch.Tensor:
    """Per group ``sqrt(Σ ‖P‖_F²)`` over its A and B matrices (the group-lasso terms), shape ``(G,)``."""
    return torch.stack([
        torch.sqrt(sum((m.lora_A ** 2).sum() + (m.lora_B ** 2).sum() for m in group)) for group in groups
    ])


def delta_norms(groups: list[list[LoRALinear]]) -> torch.Tensor:
    """Per group ``sqrt(Σ ‖scaling · B A‖_F²)``: how far the block's weights actually move, ``(G,)``."""
    with torch.no_grad():
        return torch.stack([torch.sqrt(sum((m.delta_weight() ** 2).sum() for m in group)) for group in groups])


def zero_group_share(norms: torch.Tensor, tolerance: float = 0.0) -> float:
    """Fraction of groups whose norm is at most ``tolerance`` (GS-LoRA's "zero group ratio")."""
    return float((norms <= tolerance).float().mean()) if len(norms) else 0.0


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter matrices, by module path: saved apart from the base weights."""
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()
            if name.endswith(("lora_A", "lora_B"))}


def save_adapters(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    save_file(lora_state_dict(model), str(path), metadata=metadata)


def load_adapters(model: nn.Module, path: str | Path) -> None:
    """Load adapters saved by :func:`save_adapters` into a model with the same LoRA layout."""
    state = load_file(str(path))
    own = dict(model.named_parameters())
    missing = [k for k in state if k not in own]
    if missing:
        raise ValueError(f"adapter file has parameters the model lacks: {missing[:3]}")
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor)
