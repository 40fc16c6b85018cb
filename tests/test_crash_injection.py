"""enroll, forget and train killed (SIGKILL) at sampled points leave no lost or doubled enrollment,
no half-forgotten person and, after the next command, no leftovers (`tools/crash_inject.py`; run it
with `--points 0` to kill at every step)."""

import json
import subprocess
import sys
from pathlib import Path

from facerec.cli.main import main
from facerec.data.synthetic import generate_dataset

TOOL = Path(__file__).resolve().parents[1] / "tools" / "crash_inject.py"


def test_killed_writers_leave_a_consistent_workspace(tmp_path):
    data = generate_dataset(tmp_path / "data", identities=4, images_per_identity=4, seed=1)
    ws = tmp_path / "ws"
    assert main(["train", str(data), "-w", str(ws), "--model", "vit-face-test", "--epochs", "3",
                 "--batch-size", "8", "-q"]) == 0
    run = subprocess.run([sys.executable, str(TOOL), "--data", str(data), "--workspace", str(ws),
                          "--out", str(tmp_path / "out"), "--points", "4", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode in (0, 1), run.stderr[-2000:]
    report = json.loads(run.stdout)
    for writer in ("enroll", "remove", "forget", "train"):
        r = report[writer]
        assert r["kills"] >= 3, (writer, r)  # the sampled points were reached and killed the command
        assert r["problems"] == 0, (writer, [x for x in r["runs"] if x["problems"]])


def test_killed_writers_leave_a_consistent_workspace_with_the_gallery_in_postgresql(tmp_path, postgres):
    """The same campaign with each run's gallery in PostgreSQL: its commits, swaps and drops are
    kill points too, and a forget is never left half-done across the folder and the database."""
    data = generate_dataset(tmp_path / "data", identities=4, images_per_identity=4, seed=1)
    ws = tmp_path / "ws"
    assert main(["train", str(data), "-w", str(ws), "--model", "vit-face-test", "--epochs", "3",
                 "--batch-size", "8", "-q"]) == 0
    run = subprocess.run([sys.executable, str(TOOL), "--data", str(data), "--workspace", str(ws),
                          "--out", str(tmp_path / "out"), "--points", "4", "--json", "--postgresql", postgres.url,
                          "--writers", "enroll,remove,forget"], capture_output=True, text=True, timeout=900)
    assert run.returncode in (0, 1), run.stderr[-2000:]
    report = json.loads(run.stdout)
    for writer in ("enroll", "remove", "forget"):
        r = report[writer]
        assert r["kills"] >= 3, (writer, r)
        assert r["problems"] == 0, (writer, [x for x in r["runs"] if x["problems"]])
