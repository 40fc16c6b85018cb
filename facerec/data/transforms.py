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


class ArrayFaces:
    """Crops already in memory: ``(N, H, W, 3)`` uint8 RGB and ``(N,)`` labels, as a sample source."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray | None, int]:
        return self.images[i], int(self.labels[i])

    def decode(self, rows) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``(images, labels, unreadable)`` of ``rows``, as ``streaming.StreamedFaces.decode``."""
        rows = np.asarray(rows, np.int64)
        return self.images[rows], self.labels[rows], []


class AugmentedFaces(torch.utils.data.Dataset):
    """Training samples as tensors from a sample source (``ArrayFaces``, or a streamed dataset
    whose ``source[i]`` decodes sample i and gives ``(None, -1)`` when it cannot be read).

    ``per_sample``: ``transform`` (albumentations) is seeded per sample from ``(seed, i)``
    (:meth:`set_epoch`), so a sample's augmentation does not depend on which loader worker or which
    process draws it: a run on several processes, or with loader workers, augments exactly as one
    process does. Otherwise it draws from one stream seeded once per epoch (one process, no
    workers: the stream training has always used). An unreadable sample becomes a black image
    with label -1, which the loss leaves out.
    """

    def __init__(self, source, transform=None, size: int = 112, per_sample: bool = False):
        self.source, self.transform, self.size, self.seed, self.per_sample = source, transform, size, 0, per_sample

    def set_epoch(self, seed: int) -> None:
        self.seed = seed
        if self.transform is not None and not self.per_sample:
            self.transform.set_random_seed(seed)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        image, label = self.source[i]
        if image is None:
            return torch.zeros(3, self.size, self.size), -1
        if self.transform is not None:
            if self.per_sample:
                self.transform.set_random_seed(self.seed * 1_000_003 + i)
            image = self.transform(image=image)["image"]
        return to_tensor(image)[0], int(label)
