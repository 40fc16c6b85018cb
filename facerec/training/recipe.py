"""The training recipe's settings, free of torch: the CLI builds its parser (and answers
``--help``) from these defaults without importing torch, timm or the model code (issue 12's
start-up). ``training.trainer`` runs the recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass

FINE_TUNE_EPOCHS, FINE_TUNE_LR = 10, 1e-4  # fine-tuning a face model: few epochs, a low rate (training.run)
CLIP_NORM = 5.0  # gradients clipped at this norm: a ViT's early steps under a margin loss spike
SHARD_HEAD_FROM = 50_000  # sharded_head "auto": split the head across processes from this many people


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 32
    lr: float = 5e-4
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 3.0
    margin: str = "cosface"  # a key of facerec.models.MARGINS
    seed: int = 0
    augment: bool = True
    sharded_head: str = "auto"  # "auto" (several processes and >= SHARD_HEAD_FROM people), "on" or "off"
    head_sample_rate: float = 1.0  # Partial FC's share of negative class centres per step (sharded head only)

    def to_dict(self) -> dict:
        return asdict(self)
