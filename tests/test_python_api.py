"""The Python API (``import facerec``): a fresh workspace enrolled, searched, verified and forgotten
from paths and from numpy arrays, with results that are the CLI's ``--json``."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import facerec
from facerec.cli.main import main


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture
def api_ws(tiny_trained, tmp_path):
    data, ws_src = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(ws_src, ws)
    photos = {p.name: sorted(p.iterdir()) for p in sorted(data.iterdir()) if p.is_dir()}
    return ws, photos


def test_import_facerec_loads_no_torch():
    code = "import sys, facerec; assert 'torch' not in sys.modules; print(sorted(facerec.__all__)[:2])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_enroll_recognize_verify_embed_from_paths_and_arrays(api_ws, capsys):
    ws, photos = api_ws
    alice, bob = "synth-0001", "synth-0003"
    report = facerec.enroll(alice, photos[alice][:3], workspace=ws, detector="aligned")
    assert isinstance(report, facerec.Enrollment) and report.enrolled_images == 3
    report = facerec.enroll(bob, [_rgb(p) for p in photos[bob][:3]], workspace=ws, detector="aligned")
    assert report.enrolled_images == 3 and report.people[0]["images"][0]["image"] == "array 0"
    assert facerec.people(workspace=ws) == {alice: 3, bob: 3}

    probe = photos[bob][0]  # enrolled from an array: its file must find the same face
    from_path = facerec.recognize(probe, workspace=ws, detector="aligned", top_k=2)
    from_array = facerec.recognize(_rgb(probe), workspace=ws, detector="aligned", top_k=2)
    assert isinstance(from_path, facerec.ImageResult) and from_path.faces[0].identity == bob
    assert from_array.image == "array 0" and from_array.faces[0].identity == bob
    assert from_path.faces[0].score == pytest.approx(from_array.faces[0].score, abs=1e-4)
    assert [m.identity for m in from_path.faces[0].candidates] == [bob, alice]
    several = facerec.recognize([probe, photos[alice][0]], workspace=ws, detector="aligned")
    assert [r.faces[0].identity for r in several] == [bob, alice]

    # the result is what `facerec recognize --json` prints for the same image
    assert main(["recognize", str(probe), "--aligned", "--top-k", "2", "-w", str(ws), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0] == facerec.to_dict(from_path)

    same = facerec.verify(probe, _rgb(probe), workspace=ws, detector="aligned")
    assert same.same and same.score == pytest.approx(1.0, abs=1e-3)
    other = facerec.verify(photos[alice][0], photos[bob][0], workspace=ws, detector="aligned")
    assert other.score < same.score - 0.01 and other.threshold == same.threshold  # a tiny model: not past it

    vector = facerec.embed(_rgb(probe), workspace=ws, detector="aligned")
    assert vector.shape == (facerec.embed(probe, workspace=ws, detector="aligned").shape[0],)
    assert np.allclose(vector, facerec.embed(probe, workspace=ws, detector="aligned"), atol=1e-5)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)

    assert facerec.remove(alice, workspace=ws)["vectors_removed"] == 3
    assert facerec.people(workspace=ws) == {bob: 3}


def test_bad_arrays_are_one_line_errors_or_statuses(api_ws):
    ws, photos = api_ws
    facerec.enroll("synth-0001", photos["synth-0001"][:1], workspace=ws, detector="aligned")
    result = facerec.recognize(np.zeros((4, 4, 7), np.uint8), workspace=ws, detector="aligned")
    assert result.status.startswith("unreadable: shape") and result.faces == []
    with pytest.raises(facerec.FaceRecError, match="nothing was enrolled"):
        facerec.enroll("synth-0002", [np.full((8, 8, 3), 2.0)], workspace=ws, detector="aligned")
    with pytest.raises(facerec.FaceRecError, match="dtype"):
        facerec.embed(np.full((8, 8, 3), 2.0), workspace=ws, detector="aligned")
    with pytest.raises(facerec.FaceRecError):
        facerec.enroll("../escape", photos["synth-0001"][:1], workspace=ws, detector="aligned")


def test_forget_through_the_api_erases_the_person(api_ws):
    ws, photos = api_ws
    for name in ("synth-0002", "synth-0004"):
        facerec.enroll(name, photos[name][:2], workspace=ws, detector="aligned")
    report = facerec.forget("synth-0002", workspace=ws, steps=20)
    assert report["people"] == ["synth-0002"] and report["acc_f"] <= report["acc_f_before"]
    assert facerec.people(workspace=ws) == {"synth-0004": 2}
    info = facerec.open_workspace(ws)
    assert info.model_version == report["model_version"] and info.people == 1


def test_open_workspace_creates_one_on_the_shipped_model(tmp_path):
    from facerec import pretrained

    if not pretrained.available():
        pytest.skip("no shipped model in this checkout")
    info = facerec.open_workspace(tmp_path / "new")
    assert info.model_version == pretrained.record()["version"] and info.people == 0
    assert (tmp_path / "new" / "workspace.json").is_file()


def test_the_cli_and_the_server_work_through_a_session(api_ws, monkeypatch, capsys):
    """Each CLI command calls its Session method once (so its --json is the API's dataclass), and the
    server's Engine is a Session whose changes take the server's own write lock first."""
    from facerec.public.session import Session
    from facerec.server.state import Engine

    ws, photos = api_ws
    calls = []
    for verb in ("enroll", "recognize", "verify", "people", "remove", "calibrate", "evaluate"):
        original = getattr(Session, verb)
        monkeypatch.setattr(Session, verb, lambda self, *a, _f=original, _v=verb, **k: (calls.append(_v), _f(self, *a, **k))[1])
    one, two = photos["synth-0001"][:2], photos["synth-0002"][:2]
    for argv in (["enroll", "synth-0001", *map(str, one)], ["enroll", "synth-0002", *map(str, two)],
                 ["recognize", str(one[0])], ["verify", str(one[0]), str(two[0])], ["people"],
                 ["calibrate"], ["remove", "synth-0002"]):
        assert main([*argv, "--aligned", "-w", str(ws), "--json", "-q"] if argv[0] not in ("people", "remove")
                    else [*argv, "-w", str(ws), "--json", "-q"]) == 0
    assert calls == ["enroll", "enroll", "recognize", "verify", "people", "calibrate", "remove"]
    capsys.readouterr()

    engine = Engine(ws, detector="aligned")
    assert isinstance(engine, Session) and engine.computing() is engine.compute
    assert engine.write.acquire()  # a forget job holds the server's lock: a change waits for it, then 503
    engine.limits = type(engine.limits)(busy_seconds=0.1)
    with pytest.raises(facerec.FaceRecError, match="busy"):
        engine.enroll({"synth-0003": photos["synth-0003"][:1]})
    engine.write.release()
    report = engine.enroll({"synth-0003": photos["synth-0003"][:1], "synth-0004": [_rgb(photos["synth-0004"][0])]})
    assert report.enrolled_images == 2 and report.people[1]["images"][0]["image"] == "array 0"
    assert engine.people() == {"synth-0001": 2, "synth-0003": 1, "synth-0004": 1} and engine.model_version is not None
