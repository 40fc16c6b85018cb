"""Metrics as pure functions of similarity scores (no model, no images): thresholds and rates at a
target FAR, and verification protocols on pair scores.

LFW's "unrestricted, labeled outside data" protocol (Huang et al., 2007; the pairs.txt layout): the
6,000 pairs come as 10 folds of 300 genuine then 300 impostor pairs. For each fold the threshold
is the one that maximises accuracy on the other nine, and accuracy is measured on the held-out
fold; the report is the mean and the standard deviation over folds (never the best fold).
insightface's ``.bin`` sets keep the same order, so the same contiguous folds apply.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerec.core.errors import DataError


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


def contiguous_folds(n_pairs: int, folds: int = 10) -> np.ndarray:
    """Fold index of each pair when the pairs are listed fold by fold (LFW, ``.bin`` sets)."""
    if folds < 2:
        raise DataError(f"--folds must be at least 2 (each fold's threshold is chosen on the others), got {folds}")
    if n_pairs < folds:
        raise DataError(f"{n_pairs} pair(s) cannot make {folds} folds; give fewer --folds or more pairs")
    return np.minimum(np.arange(n_pairs) * folds // n_pairs, folds - 1)


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy (``score >= t`` means "same") on these pairs.

    Candidates are midpoints between consecutive distinct scores (and one beyond each end), so
    the choice does not depend on an arbitrary grid.
    """
    order = np.unique(scores)
    candidates = np.concatenate([[order[0] - 1e-6], (order[1:] + order[:-1]) / 2, [order[-1] + 1e-6]])
    sorted_scores = np.sort(scores[same])
    sorted_impostor = np.sort(scores[~same])
    genuine_accepted = len(sorted_scores) - np.searchsorted(sorted_scores, candidates, side="left")
    impostor_rejected = np.searchsorted(sorted_impostor, candidates, side="left")
    return float(candidates[np.argmax(genuine_accepted + impostor_rejected)])


def k_fold_accuracy(scores: np.ndarray, same: np.ndarray, fold_of: np.ndarray) -> dict:
    """Per held-out fold, accuracy at the threshold chosen on the other folds; mean and std."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    accuracies, thresholds = [], []
    for k in np.unique(fold_of):
        test = fold_of == k
        t = best_threshold(scores[~test], same[~test])
        accuracies.append(float(((scores[test] >= t) == same[test]).mean()))
        thresholds.append(t)
    return {"accuracy_mean": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
            "fold_accuracies": accuracies, "fold_thresholds": thresholds}


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> dict:
    """True-accept rate at the threshold that accepts at most ``far`` of the impostor pairs."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    threshold = threshold_at_far(scores[~same], far)
    return {"far_target": far, "threshold": threshold, "far": accept_rate(scores[~same], threshold),
            "tar": accept_rate(scores[same], threshold), "resolvable": bool((~same).sum() * far >= 1)}


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(false-accept rates, true-accept rates)`` over all thresholds."""
    from sklearn.metrics import roc_curve as sk_roc

    fpr, tpr, _ = sk_roc(np.asarray(same, bool), np.asarray(scores, np.float64))
    return fpr, tpr


def verification_report(scores: np.ndarray, same: np.ndarray, folds: int = 10,
                        fold_of: np.ndarray | None = None) -> dict:
    """The full report: k-fold accuracy, TAR at FAR 1e-3 and 1e-2, pair counts.

    ``fold_of`` gives each pair's fold when some pairs of the listing were dropped; by default
    the pairs are the whole listing, fold by fold.
    """
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    fold_of = contiguous_folds(len(same), folds) if fold_of is None else np.asarray(fold_of)
    if not same.any() or same.all():
        raise DataError(f"the {len(same)} pair(s) scored hold no {'genuine' if not same.any() else 'impostor'} pair; "
                        "accuracy and TAR at FAR need both")
    if len(np.unique(fold_of)) < 2:
        raise DataError("the pairs scored fill only one fold: a threshold cannot be chosen on other folds")
    return {"pairs": int(len(same)), "genuine": int(same.sum()), "impostor": int((~same).sum()), "folds": folds,
            **k_fold_accuracy(scores, same, fold_of),
            "tar_at_far": {f"{far:g}": tar_at_far(scores, same, far) for far in (1e-3, 1e-2)}}


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "ROC") -> None:
    """Write a ROC plot (log false-accept axis) of one or more ``name -> (fpr, tpr)`` curves as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from facerec.core.atomic import atomic_write_with

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, (fpr, tpr) in curves.items():
        keep = fpr > 0
        ax.plot(fpr[keep], tpr[keep], label=name)
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
