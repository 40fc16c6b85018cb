"""Scoring a student and its teachers on the same pairs, people and crops.

Every embedder here maps crop-store rows to unit vectors; the student and SFace read the store's
crops (the project's YuNet + five-point alignment), dlib its own precomputed chips. The metrics
are the project's (``verification.verification_report``, ``benchmark``'s identification rule),
so the three columns of a report differ only in the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.pairs import pairs_in_folds
from ..evaluation import threshold_at_far
from ..verification import verification_report


def pair_rows(pairs: list[tuple[Path, Path, bool]], paths: list[str], folds=(1,),
              sub_folds: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows (P, 2), same (P,), fold of each pair (P,))`` for the listing's pairs in ``folds``,
    as crop-store rows. The selected pairs are cut into ``sub_folds`` contiguous folds *before*
    pairs with an image missing from the store are dropped, so one lost image does not shift
    the folds' boundaries (LFW: one truncated JPEG)."""
    from ..verification import contiguous_folds

    keep = pairs_in_folds(pairs, folds)
    sub = contiguous_folds(len(keep), sub_folds)
    index = {p: i for i, p in enumerate(paths)}
    out = [(index.get(f"{a.parent.name}/{a.name}"), index.get(f"{b.parent.name}/{b.name}"), s, k)
           for (a, b, s), k in zip(keep, sub)]
    out = [o for o in out if o[0] is not None and o[1] is not None]
    return (np.array([[a, b] for a, b, _, _ in out]), np.array([s for _, _, s, _ in out]),
            np.array([k for *_, k in out]))


def verification(emb: np.ndarray, rows: np.ndarray, same: np.ndarray, fold_of: np.ndarray) -> dict:
    """The project's k-fold report on the pairs ``rows`` of unit embeddings ``emb``."""
    scores = np.einsum("nd,nd->n", emb[rows[:, 0]], emb[rows[:, 1]])
    return verification_report(scores, same, len(np.unique(fold_of)), fold_of)


def identification(emb: np.ndarray, paths: list[str], people: set[str], distractors: set[str],
                   fpir: float = 0.01) -> dict:
    """First photo of each of ``people`` (with two or more) enrolled, the rest probes; one-photo
    ``distractors`` probe the open set. Rank-1 and TPIR at ``fpir``."""
    by_person: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_person.setdefault(p.split("/", 1)[0], []).append(i)
    names = sorted(p for p in people if len(by_person.get(p, [])) >= 2)
    gallery = emb[[by_person[p][0] for p in names]]
    probe_rows = [(i, k) for k, p in enumerate(names) for i in by_person[p][1:]]
    probes, truth = emb[[i for i, _ in probe_rows]], np.array([k for _, k in probe_rows])
    scores = probes @ gallery.T
    rank1 = scores.argmax(1) == truth
    strangers = emb[[i for p in sorted(distractors) for i in by_person.get(p, [])]]
    best = (strangers @ gallery.T).max(1)
    threshold = threshold_at_far(best, fpir)
    hit = rank1 & (scores.max(1) >= threshold)
    return {"people": len(names), "probes": len(probes), "distractors": len(strangers),
            "rank1": float(rank1.mean()), "fpir_target": fpir, "threshold": threshold,
            "fpir": float((best >= threshold).mean()), "tpir": float(hit.mean())}
