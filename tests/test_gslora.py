"""One GS-LoRA task: its step budget grows with the people named; pre-task embeddings are computed once;
the retained faces' targets."""

from pathlib import Path

import numpy as np
import torch

from facerec.data.transforms import to_tensor
from facerec.models import create_model
from forgetting.gslora import Data, GSLoRAConfig, task_steps, unlearn
from forgetting.inputs import TaskInputs
from forgetting.objectives import embedding_retention, identity_edit
from forgetting.terms import BeforeCache, ForgetTerm
from forgetting.lora import inject_lora


def _data(labels: list[int], seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    return Data(rng.integers(0, 256, (len(labels), 112, 112, 3), dtype=np.uint8), np.array(labels, dtype=np.int64))


def test_the_step_budget_grows_with_the_people_a_request_names():
    assert task_steps(120, 12, _data([0, 0, 1])) == 120
    assert task_steps(120, 12, _data([p for p in range(20) for _ in range(2)])) == 240
    assert task_steps(50, 0, _data(list(range(30)))) == 50  # 0 per person: exactly ``steps``
    torch.manual_seed(0)
    model = create_model("vit-face-test", 6).eval()
    stats = unlearn(model, _data([0, 1, 2]), _data([3, 4, 5], seed=1), GSLoRAConfig(steps=1, steps_per_person=2,
                                                                                   batch_size=2),
                    device=torch.device("cpu"), show_progress=False)
    assert stats["steps"] == 6


def test_pre_task_embeddings_are_the_model_without_its_adapters_and_computed_once():
    torch.manual_seed(0)
    model = create_model("vit-face-test", 4).eval()
    images = _data([0, 1, 2, 3]).images
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(to_tensor(images)), pre_logits=True)
    groups = inject_lora(model, rank=4)
    with torch.no_grad():
        for group in groups:
            for layer in group:
                layer.lora_B.normal_()  # the adapted model now differs from the pre-task one
    cache = BeforeCache(model, (len(images),), torch.device("cpu"))
    inputs = TaskInputs(model, images, torch.device("cpu"))
    got = cache.get(0, np.array([2, 0, 2]), inputs)
    assert torch.allclose(got, expected[[2, 0, 2]], atol=1e-5)
    assert cache.known[0].tolist() == [True, False, True, False]
    calls = []
    handle = model.blocks[0].register_forward_hook(lambda *_: calls.append(1))
    cache.get(0, np.array([0, 2]), inputs)
    assert not calls  # both already known: no forward pass
    handle.remove()


def test_set_options_are_read_as_their_fields_types_and_checked():
    cfg = GSLoRAConfig().with_options(["keep_weight=2", "steps=30", "attention=true", "objective=paper", "rank-margin=0.2"])
    assert (cfg.keep_weight, cfg.steps, cfg.attention, cfg.objective, cfg.rank_margin) == (2.0, 30, True, "paper", 0.2)
    assert GSLoRAConfig().with_options([]) == GSLoRAConfig()
    for bad in ("steps=1.5", "attention=maybe", "probe_share=1", "keep_weight=-1", "objective=ce", "=3"):
        try:
            GSLoRAConfig().with_options([bad])
        except ValueError as err:
            assert "Traceback" not in str(err)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_edit_retained_asks_the_replayed_faces_for_the_same_identity_edit_as_the_forgotten():
    """``edit_retained``: the retained-embedding term's target is the pre-task embedding with the
    forgotten people's identity span moved (``identity_edit``, rho 1), not the embedding itself, so
    the term is non-zero on the unchanged model; without it, the unchanged model keeps every face."""
    torch.manual_seed(0)
    model = create_model("vit-face-test", 6).eval()
    forget, retain = _data([0, 0, 1]), _data([2, 3, 4, 5], seed=1)
    f_idx, r_idx = np.arange(3), np.arange(4)
    with torch.no_grad():
        z = model.forward_head(model.forward_features(to_tensor(np.concatenate([forget.images, retain.images]))),
                               pre_logits=True)
    y = torch.from_numpy(np.concatenate([forget.labels, retain.labels]))
    keeps = {}
    for edit in (False, True):
        term = ForgetTerm(model, forget.images, forget.labels, retain.labels,
                          GSLoRAConfig(objective="stranger", edit_retained=edit),
                          torch.device("cpu"))
        term.bind(TaskInputs(model, forget.images, torch.device("cpu")), TaskInputs(model, retain.images, torch.device("cpu")))
        _, keeps[edit], _ = term(0, f_idx, r_idx, y, z, model.head(z))
        if edit:
            expected = embedding_retention(z[3:], identity_edit(z[3:], *term.basis, 1.0))
    assert float(keeps[False]) < 1e-4
    assert float(keeps[True]) > 1e-3
    assert torch.allclose(keeps[True], expected, atol=1e-5)


def _reference_task(tiny_trained):
    """``(model, starting model, forget set, retained set)``: the tiny workspace's model, a starting
    model near it (the fine-tune's starting point: near, not the same), its first two people to forget."""
    import copy

    from facerec.workspace.workspace import Workspace
    from forgetting.evaluate import task_sets

    ws = Workspace(tiny_trained[1])
    manifest = ws.manifest()
    rows = {n: i for i, n in enumerate(manifest["identities"])}
    names = list(rows)
    sets = task_sets(Path(manifest["data"]["root"]), ws.split(), rows, names[:2], names[2:])
    model = ws.load_model(torch.device("cpu")).eval()
    torch.manual_seed(0)
    start = copy.deepcopy(model)
    with torch.no_grad():
        for p in start.parameters():
            p.add_(0.3 * p.std() * torch.randn_like(p))
    return model, start, sets["forget_train"], sets["retain_train"]


