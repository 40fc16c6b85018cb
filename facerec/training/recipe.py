"""The training recipe's settings, free of torch: the CLI builds its parser (and answers
``--help``) from these defaults without importing torch, timm or the model code (issue 12's
start-up). ``training.trainer`` runs the recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass

FINE_TUNE_EPOCHS, FINE_TUNE_LR = 10, 1e-4  # fine-tuning a face model: few epochs, a low rate (training.run)


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

    def to_dict(self) -> dict:
        return asdict(self)
