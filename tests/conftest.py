"""Shared fixtures: seeded, CPU, tiny. Real data comes from ../shared when it exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ORL = SHARED / "data" / "orl"

LFW = SHARED / "data" / "lfw"
YUNET = SHARED / "models" / "face_detection_yunet_2023mar.onnx"

requires_lfw_and_yunet = pytest.mark.skipif(
    not (LFW / "pairs.txt").is_file() or not YUNET.is_file(),
    reason=f"LFW ({LFW}) or the YuNet model ({YUNET}) not found (../shared is absent outside the project's machines)",
)

requires_orl = pytest.mark.skipif(
    not ORL.is_dir(), reason=f"ORL faces not found at {ORL} (../shared is absent outside the project's machines)"
)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    import torch

    torch.manual_seed(0)
    yield
