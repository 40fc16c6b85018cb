"""What a forgetting task asks of the forgotten people's faces: the objectives, small pure functions.

**paper** (GS-LoRA, Zhao et al. CVPR 2024, Eq. 3): ``β · ReLU(BND − CE(forget))``, a bounded
ascent of the margin cross-entropy on the forget images. Raising a softmax cross-entropy with a
frozen head can only be done by lowering the true class's logit *relative to the others*, and the
cheapest way is to move the face towards the nearest other classes: the head stops naming the
person, but the face now sits in someone else's region, and a gallery search calls Alice "Bob"
(ORL: 12.5 % of forgotten faces answered ``unknown`` after, 100 % before).

**stranger** (this project): the forgotten person becomes someone the model never learnt. A face
embedding of a trained person is, roughly, what all faces share (pose, light, the common
direction of every embedding) plus the part that sets this person's head row apart from the
other rows. The target for a forget image is its own pre-task embedding with that identity part
(its component along the person's *centred* row ``w_y − mean(w)``) moved onto an unused
direction of the embedding space (one per person, where no head row points): the face keeps its
similarity to every other person and to the gallery (which it had as a non-match before the
task: a trained person is not confused with the others), the person's photos keep resembling
each other (as a stranger's photos do), and the own row no longer singles them out. Where that
still leaves the own row within ``margin`` of the best other row, the target moves further off
the own row, just far enough. A rank hinge holds the head to the same: the own row must end
``margin`` below the best other row, reached by moving away from the own row only (the best
other row is a constant of the hinge: pulling the face towards it would make the person someone
else again). Both terms are bounded (a cosine distance and a hinge), so, like the paper's BND,
they stop pushing. With ``edit_retained`` the retained faces' targets carry the same move of the
forgotten people's identity span (:func:`identity_edit` at rho 1: a retained face has only a small
part there, so its similarities to the retained rows barely change): the LoRA is then asked for one
edit of the embedding space rather than one displacement per training photo, and it carries over
further to photos of the person it never trained on (LFW-100 100-10 on the hybrid: the last unseen
photos that a per-photo edit left named, docs/BENCHMARKS.md).

**calibrated** (this project): the stranger objective asks each *training* photo for its own
displacement, which the LoRA fits photo by photo: the held-out photos of the person follow only
part of the way, so the training photos end more forgotten than photos the model never trained
on, and a loss attack sees it (LFW-100 100-10: AUC 0.31 against a retrained model's 0.47). The
calibrated objective asks every face, forgotten and retained, for one linear edit of the embedding
space (:func:`identity_edit`: the span of the forgotten people's centred rows moved, scaled by
``rho``, onto unused directions), so the LoRA learns a function of the face that carries over to
photos it never saw; and it holds back a share of each forgotten person's images as probes and
pushes a training image no closer to its row than the person's probes are (:func:`rank_hinge`
with the probes' mean :func:`row_gap` as a per-image margin), so the training photos end where
unseen photos of the person end — neither further nor less far.

**reference** (this project, issue 29): the forgotten people become what they are to a model that
never learnt them. A workspace fine-tuned from a model (the shipped one, or a backbone that left
the people out) has that model at hand: it never saw the workspace's people. The target of a
forget image is its embedding under that *starting model*, carried into the workspace model's
space by a map fitted on the replayed faces, which both models embed (``reference_map``: the
rotation of :func:`procrustes`, the :func:`linear_map`, or by default the :func:`local_map`, which
adds what the fine-tune did to the nearest replayed faces: a retrained model is the starting model
fine-tuned on those people, and an unseen face moves with the faces it resembles); the
people's head rows are set to zero at the end, as a retrained model's are (their rows imprint
from no images). No hinge, no unused direction: the faces are asked to look as a stranger's do to
a retrained model — still like each other, unknown as often as a stranger — instead of being
pushed as far as they will go, which left them more forgotten than strangers (LFW-100 100-10:
unknown 62.5 % against a retrained model's 10 %, its loss attack at AUC 0.09 against 0.44).

The retained side is the paper's CE on replay images plus :func:`embedding_retention`: the
gallery stores embeddings and calibrates its threshold on them, and CE alone lets all faces drift
together, which moves every distance the gallery relies on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OBJECTIVES = ("stranger", "calibrated", "paper", "reference")


def bounded_ce(logits: torch.Tensor, labels: torch.Tensor, bnd: float, ascent: str = "all") -> tuple[torch.Tensor, torch.Tensor]:
    """``(ReLU(bnd − CE), CE)`` of margin logits ``(N, C)``; ``ascent="own"`` lets only the true
    class's logit carry gradient (the same value, other people's logits are not pushed up)."""
    if ascent == "own":
        own = F.one_hot(labels, logits.shape[1]).bool()
        logits = torch.where(own, logits, logits.detach())
    ce = F.cross_entropy(logits, labels)
    return F.relu(bnd - ce), ce


def unused_directions(rows: torch.Tensor, people: list[int], seed: int) -> dict[int, torch.Tensor]:
    """A unit direction per forgotten person (head row index), drawn at random (seeded by the row)
    in the span of the embedding directions the head uses least: the right singular vectors of
    the rows ``(C, D)`` beyond the first ``C`` (the exact complement of the rows when C < D), or
    the last quarter when the rows fill the space. No class points there, so a face moved there
    is nobody's, and two forgotten people get nearly orthogonal directions."""
    w = F.normalize(rows.detach().float().cpu(), dim=1)
    _, _, vh = torch.linalg.svd(w, full_matrices=True)  # (D, D), by decreasing singular value
    d = w.shape[1]
    k = d - w.shape[0] if w.shape[0] <= d - 8 else max(8, d // 4)
    basis = vh[-k:]
    out = {}
    for person in people:
        g = torch.Generator().manual_seed(seed * 1_000_003 + int(person))
        out[int(person)] = F.normalize(torch.randn(k, generator=g) @ basis, dim=0).to(rows.device)
    return out


def stranger_targets(before_z: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor,
                     directions: dict[int, torch.Tensor], retained_rows: torch.Tensor | None = None,
                     margin: float = 0.0, iterations: int = 24) -> torch.Tensor:
    """Unit targets ``(N, D)`` for forget images: ``z − c·u_y + c·r_y`` normalised, with ``z`` the
    pre-task embedding, ``u_y`` the person's centred row, ``c = z·u_y`` and ``r_y`` the person's
    unused direction (see the module docstring). With ``retained_rows`` and ``margin``, a target
    whose own row is still not ``margin`` below the best retained row is moved further along
    ``−u_y`` (the least way that does it, found by bisection), so the target and the rank hinge
    ask the same of the face instead of pulling against each other."""
    z = F.normalize(before_z.float(), dim=1)
    w = F.normalize(rows.float(), dim=1)
    u = F.normalize(w[labels] - w.mean(0), dim=1)  # what sets the person's row apart from the others
    r = torch.stack([directions[int(y)] for y in labels.tolist()])
    c = (z * u).sum(1, keepdim=True)
    target = z - c * u + c * r
    if retained_rows is None or not len(retained_rows) or margin <= 0:
        return F.normalize(target, dim=1)

    def short(alpha: torch.Tensor) -> torch.Tensor:  # how far the own row is from margin below the best other
        t = F.normalize(target - alpha[:, None] * u, dim=1)
        return (t * w[labels]).sum(1) - (t @ w[retained_rows].t()).max(1).values + margin

    low, high = torch.zeros(len(z), device=z.device), torch.full((len(z),), 4.0, device=z.device)
    for _ in range(iterations):
        mid = (low + high) / 2
        ok = short(mid) <= 0
        high, low = torch.where(ok, mid, high), torch.where(ok, low, mid)
    alpha = torch.where(short(torch.zeros_like(low)) <= 0, torch.zeros_like(low), high)
    return F.normalize(target - alpha[:, None] * u, dim=1)


def identity_basis(rows: torch.Tensor, people: list[int], directions: dict[int, torch.Tensor]):
    """``(Q, R)``, both ``(D, k)`` with orthonormal columns: the span of the forgotten people's
    centred rows, and as many of their unused directions to move it onto."""
    w = F.normalize(rows.detach().float(), dim=1)
    q, _ = torch.linalg.qr((w[people] - w.mean(0)).t())
    r, _ = torch.linalg.qr(torch.stack([directions[int(p)] for p in people]).t().float())
    return q, r


def identity_edit(z: torch.Tensor, q: torch.Tensor, r: torch.Tensor, rho: float) -> torch.Tensor:
    """The same linear edit for every face, normalised: ``z − QQᵀz + rho · RQᵀz``. A face's part in
    the forgotten people's identity span is moved onto unused directions; ``rho < 1`` keeps less of
    it (what a model that never learnt them would keep is not known exactly; 0.75 puts the
    forgotten people's TAR among their own photos near a retrained model's on LFW-100)."""
    z = F.normalize(z.float(), dim=1)
    c = z @ q
    return F.normalize(z - c @ q.t() + rho * c @ r.t(), dim=1)


def row_gap(z: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, retained_rows: torch.Tensor) -> torch.Tensor:
    """``cos(z, w_y) − max_j cos(z, w_j)`` over the retained rows ``j``, per face (> 0: the head names it)."""
    z = F.normalize(z.float(), dim=1)
    w = F.normalize(rows.float(), dim=1)
    return (z * w[labels]).sum(1) - (z @ w[retained_rows].t()).max(1).values


def target_loss(z: torch.Tensor, targets: torch.Tensor, scale: float = 64.0) -> torch.Tensor:
    """``s · mean(1 − cos(z, target))``, in logit units like the cross-entropies beside it."""
    return scale * (1 - F.cosine_similarity(z.float(), targets, dim=1)).mean()


def rank_hinge(forget_z: torch.Tensor, forget_y: torch.Tensor, rows: torch.Tensor, retained_rows: torch.Tensor,
               margin: float | torch.Tensor, scale: float = 64.0) -> torch.Tensor:
    """``s · mean ReLU(cos(z, w_y) − max_j cos(z, w_j) + margin)`` over retained rows ``j``: the own
    row ends ``margin`` below the best other row, so the head no longer names the person. The best
    other cosine carries no gradient: the face leaves its own row rather than approaching another.
    ``margin`` may be one per face (the calibrated objective's probe levels)."""
    if not len(retained_rows):
        return forget_z.new_zeros(())
    z = F.normalize(forget_z.float(), dim=1)
    w = F.normalize(rows.float(), dim=1)
    own = (z * w[forget_y]).sum(1)
    best_other = (z @ w[retained_rows].t()).max(1).values.detach()
    return scale * F.relu(own - best_other + margin).mean()


def embedding_retention(z: torch.Tensor, before_z: torch.Tensor, scale: float = 64.0) -> torch.Tensor:
    """``s · mean(1 − cos(z, z_before))``: retained faces keep their embeddings, not only their class."""
    return scale * (1 - F.cosine_similarity(z.float(), before_z.float(), dim=1)).mean()


def procrustes(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The rotation ``W`` (``D x D``, orthogonal) minimising ``‖normalise(source) W − normalise(target)‖``
    over paired rows (Schönemann 1966): ``W = U Vᵀ`` of the SVD of ``sourceᵀ target``."""
    a, b = F.normalize(source.float(), dim=1), F.normalize(target.float(), dim=1)
    u, _, vh = torch.linalg.svd(a.t() @ b)
    return u @ vh


def linear_map(source: torch.Tensor, target: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """The linear map ``W`` (``D x D``) minimising ``‖normalise(source) W − normalise(target)‖² +
    ridge·n‖W‖²`` over paired rows: besides a rotation, it carries how the fine-tune drew faces
    together (towards the trained people's rows), which a rotation cannot."""
    a, b = F.normalize(source.float(), dim=1), F.normalize(target.float(), dim=1)
    gram = a.t() @ a + ridge * len(a) * torch.eye(a.shape[1], device=a.device)
    return torch.linalg.solve(gram, a.t() @ b)


def local_map(source: torch.Tensor, target: torch.Tensor, queries: torch.Tensor, neighbours: int = 16,
              ridge: float = 1e-3, residual_scale: float = 1.0) -> torch.Tensor:
    """``queries`` (source space) carried into the target space: the :func:`linear_map`, plus the mean
    residual of their ``neighbours`` nearest paired rows (by source cosine), times ``residual_scale`` —
    a kernel estimate of what the fine-tune did around each query, of which the linear map keeps only
    the global part."""
    return carry_local(fit_local_map(source, target, ridge), queries, neighbours, residual_scale)


def fit_local_map(source: torch.Tensor, target: torch.Tensor, ridge: float = 1e-3) -> tuple[torch.Tensor, ...]:
    """What :func:`local_map` needs of the paired rows, fitted once: ``(source rows normalised, the
    linear map, each row's residual)``, so that new queries (a task's augmented views) are carried
    by :func:`carry_local` without solving again."""
    a, b = F.normalize(source.float(), dim=1), F.normalize(target.float(), dim=1)
    w = linear_map(a, b, ridge)
    return a, w, b - a @ w


def carry_local(fit: tuple[torch.Tensor, ...], queries: torch.Tensor, neighbours: int = 16,
                residual_scale: float = 1.0) -> torch.Tensor:
    """``queries`` carried by a :func:`fit_local_map` fit (see :func:`local_map`)."""
    a, w, residual = fit
    q = F.normalize(queries.float(), dim=1)
    near = (q @ a.t()).topk(min(neighbours, len(a)), dim=1).indices
    return F.normalize(q @ w + residual_scale * residual[near].mean(1), dim=1)


def reach(start: torch.Tensor, target: torch.Tensor, multiple: float) -> torch.Tensor:
    """Unit targets ``multiple`` times as far from ``start`` as ``target`` is (along the chord, then
    normalised): > 1 asks for more than the target, for a fit that stops short of what it is asked
    (the LoRA, held by the retained faces, ends ~2/3 of the way: LFW-100, docs/BENCHMARKS.md)."""
    a, b = F.normalize(start.float(), dim=1), F.normalize(target.float(), dim=1)
    return F.normalize(a + multiple * (b - a), dim=1)
