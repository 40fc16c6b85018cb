"""Enroll -> recognize -> verify -> calibrate -> remove through the CLI, on a tiny trained workspace."""

import json
import os
import sqlite3

import cv2
import numpy as np
import pytest

from facerec.cli.main import main
from facerec.metrics import threshold_at_far
from facerec.recognition.pipeline import validate_name
from facerec.core.errors import FaceRecError

from conftest import LFW, YUNET, requires_lfw_and_yunet
from facerec import pretrained


@pytest.fixture
def trained(tiny_trained):
    return tiny_trained


def _json(capsys, argv):
    code = main(argv + ["--json", "-q"])
    return code, json.loads(capsys.readouterr().out)


def test_enroll_recognize_remove_round_trip(trained, tmp_path, capsys):
    data, ws_src = trained
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(ws_src, ws)
    code, report = _json(capsys, ["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws)])
    assert code == 0 and report["enrolled_images"] == 6 * 4
    code, people = _json(capsys, ["people", "-w", str(ws)])
    assert people["people"] == {f"synth-{i:04d}": 4 for i in range(6)}

    # every enrolled image finds itself (score 1): the whole detect-align-embed-search path agrees
    code, ev = _json(capsys, ["recognize", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws)])
    assert ev["images"] == 24 and ev["rank1"] == 1.0 and ev["unknown_rate"] == 0.0
    code, ev = _json(capsys, ["recognize", "--folder", str(data), "--split", "test", "--aligned", "-w", str(ws)])
    assert ev["images"] == 12 and 0.0 <= ev["rank1"] <= 1.0

    probe = str(data / "synth-0002" / sorted(os.listdir(data / "synth-0002"))[0])
    code, rec = _json(capsys, ["recognize", probe, "--aligned", "--top-k", "3", "-w", str(ws)])
    face = rec["results"][0]["faces"][0]
    assert set(face) >= {"box", "identity", "score"} and len(face["candidates"]) == 3

    code, removed = _json(capsys, ["remove", "synth-0002", "-w", str(ws)])
    assert removed["vectors_removed"] == 4 and removed["crops_removed"] == 4
    # nothing of the person is left anywhere in the workspace's gallery or crops
    assert not (ws / "crops" / "synth-0002").exists()
    for path in list((ws / "gallery").rglob("*")):
        if path.is_file():
            assert b"synth-0002" not in path.read_bytes(), path
    db = sqlite3.connect(ws / "gallery" / "meta.sqlite")
    assert db.execute("SELECT COUNT(*) FROM people WHERE name='synth-0002'").fetchone()[0] == 0
    code, rec = _json(capsys, ["recognize", probe, "--aligned", "--top-k", "6", "-w", str(ws)])
    assert all(c["identity"] != "synth-0002" for c in rec["results"][0]["faces"][0]["candidates"])
    assert main(["remove", "synth-0002", "-w", str(ws), "-q"]) == 2  # not enrolled any more


def test_calibrate_stores_a_threshold_used_by_verify(trained, tmp_path, capsys):
    data, ws_src = trained
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(ws_src, ws)
    assert main(["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    capsys.readouterr()
    code, cal = _json(capsys, ["calibrate", "--far", "0.01", "-w", str(ws)])
    assert code == 0 and cal["far"] <= 0.01 and cal["impostor_pairs"] == 24 * 23 // 2 - 6 * 6
    assert json.loads((ws / "workspace.json").read_text())["recognition"]["threshold"] == pytest.approx(cal["threshold"])
    a, b = (str(data / "synth-0001" / f) for f in sorted(os.listdir(data / "synth-0001"))[:2])
    code, v = _json(capsys, ["verify", a, b, "--aligned", "-w", str(ws)])
    assert v["threshold"] == pytest.approx(cal["threshold"]) and v["same"] == (v["score"] >= v["threshold"])


@requires_lfw_and_yunet
def test_calibrate_on_lfw_pairs_with_yunet_end_to_end(trained, tmp_path, capsys):
    """The first 5 genuine and 5 impostor pairs of LFW's pairs.txt: detect, align, embed, threshold."""
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(trained[1], ws)
    lines = (LFW / "pairs.txt").read_text().splitlines()
    genuine = [line for line in lines[1:] if len(line.split()) == 3][:5]
    impostor = [line for line in lines[1:] if len(line.split()) == 4][:5]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(["1\t5"] + genuine + impostor) + "\n")
    code, cal = _json(capsys, ["calibrate", "--pairs", str(pairs), "--root", str(LFW), "--far", "0.1",
                               "--detector", f"yunet:{YUNET}", "-w", str(ws)])
    assert code == 0 and cal["pairs_scored"] + cal["pairs_without_face"] == 10
    assert cal["impostor_pairs"] + cal["genuine_pairs"] == cal["pairs_scored"] >= 9
    assert cal["far"] <= 0.2  # at most 1 of ~5 impostors above the threshold
    stored = json.loads((ws / "workspace.json").read_text())["recognition"]
    assert stored["threshold"] == pytest.approx(cal["threshold"]) and stored["pairs"] == str(pairs)


def test_threshold_at_far_accepts_at_most_far_of_impostors():
    scores = np.random.default_rng(0).normal(size=10_000)
    for far in (1e-3, 1e-2, 0.1):
        t = threshold_at_far(scores, far)
        assert (scores >= t).mean() <= far
        assert (scores >= t).mean() > far - 2e-4  # and no stricter than needed
    ties = np.array([0.9, 0.5, 0.5, 0.5, 0.1], np.float32)
    assert (ties >= threshold_at_far(ties, 0.4)).sum() == 1  # tied scores at the boundary are all rejected


@pytest.mark.parametrize("bad", ["", " ", "a/b", "..", "x/../y", "a\\b", " lead"])
def test_bad_names_are_refused(bad):
    with pytest.raises(FaceRecError):
        validate_name(bad)


def test_bad_input_is_one_line_never_a_traceback(trained, tmp_path, capsys):
    data, ws_src = trained
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    cases = [
        (["enroll", "../evil", str(blank), "-w", str(ws_src)], "invalid name"),
        # a new workspace starts from the shipped model (when there is one), so only the photos fail
        (["enroll", "bob", str(junk), str(blank), "-w", str(tmp_path / "nows")],
         "nothing was enrolled" if pretrained.available() else "does not exist"),
        (["enroll", "bob", str(junk), str(blank), "-w", str(ws_src), "--detector", str(tmp_path / "no.onnx")], "does not exist"),
        (["remove", "nobody", "-w", str(ws_src)], "not enrolled"),
        (["recognize", str(blank), "-w", str(ws_src)], "enroll"),
    ]
    for argv, pattern in cases:
        assert main(argv + ["-q"]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and pattern in err[0], (argv, err)
    # per-image problems are statuses, and nothing enrolled is an error
    code = main(["enroll", "bob", str(junk), str(blank), "-w", str(ws_src), "--json", "-q"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and [i["status"] for i in out["people"][0]["images"]] == ["unreadable: not an image (unknown format, or corrupt)", "no face"]


def test_concurrent_enrolls_are_serialised_and_lose_nothing(trained, tmp_path):
    data, ws_src = trained
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(ws_src, ws)
    people = sorted(os.listdir(data))[:4]
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-m", "facerec", "enroll", p,
                               *[str(data / p / f) for f in sorted(os.listdir(data / p))[:2]],
                               "--aligned", "-w", str(ws), "-q"]) for p in people]
    assert [p.wait(timeout=300) for p in procs] == [0] * 4
    from gallery import Gallery

    g = Gallery.open(ws / "gallery")
    assert g.people() == {p: 2 for p in people} and len(g) == 8


def _lfw_like(root, people=("Ann_Lee", "Bo_Chan"), each=2):
    for name in people:
        for i in range(1, each + 1):
            (root / "images" / name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "images" / name / f"{name}_{i:04d}.jpg"), np.zeros((8, 8, 3), np.uint8))


def test_pairs_file_is_read_in_lfw_format(tmp_path):
    from facerec.data.pairs import read_pairs

    _lfw_like(tmp_path)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t2\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBo_Chan\t2\n")
    read = read_pairs(pairs, tmp_path)  # the parent of images/ ...
    assert [(a.name, b.name, same) for a, b, same in read] == [
        ("Ann_Lee_0001.jpg", "Ann_Lee_0002.jpg", True), ("Ann_Lee_0001.jpg", "Bo_Chan_0002.jpg", False)]
    assert read == read_pairs(pairs, tmp_path / "images")  # ... or images/ itself


def test_a_missing_pair_image_is_an_error_not_a_skip(tmp_path):
    from facerec.core.errors import DataError
    from facerec.data.pairs import read_pairs

    _lfw_like(tmp_path)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t2\nAnn_Lee\t1\t3\n")
    with pytest.raises(DataError, match="Ann_Lee_0003.jpg is missing"):
        read_pairs(pairs, tmp_path)


def test_the_central_face_is_the_labelled_one():
    from facerec.detect import Face
    from facerec.recognition.pipeline import ImageFaces, central_face_of

    faces = [Face((0, 0, 10, 10), 1.0), Face((120, 45, 10, 10), 1.0), Face((190, 90, 10, 10), 1.0)]
    assert central_face_of(ImageFaces("x", "ok", faces, [], "", (250, 100))) == 1
