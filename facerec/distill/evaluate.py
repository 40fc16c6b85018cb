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
from facerec.metrics import threshold_at_far, verification_report


def pair_rows(pairs: list[tuple[Path, Path, bool]], paths: list[str], folds=(1,),
              sub_folds: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows (P, 2), same (P,), fold of each pair (P,))`` for the listing's pairs in ``folds``,
    as crop-store rows. The selected pairs are cut into ``sub_folds`` contiguous folds *before*
    pairs with an image missing from the store are dropped, so one lost image does not shift
    the folds' boundaries (LFW: one truncated JPEG)."""
    from facerec.metrics import contiguous_folds

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



def open_set_scores(emb: np.ndarray, paths: list[str], people: set[str], gallery_size: int = 100,
                    draws: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """A gallery, not a pair: ``gallery_size`` of ``people`` (first photo each) enrolled, every
    photo of the others searched as a stranger, over ``draws`` random galleries. Returns the
    strangers' best scores, the enrolled people's other photos' scores when their best match is
    them (-inf when it is someone else), and what was drawn."""
    rng = np.random.default_rng(seed)
    by_person: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        person = p.split("/", 1)[0]
        if person in people:
            by_person.setdefault(person, []).append(i)
    names = sorted(by_person)
    several = [p for p in names if len(by_person[p]) >= 2]
    if len(several) < gallery_size or len(names) <= gallery_size:
        raise ValueError(f"{len(several)} people with two photos: too few for a gallery of {gallery_size}")
    strangers_best, genuine = [], []
    for _ in range(draws):
        enrolled = sorted(rng.choice(several, gallery_size, replace=False).tolist())
        gallery = emb[[by_person[p][0] for p in enrolled]]
        inside = set(enrolled)
        strangers = [i for p in names if p not in inside for i in by_person[p]]
        strangers_best.append((emb[strangers] @ gallery.T).max(1))
        probes = [(i, k) for k, p in enumerate(enrolled) for i in by_person[p][1:]]
        scores = emb[[i for i, _ in probes]] @ gallery.T
        right = scores.argmax(1) == np.array([k for _, k in probes])
        genuine.append(np.where(right, scores.max(1), -np.inf))
    pooled = np.concatenate(strangers_best)
    return pooled, np.concatenate(genuine), {"gallery_size": gallery_size, "draws": draws, "people": len(names),
                                             "stranger_searches": int(len(pooled)), "seed": seed}


def open_set_threshold(emb: np.ndarray, paths: list[str], people: set[str], fpir: float = 0.01, **draw) -> dict:
    """The threshold at which a stranger searched against the gallery is accepted as someone with
    rate ``fpir`` (pooled over the draws of :func:`open_set_scores`), with the TPIR it gives."""
    strangers, genuine, meta = open_set_scores(emb, paths, people, **draw)
    return {**open_set_check(strangers, genuine, threshold_at_far(strangers, fpir)), "fpir_target": fpir, **meta}


def open_set_check(strangers: np.ndarray, genuine: np.ndarray, threshold: float) -> dict:
    """FPIR and TPIR of ``threshold`` over scores from :func:`open_set_scores`."""
    return {"threshold": round(float(threshold), 6), "fpir": float((strangers >= threshold).mean()),
            "tpir": float((genuine >= threshold).mean())}
