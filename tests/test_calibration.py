"""Thresholds that hold for strangers: ``calibrate --strangers``, the warning when the only
impostors are people the model was trained on, and the threshold a model carries for workspaces
that were never calibrated."""

import json
import shutil

import pytest

from facerec.cli.main import main


def _json(capsys, argv):
    code = main(argv + ["--json", "-q"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def split_people(tiny_trained, tmp_path):
    """The tiny workspace with 4 of its 6 people as a folder to enroll and 2 as strangers."""
    data, ws_src = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(ws_src, ws)
    people = sorted(p.name for p in data.iterdir())
    for part, names in (("known", people[:4]), ("strangers", people[4:])):
        for name in names:
            shutil.copytree(data / name, tmp_path / part / name)
    return ws, tmp_path / "known", tmp_path / "strangers"


def test_calibrating_on_trained_people_alone_says_so(split_people, capsys):
    ws, known, _ = split_people
    assert main(["enroll", "--folder", str(known), "--aligned", "-w", str(ws), "-q"]) == 0
    capsys.readouterr()
    code, cal = _json(capsys, ["calibrate", "--far", "0.05", "-w", str(ws)])
    assert code == 0 and "training data" in cal["warning"] and "--strangers" in cal["warning"]


def test_calibrate_with_strangers_searches_each_against_the_gallery(split_people, capsys):
    ws, known, strangers = split_people
    assert main(["enroll", "--folder", str(known), "--aligned", "-w", str(ws), "-q"]) == 0
    capsys.readouterr()
    first = sorted(p.name for p in known.iterdir())[0]
    shutil.copytree(known / first, strangers / first)  # an enrolled person among the strangers: skipped
    code, cal = _json(capsys, ["calibrate", "--far", "0.1", "--strangers", str(strangers), "--aligned", "-w", str(ws)])
    assert code == 0 and cal["stranger_photos"] == 12 and cal["stranger_people"] == 2
    assert cal["strangers_skipped_as_enrolled"] == [first]
    assert cal["impostor_pairs"] == 12 and cal["far"] <= 0.1 and "training" not in cal.get("warning", "")
    stored = json.loads((ws / "workspace.json").read_text())["recognition"]
    assert stored["threshold"] == pytest.approx(cal["threshold"]) and stored["strangers"] == str(strangers)
    assert main(["calibrate", "--strangers", str(strangers), "--pairs", "p.txt", "--root", ".", "-w", str(ws), "-q"]) == 2


def test_an_uncalibrated_workspace_uses_the_threshold_its_model_carries(split_people, capsys):
    ws, known, _ = split_people
    manifest = json.loads((ws / "workspace.json").read_text())
    manifest.pop("recognition", None)
    manifest["model"]["open_set"] = {"threshold": 0.77, "fpir_target": 0.01, "gallery_size": 100}
    (ws / "workspace.json").write_text(json.dumps(manifest))
    a, b = sorted((known / sorted(p.name for p in known.iterdir())[0]).iterdir())[:2]
    code, v = _json(capsys, ["verify", str(a), str(b), "--aligned", "-w", str(ws)])
    assert code == 0 and v["threshold"] == pytest.approx(0.77) and v["calibrated"] is False
    manifest["model"]["open_set"] = {"threshold": "high"}
    (ws / "workspace.json").write_text(json.dumps(manifest))
    assert main(["verify", str(a), str(b), "--aligned", "-w", str(ws), "-q"]) == 2
    assert "model.open_set" in capsys.readouterr().err
