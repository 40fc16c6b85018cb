"""Verification protocol: k-fold thresholds chosen on the other folds, TAR at FAR, ROC output."""

import numpy as np
import pytest

from facerec.metrics import (best_threshold, contiguous_folds, k_fold_accuracy, plot_roc, roc_curve,
                                             tar_at_far, verification_report)


def test_lfw_folds_are_contiguous_blocks():
    folds = contiguous_folds(6000)
    assert (folds[:600] == 0).all() and (folds[-600:] == 9).all() and np.bincount(folds).tolist() == [600] * 10


def test_best_threshold_separates_separable_scores():
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    same = np.array([True, True, True, False, False, False])
    t = best_threshold(scores, same)
    assert 0.3 < t < 0.7


def test_each_fold_is_judged_at_a_threshold_from_the_other_folds():
    # fold 0's scores are shifted: a threshold fitted on fold 0 itself would score it perfectly,
    # one fitted on the other folds cannot, so the protocol must report less than 1 for fold 0
    rng = np.random.default_rng(0)
    same = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
    scores = np.where(same, 0.8, 0.2) + rng.normal(0, 0.01, len(same))
    scores[:60] += 0.45  # fold 0: impostors now at ~0.65, above the others' lowest best threshold
    result = k_fold_accuracy(scores, same, contiguous_folds(len(same)))
    assert result["fold_accuracies"][0] == pytest.approx(0.5)
    assert all(a == 1.0 for a in result["fold_accuracies"][1:])
    assert result["accuracy_mean"] == pytest.approx(0.95) and result["accuracy_std"] > 0


def test_tar_at_far_accepts_at_most_far_of_impostors():
    rng = np.random.default_rng(1)
    impostor, genuine = rng.normal(0, 0.1, 5000), rng.normal(0.5, 0.1, 5000)
    scores = np.r_[genuine, impostor]
    same = np.r_[np.ones(5000, bool), np.zeros(5000, bool)]
    r = tar_at_far(scores, same, 1e-2)
    assert r["far"] <= 1e-2 and r["tar"] == pytest.approx((genuine >= r["threshold"]).mean())
    assert r["resolvable"]


def test_report_and_roc_png(tmp_path):
    rng = np.random.default_rng(2)
    same = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
    scores = np.where(same, 0.6, 0.2) + rng.normal(0, 0.15, len(same))
    report = verification_report(scores, same)
    assert report["pairs"] == 600 and set(report["tar_at_far"]) == {"0.001", "0.01"}
    assert not report["tar_at_far"]["0.001"]["resolvable"]  # 300 impostors cannot resolve 1e-3
    fpr, tpr = roc_curve(scores, same)
    assert fpr[0] == 0 and tpr[-1] == 1 and (np.diff(fpr) >= 0).all()
    plot_roc({"model": (fpr, tpr)}, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
