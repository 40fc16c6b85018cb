import math

import pytest
import torch

from facerec.models.margins import arcface, cosface, scale_only


def _cos():
    return torch.tensor([[0.8, 0.1, -0.3], [0.2, 0.5, 0.4], [-0.95, 0.0, 0.1]])


def test_cosface_shifts_only_the_target_and_scales_everything():
    cos, labels = _cos(), torch.tensor([0, 2, 0])
    out = cosface(cos, labels, s=64.0, m=0.35)
    expected = 64.0 * cos.clone()
    expected[0, 0] -= 64.0 * 0.35
    expected[1, 2] -= 64.0 * 0.35
    expected[2, 0] -= 64.0 * 0.35
    assert torch.allclose(out, expected)


def test_arcface_adds_the_angle_on_the_target():
    cos, labels = _cos(), torch.tensor([0, 1, 1])
    out = arcface(cos, labels, s=64.0, m=0.5)
    assert out[0, 0].item() == pytest.approx(64.0 * math.cos(math.acos(0.8) + 0.5), rel=1e-5)
    assert out[1, 1].item() == pytest.approx(64.0 * math.cos(math.acos(0.5) + 0.5), rel=1e-5)
    non_target = torch.ones_like(cos, dtype=torch.bool)
    non_target[[0, 1, 2], [0, 1, 1]] = False
    assert torch.allclose(out[non_target], 64.0 * cos[non_target])


def test_arcface_falls_back_past_pi_minus_m():
    # cos θ = -0.95 < cos(π - 0.5) ≈ -0.878: θ + m would pass π, so the CosFace-like fallback applies
    out = arcface(_cos(), torch.tensor([0, 0, 0]), s=64.0, m=0.5)
    assert out[2, 0].item() == pytest.approx(64.0 * (-0.95 - math.sin(math.pi - 0.5) * 0.5), rel=1e-5)


def test_margins_make_the_target_harder():
    cos, labels = _cos(), torch.tensor([0, 1, 2])
    plain = scale_only(cos)
    for margin in (cosface, arcface):
        out = margin(cos, labels)
        assert (out[torch.arange(3), labels] < plain[torch.arange(3), labels]).all()


def test_rows_labelled_minus_one_are_only_scaled():
    cos = _cos()
    labels = torch.tensor([-1, 1, -1])
    for margin in (cosface, arcface):
        out = margin(cos, labels)
        assert torch.allclose(out[[0, 2]], 64.0 * cos[[0, 2]])


def test_margins_are_differentiable_everywhere_used():
    cos = _cos().requires_grad_(True)
    for margin in (cosface, arcface):
        loss = torch.nn.functional.cross_entropy(margin(cos, torch.tensor([0, 1, 2])), torch.tensor([0, 1, 2]))
        (grad,) = torch.autograd.grad(loss, cos)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_evaluation_logits_ignore_the_label():
    cos = _cos()
    assert torch.equal(scale_only(cos, torch.tensor([0, 1, 2])), scale_only(cos, torch.tensor([2, 2, 2])))
