"""Unlearning baselines: one interface, each one really trains, the head stays frozen, SalUn's mask holds."""

import numpy as np
import pytest
import torch

from facerec.models import create_model
from forgetting.baselines import BASELINES, BaselineConfig, run_baseline
from forgetting.gslora import Data


def _data(n, classes, seed):
    rng = np.random.default_rng(seed)
    return Data(rng.integers(0, 255, (n, 112, 112, 3), dtype=np.uint8), rng.integers(0, classes, n))


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = create_model("vit-face-test", 4)
    forget = Data(_data(6, 4, 1).images, np.zeros(6, dtype=np.int64))
    retain = Data(_data(12, 4, 2).images, np.random.default_rng(3).integers(1, 4, 12))
    return model, forget, retain


@pytest.mark.parametrize("method", BASELINES)
def test_each_baseline_trains_the_backbone_and_keeps_the_head(setup, method):
    model, forget, retain = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = run_baseline(method, model, forget, retain, BaselineConfig(steps=3, steps_per_person=0, batch_size=4, lr=1e-3, retrain_epochs=1),
                         device=torch.device("cpu"), show_progress=False)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and stats["seconds"] >= 0 and 0 < stats["trainable_ratio"] <= 1
    if method != "retrain":  # a retrained model has a fresh head by definition
        assert torch.equal(before["head.weight"], after["head.weight"])


def test_salun_moves_only_salient_weights(setup):
    model, forget, retain = setup
    before = {k: v.clone() for k, v in model.named_parameters() if not k.startswith("head.")}
    stats = run_baseline("salun", model, forget, retain, BaselineConfig(steps=3, steps_per_person=0, batch_size=4, lr=1e-3, saliency=0.2),
                         device=torch.device("cpu"), show_progress=False)
    moved = sum(int((p != before[k]).sum()) for k, p in model.named_parameters() if k in before)
    total = sum(v.numel() for v in before.values())
    assert 0 < moved <= 0.2 * total + 1 and stats["trainable_parameters"] <= 0.2 * total + 1


def test_unknown_baseline_is_refused(setup):
    model, forget, retain = setup
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline("nope", model, forget, retain, BaselineConfig(), device=torch.device("cpu"))


def test_retrain_seed_shifts_the_recipe_seed(setup):
    """Two retrains with one seed are the same model; another seed draws other batches (the
    campaign's measure of how far apart two equivalent retrained models are)."""
    model, forget, retain = setup
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def retrained(seed):
        model.load_state_dict(start)
        torch.manual_seed(0)  # the fresh model's initial weights
        run_baseline("retrain", model, forget, retain, BaselineConfig(retrain_epochs=1, batch_size=4, seed=seed),
                     device=torch.device("cpu"), show_progress=False)
        return {k: v.clone() for k, v in model.state_dict().items()}

    first, again, other = retrained(0), retrained(0), retrained(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
