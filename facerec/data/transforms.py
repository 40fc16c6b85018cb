"""Preprocessing shared by training, evaluation and (later) the gallery.

``to_tensor`` is the single normalisation: RGB uint8 -> float in [-1, 1] (mean = std = 0.5, as
in arcface_torch). Training augmentation uses albumentations: small affine jitter and flips for
pose, colour/contrast/blur/noise for capture conditions, and coarse dropout for occlusion — the
nuisances a face crop actually has. Face crops are already roughly centred, so the geometric
jitter stays small.
"""

from __future__ import annotations

import numpy as np
import torch

from facerec.core import compat as _compat  # noqa: F401  (sets NO_ALBUMENTATIONS_UPDATE before albumentations imports)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W, 3)`` or ``(H, W, 3)`` uint8 RGB -> ``(N, 3, H, W)`` float32 in [-1, 1]."""
    if images.ndim == 3:
        images = images[None]
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # NHWC -> NCHW
    return x.float().div_(127.5).sub_(1.0)


def train_augmentation(seed: int | None = None, flip: bool = True):
    """The albumentations pipeline applied to each training crop (uint8 RGB in, uint8 RGB out).

    ``flip=False`` leaves mirroring to the caller (distillation mirrors the teacher's target too).
    """
    import albumentations as A

    return A.Compose(
        [
            *([A.HorizontalFlip(p=0.5)] if flip else []),
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.06, 0.06), rotate=(-10, 10), border_mode=0, p=0.8),
            A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.7),
            A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=20, val_shift_limit=0, p=0.3),
            A.ToGray(p=0.1),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.02, 0.06))], p=0.3),
            A.CoarseDropout(num_holes_range=(1, 2), hole_height_range=(0.1, 0.3), hole_width_range=(0.1, 0.3), p=0.3),
        ],
        seed=seed,
    )


class AugmentedFaces(torch.utils.data.Dataset):
    """In-memory crops with labels; ``transform`` (albumentations) runs per item when given."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i]
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        return to_tensor(image)[0], int(self.labels[i])
