"""The calibrated objective's probes: held back per person, measured per head row."""

import numpy as np
import torch

from facerec.models import create_model
from forgetting.probes import hold_back, probe_levels


def test_probes_are_a_share_of_each_person_never_all_of_them_and_seeded():
    labels = np.array([0] * 8 + [1] * 2 + [2] * 1 + [3] * 20)
    train, probe = hold_back(labels, 0.25, seed=0)
    assert sorted(np.r_[train, probe].tolist()) == list(range(len(labels)))  # a split: nothing lost, nothing twice
    counts = {int(c): int((labels[probe] == c).sum()) for c in np.unique(labels)}
    assert counts == {0: 2, 1: 1, 2: 0, 3: 5}  # a quarter; one of two; none of one
    assert set(labels[train].tolist()) == {0, 1, 2, 3}  # everyone keeps training images
    again, _ = hold_back(labels, 0.25, seed=0)
    other, _ = hold_back(labels, 0.25, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert len(hold_back(labels, 0.0, seed=0)[1]) == 0


def test_probe_levels_are_the_mean_row_gap_per_person_and_nan_without_probes():
    torch.manual_seed(0)
    model = create_model("vit-face-test", 5).eval()
    images = np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    labels = np.array([1, 1, 3, 3])
    level = probe_levels(model, images, labels, model.head.weight, torch.tensor([0, 2, 4]), torch.device("cpu"))
    assert level.shape == (5,) and torch.isnan(level[[0, 2, 4]]).all()
    assert torch.isfinite(level[[1, 3]]).all() and float(level[1].abs()) <= 2
