"""The ONNX copy of a workspace's model: written with every model, used by the read-only commands
without torch, dropped with its model, and never required (torch when it is missing)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np

from facerec.cli.main import main
from facerec.recognition.pipeline import FacePipeline, recognize
from facerec.workspace.workspace import Workspace


def _copy_with_onnx(tiny_trained, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEREC_ONNX_COPY", "1")
    data, source = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(source, ws)
    workspace = Workspace(ws)
    manifest = workspace.manifest()
    model = workspace.load_model("cpu")
    version, weights = workspace.write_weights(model, manifest["model"]["name"])  # as train and forget do
    assert version == manifest["model"]["version"]
    assert main(["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    return data, ws, workspace


def test_read_only_commands_embed_through_the_copy_and_agree_with_torch(tiny_trained, tmp_path, monkeypatch):
    data, ws, workspace = _copy_with_onnx(tiny_trained, tmp_path, monkeypatch)
    version = workspace.manifest()["model"]["version"]
    assert workspace.onnx_copy(version).is_file()
    probes = [str(p) for p in sorted((data / "synth-0002").iterdir())] + [str(p) for p in sorted((data / "synth-0004").iterdir())]
    fast = FacePipeline(workspace, detector="aligned", read_only=True)
    slow = FacePipeline(workspace, detector="aligned")
    assert fast.fast is not None and slow.fast is None and fast.model_version == slow.model_version == version
    a, b = recognize(fast, probes, top_k=3), recognize(slow, probes, top_k=3)
    for x, y in zip(a["results"], b["results"]):
        assert [f["identity"] for f in x["faces"]] == [f["identity"] for f in y["faces"]]
        assert np.allclose([f["score"] for f in x["faces"]], [f["score"] for f in y["faces"]], atol=2e-4)

    code = ("import sys, json; from facerec.cli.main import main; "
            f"main(['recognize', {probes[0]!r}, '--aligned', '-w', {str(ws)!r}, '--json', '-q']); "
            "print(json.dumps({'torch': 'torch' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "FACEREC_ONNX_COPY": "1"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {"torch": False}
    assert json.loads("\n".join(lines[:-1]))["results"][0]["faces"][0]["identity"] == "synth-0002"


def test_the_copy_follows_the_model_and_is_never_required(tiny_trained, tmp_path, monkeypatch):
    data, ws, workspace = _copy_with_onnx(tiny_trained, tmp_path, monkeypatch)
    before = workspace.manifest()["model"]["version"]
    assert main(["forget", "synth-0003", "--steps", "5", "-w", str(ws), "-q"]) == 0
    after = workspace.manifest()["model"]["version"]
    assert after != before
    assert sorted(p.name for p in (ws / "models").iterdir()) == sorted([f"{after}.onnx", f"{after}.safetensors"])
    workspace.onnx_copy(after).unlink()  # gone (or never written): readers use torch
    pipe = FacePipeline(workspace, detector="aligned", read_only=True)
    assert pipe.fast is None and pipe.model_version == after
    assert recognize(pipe, [str(sorted((data / "synth-0001").iterdir())[0])])["results"][0]["status"] == "ok"


def test_an_orphaned_copy_is_removed_by_the_next_writer(tiny_trained, tmp_path):
    from facerec.workspace.recovery import clean_workspace

    _, source = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(source, ws)
    orphan = ws / "models" / "0123456789abcdef.onnx"  # a forget killed after writing its new model
    orphan.write_bytes(b"not referenced")
    clean_workspace(Workspace(ws))
    assert not orphan.exists()


def test_throw_away_copies_get_no_onnx_copy(tiny_trained, tmp_path, monkeypatch):
    """The benchmarks' workspace copies skip the export (~2 s a request) and leave the base's copy behind."""
    from facerec.workspace.workspace import SCRATCH_IGNORE, onnx_copies_wanted, without_onnx_copies

    data, ws, workspace = _copy_with_onnx(tiny_trained, tmp_path, monkeypatch)
    scratch = tmp_path / "scratch"
    shutil.copytree(ws, scratch, ignore=SCRATCH_IGNORE)
    assert not list((scratch / "models").glob("*.onnx")) and list((ws / "models").glob("*.onnx"))
    with without_onnx_copies():
        assert not onnx_copies_wanted()
        assert main(["forget", "synth-0003", "--steps", "5", "-w", str(scratch), "-q"]) == 0
    assert not list((scratch / "models").glob("*.onnx")) and onnx_copies_wanted()
