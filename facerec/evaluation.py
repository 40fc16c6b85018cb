"""Score-level metrics as pure functions of similarity scores (no I/O, no model)."""

from __future__ import annotations

import numpy as np


def threshold_at_far(impostor_scores: np.ndarray, far: float) -> float:
    """The smallest threshold at which at most ``far`` of impostor scores are accepted (score >= t).

    With n impostor scores the achievable FARs are multiples of 1/n; the threshold is placed
    between the ``floor(far * n) + 1``-th highest impostor score and the one above it (midway, so
    float32 scores compared with it later land on the same side).
    """
    scores = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]
    if len(scores) == 0:
        raise ValueError("no impostor scores to calibrate on")
    allowed = int(np.floor(far * len(scores)))  # impostors that may score >= threshold
    if allowed >= len(scores):
        return float(scores[-1])
    rejected = scores[allowed]  # the highest impostor score that must be rejected
    above = scores[allowed - 1] if allowed > 0 else rejected + 1e-3
    if above > rejected:
        return float((above + rejected) / 2)
    return float(rejected + 1e-6 * max(1.0, abs(rejected)))  # a tie at the boundary: reject every tied score
    # (1e-6 rather than nextafter: a float64 step vanishes when compared with float32 scores)


def accept_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of ``scores`` at or above ``threshold`` (TAR on genuine scores, FAR on impostors)."""
    scores = np.asarray(scores, dtype=np.float64)  # compare in float64: float32 would round the threshold
    return float((scores >= threshold).mean()) if len(scores) else float("nan")


def cross_person_scores(vectors: np.ndarray, labels: np.ndarray, max_pairs: int = 5_000_000,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(genuine, impostor)`` cosine scores over all pairs of unit ``vectors`` (sampled when huge)."""
    n = len(vectors)
    i, j = np.triu_indices(n, k=1)
    if len(i) > max_pairs:
        keep = np.random.default_rng(seed).choice(len(i), max_pairs, replace=False)
        i, j = i[keep], j[keep]
    scores = np.einsum("nd,nd->n", vectors[i], vectors[j])
    same = labels[i] == labels[j]
    return scores[same], scores[~same]
