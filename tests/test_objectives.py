"""The forgetting objectives as pure functions: where the stranger objective sends a forgotten face."""

import torch
import torch.nn.functional as F

from forgetting.objectives import (bounded_ce, embedding_retention, identity_basis, identity_edit, rank_hinge,
                                   reach, row_gap, stranger_targets, target_loss, unused_directions)


def _rows(c=10, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(d, generator=g)
    return F.normalize(torch.randn(c, d, generator=g) + 1.5 * F.normalize(common, dim=0), dim=1)  # rows share a part


def test_unused_directions_are_orthogonal_to_every_row_and_to_each_other():
    rows = _rows()
    dirs = unused_directions(rows, [2, 5], seed=0)
    for r in dirs.values():
        assert abs(float(r.norm()) - 1) < 1e-5 and float((rows @ r).abs().max()) < 1e-4
    assert abs(float(dirs[2] @ dirs[5])) < 0.6  # independent draws in a 22-dimensional complement
    assert torch.equal(unused_directions(rows, [2], seed=0)[2], dirs[2])  # seeded by the row


def test_a_target_loses_its_own_row_but_keeps_its_relation_to_the_other_people():
    rows = _rows()
    person = 3
    z = F.normalize(rows[person] + 0.05 * torch.randn(4, 32, generator=torch.Generator().manual_seed(1)), dim=1)
    labels = torch.full((4,), person)
    t = stranger_targets(z, labels, rows, unused_directions(rows, [person], seed=0))
    before, after = z @ rows.t(), t @ rows.t()
    assert torch.allclose(t.norm(dim=1), torch.ones(4), atol=1e-5)
    others = [c for c in range(len(rows)) if c != person]
    assert (after[:, person] < before[:, person] - 0.25).all()  # the own row no longer points at the face
    assert (after.argmax(1) != person).all()
    assert (after[:, others] - before[:, others]).abs().max() < 0.35  # everyone else sees about the same face
    assert float((t @ t.t()).min()) > 0.8  # the person's photos still resemble each other


def test_rank_hinge_is_zero_once_the_own_row_is_below_the_best_other_by_the_margin():
    rows = torch.eye(3)
    z = torch.tensor([[0.2, 0.9, 0.0]])
    retained = torch.tensor([1, 2])
    assert float(rank_hinge(z, torch.tensor([0]), rows, retained, margin=0.1)) == 0.0
    assert float(rank_hinge(z, torch.tensor([1]), rows, torch.tensor([0, 2]), margin=0.1)) > 0


def test_rank_hinge_moves_the_face_off_its_own_row_not_towards_another_person():
    rows = torch.eye(3)
    z = torch.tensor([[0.3, 0.9, 0.1]], requires_grad=True)  # person 1, best other row: 0
    rank_hinge(z, torch.tensor([1]), rows, torch.tensor([0, 2]), margin=0.2).backward()
    step = -z.grad[0]  # the direction descent moves the face
    assert step[1] < 0  # away from the own row
    basis, _ = torch.linalg.qr(torch.stack([z.detach()[0], rows[1]], dim=1))  # span{face, own row}
    assert float((step - basis @ (basis.t() @ step)).norm()) < 1e-5 * float(step.norm())  # no pull towards row 0


def test_bounded_terms_vanish_at_their_goal():
    z = F.normalize(torch.randn(5, 8), dim=1)
    assert float(target_loss(z, z)) < 1e-4 and float(embedding_retention(z, z.clone())) < 1e-4
    logits = torch.tensor([[-50.0, 50.0]])
    term, ce = bounded_ce(logits, torch.tensor([0]), bnd=10.0)
    assert float(ce) > 10 and float(term) == 0.0


def test_a_target_ends_the_margin_below_the_best_retained_row_when_asked():
    torch.manual_seed(0)
    rows = F.normalize(torch.randn(6, 16), dim=1)
    z = F.normalize(rows[2] + 0.3 * torch.randn(4, 16), dim=1)  # photos of person 2
    labels = torch.full((4,), 2)
    directions = unused_directions(rows, [2], seed=0)
    retained = torch.tensor([0, 1, 3, 4, 5])
    t = stranger_targets(z, labels, rows, directions, retained, margin=0.3)
    own, best = t @ rows[2], (t @ rows[retained].t()).max(1).values
    assert bool((own <= best - 0.3 + 1e-3).all())
    plain = stranger_targets(z, labels, rows, directions)
    assert float(F.cosine_similarity(t, plain).min()) > 0.5  # the least move that does it, not a new face


def test_the_identity_edit_is_one_linear_map_that_unnames_the_forgotten_and_spares_the_rest():
    rows, people = _rows(c=10, d=32), [3, 7]
    q, r = identity_basis(rows, people, unused_directions(rows, people, seed=0))
    assert torch.allclose(q.t() @ q, torch.eye(2), atol=1e-5) and float((q.t() @ r).abs().max()) < 1e-4
    g = torch.Generator().manual_seed(2)
    faces = F.normalize(rows[people].repeat_interleave(3, 0) + 0.05 * torch.randn(6, 32, generator=g), dim=1)
    labels = torch.tensor(people).repeat_interleave(3)
    edited = identity_edit(faces, q, r, rho=0.75)
    retained = torch.tensor([c for c in range(10) if c not in people])
    assert (row_gap(faces, labels, rows, retained) > 0).all()  # named before
    assert (row_gap(edited, labels, rows, retained) < 0).all()  # nobody's after
    outside = torch.randn(1, 32, generator=g)
    outside = F.normalize(outside - (outside @ q) @ q.t(), dim=1)  # no part in the forgotten people's span
    assert torch.allclose(identity_edit(outside, q, r, 0.75), outside, atol=1e-5)  # such a face is left as it is
    assert float((identity_edit(faces, q, r, 1.0) @ identity_edit(faces, q, r, 1.0).t()).min()) > 0.8 * float(
        (faces @ faces.t()).min())  # rho = 1 moves the identity part whole: the photos still resemble each other


def test_the_rank_hinge_takes_one_margin_per_face():
    rows = _rows()
    z = F.normalize(rows[[1, 1]] + 0.01, dim=1)
    labels = torch.tensor([1, 1])
    retained = torch.tensor([0, 2, 3])
    gap = row_gap(z, labels, rows, retained)
    per_face = rank_hinge(z, labels, rows, retained, margin=torch.stack([-gap[0] + 0.1, -gap[1] - 0.1]))
    assert abs(float(per_face) - 64 * 0.1 / 2) < 1e-3  # the first face 0.1 short of its level, the second past it


def test_procrustes_finds_the_rotation_between_two_embedding_spaces():
    from forgetting.objectives import procrustes

    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(200, 16, generator=g), dim=1)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    w = procrustes(a, a @ q + 0.01 * torch.randn(200, 16, generator=g))
    assert torch.allclose(w @ w.t(), torch.eye(16), atol=1e-5)  # a rotation: cosines between faces kept
    assert (w - q).abs().max() < 0.05


