"""LoRA: wraps nn.Linear without changing it, merges and unmerges exactly, groups per block."""

import math

import pytest
import torch
from torch import nn

from facerec.models import create_model
from forgetting.lora import (LoRALinear, delta_norms, group_norms, inject_lora, load_adapters, merge_lora,
                             save_adapters, zero_group_share)


def test_a_fresh_adapter_changes_nothing_and_keeps_the_base_layer():
    base = nn.Linear(12, 7)
    before = base.weight.detach().clone()
    layer = LoRALinear(base, rank=4)
    x = torch.randn(5, 12)
    assert layer.base is base and torch.equal(layer(x), base(x))  # B = 0: identical output
    assert torch.count_nonzero(layer.lora_A) > 0 and torch.count_nonzero(layer.lora_B) == 0
    assert torch.equal(base.weight, before) and layer.scaling == pytest.approx(1 / 4)


def test_merge_matches_the_adapter_and_unmerge_restores_bit_for_bit():
    base = nn.Linear(16, 8)
    original = base.weight.detach().clone()
    layer = LoRALinear(base, rank=4, alpha=2.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 16)
    adapted = layer(x)
    expected = base(x) + 0.5 * x @ layer.lora_A.t() @ layer.lora_B.t()
    assert torch.allclose(adapted, expected, atol=1e-6)
    layer.merge()
    assert layer.merged and torch.allclose(layer(x), adapted, atol=1e-5)
    assert torch.allclose(base.weight, original + 0.5 * layer.lora_B @ layer.lora_A, atol=1e-6)
    layer.unmerge()
    assert not layer.merged and torch.equal(base.weight, original)


def test_injected_model_gives_identical_outputs_and_trains_only_lora():
    torch.manual_seed(0)
    model = create_model("vit-face-test", 5).eval()
    x = torch.randn(2, 3, 112, 112)
    reference = model(x)
    groups = inject_lora(model, rank=4)
    assert len(groups) == len(model.blocks) and all(len(g) == 2 for g in groups)  # fc1 and fc2 per block
    assert torch.equal(model(x), reference)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    with pytest.raises(ValueError, match="already has"):
        inject_lora(model)


def test_merge_lora_folds_the_update_in_and_restores_plain_linears(tmp_path):
    torch.manual_seed(0)
    model = create_model("vit-face-test", 5).eval()
    groups = inject_lora(model, rank=4)
    with torch.no_grad():
        for group in groups:
            for m in group:
                m.lora_B.normal_(std=0.05)
    x = torch.randn(2, 3, 112, 112)
    adapted = model(x)
    save_adapters(model, tmp_path / "a.safetensors")
    assert merge_lora(model) == 2 * len(model.blocks)
    assert all(type(b.mlp.fc1) is nn.Linear and type(b.mlp.fc2) is nn.Linear for b in model.blocks)
    assert torch.allclose(model(x), adapted, atol=1e-4)
    # adapters were saved apart from the base weights and load back into a fresh layout
    fresh = create_model("vit-face-test", 5)
    inject_lora(fresh, rank=4)
    load_adapters(fresh, tmp_path / "a.safetensors")
    assert torch.equal(fresh.blocks[0].mlp.fc2.lora_B, groups[0][1].lora_B)


def test_group_norms_and_zero_group_share():
    groups = [[LoRALinear(nn.Linear(4, 3), rank=2)] for _ in range(3)]
    with torch.no_grad():
        groups[0][0].lora_A.fill_(1.0)   # ||A||² = 2*4 = 8, B = 0
        groups[1][0].lora_A.zero_()      # an all-zero group
        groups[2][0].lora_A.fill_(0.5)   # ||A||² = 8 * 0.25 = 2
        groups[2][0].lora_B.fill_(1.0)   # ||B||² = 3*2 = 6
    norms = group_norms(groups)
    assert torch.allclose(norms, torch.tensor([math.sqrt(8), 0.0, math.sqrt(8)]))
    assert zero_group_share(norms) == pytest.approx(1 / 3)
    # the weights only move where B A is non-zero: group 0 has a norm but no update
    deltas = delta_norms(groups)
    assert deltas[0] == 0 and deltas[1] == 0 and deltas[2] > 0
