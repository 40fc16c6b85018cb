"""Shared fixtures: seeded, CPU, tiny. Real data comes from ../shared when it exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("FACEREC_ONNX_COPY", "0")  # every model write would export ONNX (~2 s); tests that need it set 1

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


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """A vit-face-test workspace trained briefly on 6 synthetic people (enough to tell them apart).

    Shared by the recognition and forgetting tests; copy it before changing it.
    """
    from facerec.cli.main import main
    from facerec.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("tiny")
    data = generate_dataset(root / "data", identities=6, images_per_identity=6, seed=1)
    ws = root / "ws"
    assert main(["train", str(data), "-w", str(ws), "--model", "vit-face-test", "--epochs", "30",
                 "--batch-size", "8", "--lr", "1e-3", "-q"]) == 0
    return data, ws


@pytest.fixture
def enrolled(tiny_trained, tmp_path, capsys):
    """A copy of ``tiny_trained``'s workspace with everyone enrolled from the data: ``(data, ws)``."""
    import shutil

    from facerec.cli.main import main

    data, ws_src = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(ws_src, ws)
    assert main(["enroll", "--folder", str(data), "-w", str(ws), "--aligned", "-q"]) == 0
    capsys.readouterr()
    return data, ws


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server with pgvector (``facerec.testing.postgres``), for the whole
    session. Skips with the reason where there is none; ``FACEREC_REQUIRE_POSTGRES=1`` (set by
    .ci/run, which installs what is missing) turns that skip into a failure."""
    from facerec.testing.postgres import ThrowawayPostgres, unavailable

    reason = unavailable()
    if reason is not None:
        if os.environ.get("FACEREC_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"FACEREC_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    server = ThrowawayPostgres()
    server.start()
    yield server
    server.stop()
