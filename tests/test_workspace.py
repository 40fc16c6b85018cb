"""Workspace round trip, versioning and atomicity."""

import json

import pytest
import torch

from facerec.data.split import make_split
from facerec.core.errors import WorkspaceError
from facerec.models import create_model
from facerec.workspace.workspace import FORMAT_VERSION, Workspace, resolve_workspace_path


def _save(tmp_path, seed=0):
    torch.manual_seed(seed)
    model = create_model("vit-face-test", num_classes=3)
    split = make_split({n: [f"{n}/{i}.png" for i in range(4)] for n in "abc"}, 1, seed=0)
    ws = Workspace(tmp_path / "ws")
    version = ws.save(model, model_name="vit-face-test", identities=list("abc"), split=split,
                      data={"root": "x"}, training={"top1": 0.5})
    return ws, model, version


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    ws, model, version = _save(tmp_path)
    loaded = ws.load_model()
    x = torch.randn(4, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
        assert torch.equal(model.embed(x), loaded.embed(x))
    manifest = ws.manifest()
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"]["version"] == version and manifest["identities"] == list("abc")
    assert ws.split().test == make_split({n: [f"{n}/{i}.png" for i in range(4)] for n in "abc"}, 1, seed=0).test


def test_model_version_follows_the_weights_and_old_weights_are_removed(tmp_path):
    ws, _, first = _save(tmp_path, seed=0)
    _, _, same = _save(tmp_path, seed=0)
    _, _, other = _save(tmp_path, seed=1)
    assert first == same and first != other
    assert [p.stem for p in (ws.root / "models").glob("*.safetensors")] == [other]


def test_newer_format_is_refused(tmp_path):
    ws, _, _ = _save(tmp_path)
    manifest = json.loads(ws.manifest_path.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    ws.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(WorkspaceError, match="newer"):
        ws.load_model()


def test_corrupt_weights_and_missing_workspace_are_workspace_errors(tmp_path):
    ws, _, _ = _save(tmp_path)
    weights = ws.root / ws.manifest()["model"]["weights"]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WorkspaceError, match="corrupt"):
        ws.load_model()
    with pytest.raises(WorkspaceError, match="does not exist"):
        Workspace(tmp_path / "nowhere").manifest()
    ws.manifest_path.write_text("{ not json")
    with pytest.raises(WorkspaceError, match="corrupt"):
        ws.manifest()


def test_a_failed_save_leaves_the_previous_model(tmp_path, monkeypatch):
    ws, model, version = _save(tmp_path)
    import facerec.workspace.workspace as wsmod

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(wsmod, "atomic_write_json", boom)
    with pytest.raises(OSError):
        ws.save(create_model("vit-face-test", num_classes=3), model_name="vit-face-test", identities=list("abc"),
                split=ws.split(), data={}, training={})
    assert ws.manifest()["model"]["version"] == version
    ws.load_model()  # still loads: its weights were not removed


def test_workspace_path_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("FACEREC_WORKSPACE", raising=False)
    assert str(resolve_workspace_path(None)) == "facerec-workspace"
    monkeypatch.setenv("FACEREC_WORKSPACE", str(tmp_path))
    assert resolve_workspace_path(None) == tmp_path
    assert str(resolve_workspace_path("explicit")) == "explicit"