def test_reach_extrapolates_from_the_start_along_the_chord():
    torch.manual_seed(0)
    start, target = F.normalize(torch.randn(5, 16), dim=1), F.normalize(torch.randn(5, 16), dim=1)
    assert torch.allclose(reach(start, target, 1.0), target, atol=1e-6)
    assert torch.allclose(reach(start, target, 0.0), start, atol=1e-6)
    further = reach(start, target, 1.5)
    assert torch.allclose(further.norm(dim=1), torch.ones(5))
    assert ((further * start).sum(1) < (target * start).sum(1)).all()  # further from the start than asked


def test_the_local_map_adds_what_the_fine_tune_did_around_a_face_and_carries_new_faces_the_same_way():
    from forgetting.objectives import carry_local, fit_local_map, linear_map

    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(300, 16, generator=g), dim=1)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    centre = a[0]
    bump = torch.zeros(16)
    bump[3] = 0.5
    near = (a @ centre) > 0.5  # a neighbourhood the fine-tune moved on its own
    b = F.normalize(a @ q + near[:, None].float() * bump, dim=1)
    queries = F.normalize(centre + 0.05 * torch.randn(4, 16, generator=g), dim=1)
    fit = fit_local_map(a, b)
    expected = F.normalize(queries @ q + bump, dim=1)
    linear = F.normalize(queries @ linear_map(a, b), dim=1)
    local = carry_local(fit, queries, 8)
    assert ((local * expected).sum(1) > (linear * expected).sum(1)).all()
    assert ((local * expected).sum(1) > 0.97).all()
