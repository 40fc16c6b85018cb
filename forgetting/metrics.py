"""Forgetting metrics of the GS-LoRA papers (Zhao et al., CVPR 2024, §5; spec §A9).

All accuracies are top-1 of the identity head over *all* its rows (forgotten rows stay in the
head), argmax of plain cosines without a margin: a forgotten person counts as forgotten only if
the model itself stops picking them, not because their row was hidden. The ``reference`` objective
(the default since issue 29) zeroes the forgotten rows, as a retrained model has them, so its
Acc_f is 0 by construction; what tells whether the *faces* were forgotten is then measured beyond
the head, against the retrained model (``evaluate.py``, ``bench.EQUIVALENCE``).
"""

from __future__ import annotations

import math


def h_mean(acc_r: float, acc_f: float, acc_f_before: float) -> float:
    """Harmonic mean of retained accuracy and the *drop* in forgotten accuracy:
    ``2·acc_r·(acc_f_before - acc_f) / (acc_r + acc_f_before - acc_f)`` (0 when both are 0)."""
    if any(math.isnan(v) for v in (acc_r, acc_f, acc_f_before)):
        return float("nan")
    drop = acc_f_before - acc_f
    return 2 * acc_r * drop / (acc_r + drop) if acc_r + drop > 0 else 0.0


def h_ceiling(acc_r_before: float, acc_f_before: float) -> float:
    """The best H a forget could reach: everyone retained as before, the forgotten at 0."""
    return h_mean(acc_r_before, 0.0, acc_f_before)
