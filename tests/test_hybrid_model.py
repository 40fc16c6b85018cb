"""The hybrid face ViT (SFace's first K stages as the patch embedding): the registry's contract,
the frozen stem, same-view targets, and LoRA forgetting on its blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facerec.data.transforms import to_tensor
from facerec.distill.same_view import SameViewTeacher, load_stem
from facerec.models import FaceViTConfig, create_model
from facerec.models.sface import SFaceNet
from facerec.training.trainer import optimizer_and_schedule
from forgetting.gslora import Data, GSLoRAConfig, unlearn


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def sface():
    torch.manual_seed(0)
    return SFaceNet().eval()


def test_the_hybrid_keeps_the_contract_and_its_stem_is_sfaces(sface):
    torch.manual_seed(1)
    model = create_model("vit-face-hybrid-test", 5).eval()
    load_stem(model, sface)
    x = to_tensor(_images(3))
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert tokens.shape == (3, 1 + 7 * 7, 32)
        emb = model.embed(x)
        assert torch.allclose(emb, F.normalize(model.forward_head(tokens, pre_logits=True), dim=-1))
        assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
        assert model(x).shape == (3, 5)
        assert torch.equal(model.patch_embed.stem(x), sface.stem(3)(x))


def test_the_stem_is_frozen_and_never_stepped(sface):
    torch.manual_seed(2)
    model = create_model("vit-face-hybrid-test", 4)
    load_stem(model, sface)
    stem_before = {k: v.clone() for k, v in model.patch_embed.stem.state_dict().items()}
    proj_before = model.patch_embed.proj.weight.clone()

    class Cfg:
        lr, min_lr, weight_decay, warmup_epochs, epochs = 1e-2, 1e-4, 0.05, 0, 1

    optimizer, _ = optimizer_and_schedule(model, Cfg, 1)
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in trained for p in model.patch_embed.stem.parameters())
    loss = model(to_tensor(_images(4))).sum()
    loss.backward()
    optimizer.step()
    assert all(torch.equal(v, stem_before[k]) for k, v in model.patch_embed.stem.state_dict().items())
    assert not torch.equal(model.patch_embed.proj.weight, proj_before)


def test_same_view_targets_are_sfaces_embedding_of_the_view_the_student_saw(sface):
    torch.manual_seed(3)
    model = create_model("vit-face-hybrid-test", 4, embedding_dim=128)
    load_stem(model, sface)
    x = to_tensor(_images(4, seed=5))
    with torch.no_grad():
        want = F.normalize(sface(x), dim=1)
    shared = SameViewTeacher(sface, model, torch.device("cpu"))
    assert shared.shares_stem
    model.forward_features(x)  # the stem's output is caught, only the tail runs for the target
    assert torch.allclose(shared.targets(x), want, atol=1e-5)
    fixed = F.normalize(torch.randn(4, 128), dim=1)
    both = shared.targets(x, fixed)  # no student pass since: SFace runs whole on the view
    assert torch.allclose(both, torch.cat([fixed, want], dim=1) / 2 ** 0.5, atol=1e-5)
    other = create_model("vit-face-hybrid-test", 4, embedding_dim=128)  # a stem that is not SFace's
    assert not SameViewTeacher(sface, other, torch.device("cpu")).shares_stem


def test_gs_lora_forgets_on_the_hybrids_blocks_and_leaves_the_stem(sface):
    torch.manual_seed(4)
    model = create_model("vit-face-hybrid-test", 6).eval()
    load_stem(model, sface)
    stem_before = {k: v.clone() for k, v in model.patch_embed.stem.state_dict().items()}
    blocks_before = {k: v.clone() for k, v in model.blocks.state_dict().items()}
    forget = Data(_images(4, seed=6), np.array([0, 0, 1, 1]))
    keep = Data(_images(8, seed=7), np.array([2, 2, 3, 3, 4, 4, 5, 5]))
    stats = unlearn(model, forget, keep, GSLoRAConfig(steps=3, steps_per_person=0, batch_size=4),
                    device=torch.device("cpu"), show_progress=False)
    assert stats["steps"] == 3
    assert all(torch.equal(v, stem_before[k]) for k, v in model.patch_embed.stem.state_dict().items())
    changed = [k for k, v in model.blocks.state_dict().items() if k in blocks_before and not torch.equal(v, blocks_before[k])]
    assert changed and all(".mlp.fc" in k for k in changed)  # only the FFN linears, where LoRA was merged
    assert not any(p.requires_grad for p in model.patch_embed.stem.parameters())  # still frozen afterwards


def test_a_task_runs_the_frozen_stem_once_per_image_and_the_blocks_take_its_output(sface):
    from forgetting.inputs import TaskInputs

    torch.manual_seed(5)
    model = create_model("vit-face-hybrid-test", 6).eval()
    load_stem(model, sface)
    images = _images(5, seed=8)
    calls = []
    handle = model.patch_embed.stem.register_forward_hook(lambda _m, x, _o: calls.append(len(x[0])))
    inputs = TaskInputs(model, images, torch.device("cpu"))
    calls.clear()  # the constructor's probe of the output's shape
    with torch.no_grad():
        want = model.embed(to_tensor(images[[3, 1, 3]]))
        calls.clear()
        got = model.embed(inputs(np.array([3, 1, 3])))
        again = model.embed(inputs(np.array([1, 3, 0])))
    handle.remove()
    assert calls == [2, 1]  # images 1 and 3 once, then only image 0
    assert F.cosine_similarity(got, want).min() > 0.999  # kept as float16
    assert torch.allclose(again[:2], got[[1, 0]], atol=1e-6)
    over = TaskInputs(model, images, torch.device("cpu"), budget_bytes=1)  # over budget: computed per batch
    assert over.table is None and F.cosine_similarity(model.embed(over(np.array([3]))), want[:1]).item() > 0.9999
    model.patch_embed.stem.requires_grad_(True)  # a recipe that trains the stem: nothing is kept
    assert model.frozen_stem() is None and TaskInputs(model, images, torch.device("cpu"))(np.array([0])).shape[1] == 3
    plain = create_model("vit-face-test", 6)
    assert plain.frozen_stem() is None and torch.equal(TaskInputs(plain, images, torch.device("cpu"))(np.array([2])),
                                                       to_tensor(images[[2]]))


def test_the_config_checks_the_cut():
    base = dict(patch_size=16, width=32, depth=2, num_heads=2, embedding_dim=32, stem="sface")
    for bad in (dict(stem_stages=0), dict(stem_stages=15), dict(stem_stages=14, patch_size=8),
                dict(stem_stages=6, img_size=128)):
        assert FaceViTConfig(**{**base, "stem_stages": 6}).problem() is None
        with pytest.raises(ValueError):
            FaceViTConfig(**{**base, **bad})
    with pytest.raises(ValueError):
        FaceViTConfig(stem="conv", stem_stages=3)
    assert "stem_stages" not in FaceViTConfig(stem="conv").to_dict()
    assert FaceViTConfig.from_dict(FaceViTConfig(**{**base, "stem_stages": 12}).to_dict()).stem_stages == 12


def test_a_hybrid_built_from_its_name_takes_its_stem_from_the_shipped_model():
    from safetensors import safe_open

    from facerec import pretrained
    from facerec.core.errors import WorkspaceError

    if pretrained.record()["config"].get("stem") != "sface":
        pytest.skip("the shipped model is not a hybrid")
    model = create_model("vit-face-hybrid-test", 3)
    pretrained.fill_sface_stem(model)
    with safe_open(pretrained.WEIGHTS, "pt") as shipped:
        for key, value in model.patch_embed.stem.state_dict().items():
            assert torch.equal(value, shipped.get_tensor(f"patch_embed.stem.{key}").float())
    deeper = create_model("vit-face-test", 3, stem="sface", stem_stages=14, pool="flatten")
    if pretrained.record()["config"]["stem_stages"] < 14:
        with pytest.raises(WorkspaceError):
            pretrained.fill_sface_stem(deeper)


def test_a_short_same_view_distillation_fits_sface_on_the_views(sface):
    """The recipe's loop with same-view targets: a few epochs bring the tiny hybrid's embedding of
    crops towards SFace's embedding of the same crops."""
    from facerec.distill.recipe import DistillConfig, distill, select_data, target_dim

    rng = np.random.default_rng(0)
    n = 48
    base = np.repeat(rng.integers(0, 255, (12, 7, 7, 3), dtype=np.uint8), 16, axis=1).repeat(16, axis=2)
    images = np.clip(base[np.arange(n) % 12] + rng.normal(0, 6, (n, 112, 112, 3)), 0, 255).astype(np.uint8)
    paths = [f"p{i % 12}/{i}.jpg" for i in range(n)]
    zeros = np.zeros((n, 128), np.float32)
    cfg = DistillConfig(model="vit-face-hybrid-test", epochs=6, batch_size=16, lr=3e-3, warmup_epochs=0.5,
                        teachers="sface", relational_weight=1.0, margin_weight=0.0, exclude_folds=())
    data = select_data(paths, images, np.ones(n, bool), {"sface": zeros, "sface_flip": zeros}, set(), cfg)
    torch.manual_seed(5)
    model = create_model(cfg.model, len(data.identities), embedding_dim=target_dim(data, cfg))
    load_stem(model, sface)
    teacher = SameViewTeacher(sface, model, torch.device("cpu"))

    def agreement() -> float:
        x = to_tensor(data.images)
        with torch.no_grad():
            return float((model.eval().embed(x) * F.normalize(sface(x), dim=1)).sum(1).mean())

    before = agreement()
    result = distill(model, data, cfg, device=torch.device("cpu"), show_progress=False, teacher=teacher)
    after = agreement()
    assert teacher.shares_stem and result["history"][-1]["cosine"] < result["history"][0]["cosine"]
    assert after > before + 0.2, (before, after)
    with pytest.raises(ValueError):
        distill(model, data, cfg, device=torch.device("cpu"), show_progress=False)  # same-view needs SFace


@pytest.mark.parametrize("method", ["finetune", "scrub"])
def test_baselines_train_the_blocks_never_the_frozen_stem(sface, method):
    from forgetting.baselines import BaselineConfig, run_baseline

    torch.manual_seed(6)
    model = create_model("vit-face-hybrid-test", 6).eval()
    load_stem(model, sface)
    stem_before = {k: v.clone() for k, v in model.patch_embed.stem.state_dict().items()}
    forget = Data(_images(4, seed=8), np.array([0, 0, 1, 1]))
    keep = Data(_images(8, seed=9), np.array([2, 2, 3, 3, 4, 4, 5, 5]))
    run_baseline(method, model, forget, keep, BaselineConfig(steps=2, steps_per_person=0, batch_size=4, lr=1e-2),
                 device=torch.device("cpu"), show_progress=False)
    assert all(torch.equal(v, stem_before[k]) for k, v in model.patch_embed.stem.state_dict().items())
    assert not any(p.requires_grad for p in model.patch_embed.stem.parameters())
    assert all(p.requires_grad for p in model.blocks.parameters())
