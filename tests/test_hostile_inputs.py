"""The inputs the fuzzing campaign of issue 9 found, made by hand: each is refused in one line
(exit 2), without a crash, a hang or a large allocation, and without aborting a batch."""

import json
import os
import pickle
import resource
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest

from facerec.cli.main import main
from facerec.data.folder import load_face_folder
from facerec.data.images import read_image_file
from facerec.data.insightface_formats import load_bin, write_records, RecordFile
from facerec.core.errors import DataError, WorkspaceError
from facerec.data.pairs import read_pairs
from facerec.workspace.workspace import Workspace


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\0" * 64


@pytest.mark.parametrize("data", [
    _png_header(100_000, 100_000),
    b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", 60_000, 60_000) + b"\x03" + b"\0" * 64,
    b"BM" + b"\0" * 12 + struct.pack("<Iii", 40, 50_000, -50_000) + b"\0" * 64,
    b"P5\n# comment\n70000 70000\n255\n" + b"\0" * 64,
], ids=["png", "jpeg", "bmp", "pgm"])
def test_huge_image_headers_are_refused_before_decoding(tmp_path, data):
    path = tmp_path / "huge.img"
    path.write_bytes(data)
    before = _peak_mb()
    with pytest.raises(DataError, match="huge.img: .*over the 40 MP limit"):
        read_image_file(path)
    assert _peak_mb() - before < 200


def test_special_files_are_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "fifo.jpg")  # opening it for reading would block forever
    for path, why in (("/dev/zero", "not a regular file"), (tmp_path / "fifo.jpg", "not a regular file"),
                      (tmp_path, "a directory")):
        with pytest.raises(DataError, match=why):
            read_image_file(path)


def test_a_bad_image_never_aborts_a_batch_and_training_skips_it(tiny_trained, tmp_path, capsys):
    data, ws_src = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(ws_src, ws)
    good = sorted((data / sorted(os.listdir(data))[0]).iterdir())[0]
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header(20_000, 20_000))
    assert main(["enroll", "ann", str(good), "-w", str(ws), "--aligned", "-q"]) == 0
    capsys.readouterr()
    assert main(["recognize", str(huge), str(good), "/dev/zero", "-w", str(ws), "--aligned", "--json", "-q"]) == 0
    statuses = [r["status"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert statuses[1] == "ok" and "over the 40 MP limit" in statuses[0] and "not a regular file" in statuses[2]

    folder = tmp_path / "folder"
    shutil.copytree(data, folder)
    shutil.copy(huge, folder / sorted(os.listdir(folder))[0] / "huge.png")
    (folder / "bad\nname").mkdir()
    shutil.copy(good, folder / "bad\nname" / "a.png")
    loaded = load_face_folder(folder)
    assert len(loaded.skipped) == 2 and any("huge.png" in s for s in loaded.skipped)
    assert "bad\nname" not in loaded.identities


def test_bin_memo_and_allocation_bombs_are_refused_cheaply(tmp_path):
    bombs = {
        "memo": b"\x80\x02]r" + struct.pack("<I", 605_424_337) + b".",  # CPython would size its memo to this slot
        "bytearray": b"\x80\x02c__builtin__\nbytearray\nJ" + struct.pack("<i", 2_000_000_000) + b"\x85R.",
        "code": pickle.dumps((os.system, ("true",))),
        "deep": b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b".",
    }
    before = _peak_mb()
    for name, data in bombs.items():
        (tmp_path / f"{name}.bin").write_bytes(data)
        with pytest.raises(DataError, match=f"{name}.bin"):
            load_bin(tmp_path / f"{name}.bin")
    assert _peak_mb() - before < 100


def test_record_files_with_lying_indexes_are_refused(tmp_path):
    image = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    write_records(tmp_path / "a.rec", [image], [0])
    good_idx = (tmp_path / "a.idx").read_bytes()
    for idx, why in ((b"\xff\xfe0\t0\n", "not UTF-8"), (b"0\t-8\n", "two whole numbers"), (b"0\t99999\n", "past the end"),
                     ("٣\t0\n".encode(), "two whole numbers")):
        (tmp_path / "a.idx").write_bytes(idx)
        with pytest.raises(DataError, match=why):
            RecordFile(tmp_path / "a.rec")
    (tmp_path / "a.idx").write_bytes(good_idx)
    (tmp_path / "empty.rec").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        RecordFile(tmp_path / "empty.rec")


def test_pairs_files_with_foreign_digits_or_bytes_are_refused(tmp_path):
    (tmp_path / "A").mkdir()
    for text, why in (("A\t١\t2\n".encode(), "whole numbers"), (b"A\t1\t2\xff\n", "not UTF-8"),
                      (b"../A\t1\t2\n", "path separators")):
        (tmp_path / "pairs.txt").write_bytes(text)
        with pytest.raises(DataError, match=why):
            read_pairs(tmp_path / "pairs.txt", tmp_path)


def test_a_wrong_manifest_names_the_field(tiny_trained, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(tiny_trained[1], ws)
    good = json.loads((ws / "workspace.json").read_text())
    edits = {
        "model.num_classes": lambda m: m["model"].pop("num_classes"),
        "identities": lambda m: m["identities"].append("extra"),
        "model.weights": lambda m: m["model"].update(weights="../../etc/passwd"),
        "recognition.threshold": lambda m: m.update(recognition={"threshold": "high"}),
        "model.config": lambda m: m["model"]["config"].update(width=10 ** 9),
    }
    for field, edit in edits.items():
        manifest = json.loads(json.dumps(good))
        edit(manifest)
        (ws / "workspace.json").write_text(json.dumps(manifest))
        with pytest.raises(WorkspaceError, match=field.replace(".", r"\.")):
            Workspace(ws).load_model()
    (ws / "workspace.json").write_bytes(b'{"format_version": 2, "model": "\xff"}')
    with pytest.raises(WorkspaceError, match="not UTF-8"):
        Workspace(ws).manifest()


def test_train_refuses_a_learning_rate_that_is_not_a_positive_number(tmp_path, capsys):
    for lr in ("nan", "inf", "-1", "0"):
        with pytest.raises(SystemExit) as exit_:
            main(["train", str(tmp_path), "--lr", lr])
        assert exit_.value.code == 2 and "finite number > 0" in capsys.readouterr().err


def test_forget_set_options_are_checked_before_anything_runs(tiny_trained, capsys):
    _, ws = tiny_trained
    before = Workspace(ws).manifest()
    for option in ("bogus=1", "keep_weight", "keep_weight=abc", "rank=0", "lr=nan", "ascent=sideways"):
        code = main(["forget", "synth-0000", "-w", str(ws), "--set", option, "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (option, err)
    assert Workspace(ws).manifest() == before
