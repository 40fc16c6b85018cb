"""Probes for the calibrated objective: a share of each forgotten person's images that the task
never trains on, standing for the person's photos the model never saw.

How far the probes have moved off their row tells how far unseen photos of the person go; the
training images are held to no less than that (``objectives`` module docstring), so a membership
attack that compares them finds nothing to tell them apart — as for a model retrained without
the person.
"""

from __future__ import annotations

import numpy as np
import torch

from facerec.data.transforms import to_tensor

from .objectives import row_gap


def hold_back(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(training indices, probe indices)``: ``share`` of each person's images (at least one
    where the person has two or more, never all of them), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    train, probe = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n = min(max(1, int(round(share * len(idx)))), len(idx) - 1) if share > 0 else 0
        probe.extend(idx[:n].tolist())
        train.extend(idx[n:].tolist())
    return np.sort(np.array(train, np.int64)), np.sort(np.array(probe, np.int64))


@torch.no_grad()
def probe_levels(model, images: np.ndarray, labels: np.ndarray, rows: torch.Tensor, retained_rows: torch.Tensor,
                 device, batch_size: int = 64) -> torch.Tensor:
    """Per head row, the mean :func:`~forgetting.objectives.row_gap` of the person's probes under
    the current model (NaN for rows without probes)."""
    level = torch.full((rows.shape[0],), float("nan"), device=device)
    if not len(labels):
        return level
    z = torch.cat([model.forward_head(model.forward_features(to_tensor(images[i:i + batch_size]).to(device)),
                                      pre_logits=True) for i in range(0, len(labels), batch_size)])
    y = torch.from_numpy(labels).to(device)
    gaps = row_gap(z, y, rows, retained_rows)
    for label in y.unique():
        level[label] = gaps[y == label].mean()
    return level
