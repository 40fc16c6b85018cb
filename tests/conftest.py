"""Shared fixtures: seeded, CPU, tiny. Real data comes from ../shared when it exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ORL = SHARED / "data" / "orl"

requires_orl = pytest.mark.skipif(
    not ORL.is_dir(), reason=f"ORL faces not found at {ORL} (../shared is absent outside the project's machines)"
)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    import torch

    torch.manual_seed(0)
    yield