def test_the_reference_objective_brings_forgotten_faces_to_the_starting_model_and_zeroes_their_rows(tiny_trained):
    """The ``reference`` objective (issue 29): a forget image's target is its embedding under the
    model the workspace started from, rotated into the task model's space; after the task the
    faces are nearer those targets, the retained faces where they were, the people's rows zero."""
    import copy

    from forgetting.objectives import procrustes

    model, start, forget, retain = _reference_task(tiny_trained)

    def embed(m, data):
        with torch.no_grad():
            return torch.nn.functional.normalize(m.forward_head(m.forward_features(to_tensor(data.images)), pre_logits=True), dim=1)

    target = torch.nn.functional.normalize(embed(start, forget) @ procrustes(embed(start, retain), embed(model, retain)), dim=1)
    kept_before, near_before = embed(model, retain), (embed(model, forget) * target).sum(1).mean()
    cfg = GSLoRAConfig(objective="reference", steps=80, steps_per_person=0, batch_size=8, replay_batch_size=16,
                       stranger_weight=10.0)  # the tiny model's retained CE is large: weigh the target up
    fallback = copy.deepcopy(model)  # no starting model: the stranger objective, rows kept
    assert unlearn(fallback, forget, retain, cfg, device=torch.device("cpu"), show_progress=False)["config"]["objective"] == "stranger"
    assert fallback.head.weight[:2].abs().min() > 0
    unlearn(model, forget, retain, cfg, device=torch.device("cpu"), show_progress=False, reference=start)
    near_after = (embed(model, forget) * target).sum(1).mean()
    assert near_after > near_before + 0.5 * (1 - near_before), (near_before, near_after)
    assert (embed(model, retain) * kept_before).sum(1).mean() > 0.9
    assert model.head.weight[:2].abs().max() == 0 and model.head.weight[2:].abs().min() > 0


def test_augmented_forget_views_carry_their_own_reference_targets(tiny_trained):
    """``forget_views`` (issue 29): a forget batch's rows become augmented views of the same photos,
    each with its own target (the view under the starting model, carried by the task's map), so the
    LoRA fits a function of the face rather than ~10 photos per person; a task with views still
    brings the forgotten faces to their targets."""
    from forgetting.gslora import _batch, _ForgetViews

    model, start, forget, retain = _reference_task(tiny_trained)
    cpu = torch.device("cpu")
    for share, reach in ((1.0, 1.0), (0.5, 2.0)):
        cfg = GSLoRAConfig(objective="reference", forget_views=share, reference_reach=reach)
        term = ForgetTerm(model, forget.images, forget.labels, retain.labels, cfg, cpu, start)
        inputs = TaskInputs(model, forget.images, cpu), TaskInputs(model, retain.images, cpu)
        term.bind(*inputs)
        f_idx = np.arange(len(forget))
        views = _ForgetViews(term, inputs[0], cfg)
        x, _, nf, targets = views(_batch(inputs, forget, retain, f_idx, np.arange(4), cpu), f_idx)
        changed = (x[:nf] - inputs[0](f_idx)).flatten(1).abs().amax(1) > 0
        moved = (targets - term.forget_targets(f_idx)).abs().amax(1) > 1e-4
        assert torch.equal(changed, moved) and torch.allclose(targets.norm(dim=1), torch.ones(nf))
        assert 0 < int(changed.sum()) <= nf and (share < 1 or int(changed.sum()) >= 3 * nf // 4)  # a view may come out as the photo
        assert torch.equal(x[nf:], inputs[1](np.arange(4)))  # replay rows as they were
    cfg = GSLoRAConfig(objective="reference", steps=80, steps_per_person=0, batch_size=8, replay_batch_size=16,
                       stranger_weight=10.0, forget_views=0.5)
    term = ForgetTerm(model, forget.images, forget.labels, retain.labels, cfg, cpu, start)
    term.bind(TaskInputs(model, forget.images, cpu), TaskInputs(model, retain.images, cpu))
    target = term.forget_targets(np.arange(len(forget)))

    def near(m):
        with torch.no_grad():
            z = m.forward_head(m.forward_features(to_tensor(forget.images)), pre_logits=True)
        return float((torch.nn.functional.normalize(z, dim=1) * target).sum(1).mean())

    before = near(model)
    unlearn(model, forget, retain, cfg, device=cpu, show_progress=False, reference=start)
    assert near(model) > before + 0.5 * (1 - before), (before, near(model))


def test_forget_views_need_the_reference_objective():
    import pytest

    with pytest.raises(ValueError, match="forget_views needs objective=reference"):
        GSLoRAConfig(objective="stranger", forget_views=0.5).check()
    torch.manual_seed(0)
    model = create_model("vit-face-test", 6).eval()
    stats = unlearn(model, _data([0, 1]), _data([3, 4], seed=1),
                    GSLoRAConfig(objective="reference", forget_views=0.5, steps=1, steps_per_person=0, batch_size=2),
                    device=torch.device("cpu"), show_progress=False)  # no starting model: the stranger objective
    assert stats["config"]["objective"] == "stranger" and stats["config"]["forget_views"] == 0.0
