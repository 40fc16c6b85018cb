"""CASIA-100 from a `.rec`: the most photographed people by a recorded rule, the strangers among the
rest, records copied byte for byte, damaged ones skipped and listed, bad input one line."""

import json
import subprocess
import sys

import cv2
import numpy as np

from facerec.data.casia100 import build_casia100
from facerec.data.insightface_formats import write_records
from facerec.data.synthetic import render_image


def _rec(path):
    """12 people; person p has 3 + p records (person 11 the most), one record damaged."""
    images, labels = [], []
    for p in range(12):
        for j in range(3 + p):
            images.append(cv2.imencode(".jpg", render_image(2, p, j))[1].tobytes())
            labels.append(p)
    images[-1] = b"\xff\xd8 not a jpeg"  # person 11's last record
    write_records(path, images, labels)
    return path, images


def test_the_most_photographed_people_strangers_and_copies(tmp_path):
    rec, images = _rec(tmp_path / "train.rec")
    r = build_casia100(rec, tmp_path / "c5", people=5, strangers=3, seed=1)
    assert list(r["people"]) == [f"id{p:05d}" for p in (11, 10, 9, 8, 7)]  # most records first
    assert r["skipped"] == [f"id00011/{len(images)}"] and r["photos"] == sum(3 + p for p in range(7, 12)) - 1
    strangers = sorted(p.name for p in (tmp_path / "c5" / "strangers").iterdir())
    assert len(strangers) == 3 and not set(strangers) & set(r["people"])
    assert r["strangers"]["photos"] == 6
    first = sum(3 + q for q in range(8))  # person 8's first record: key first + 1 (key 0 is the header)
    copy = tmp_path / "c5" / "people" / "id00008" / f"{first + 1}.jpg"
    assert copy.read_bytes() == images[first]  # byte for byte
    split = json.loads((tmp_path / "c5" / "split.json").read_text())
    assert split["config"]["seed"] == 1 and "most records" in split["rule"] and split["source"]["people"] == 12
    again = build_casia100(rec, tmp_path / "again", people=5, strangers=3, seed=1)
    assert again["people"] == r["people"] and sorted(p.name for p in (tmp_path / "again" / "strangers").iterdir()) == strangers
    capped = build_casia100(rec, tmp_path / "capped", people=2, cap=4, strangers=0)
    assert capped["people"] == {"id00011": 4, "id00010": 4}


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    rec, _ = _rec(tmp_path / "train.rec")
    for args in (["--people", "13"], ["--rec", str(tmp_path / "missing.rec")]):
        run = subprocess.run([sys.executable, "-m", "facerec", "bench", "casia100", "--rec", str(rec),
                              "--out", str(tmp_path / "out"), "-q", *args], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert not (tmp_path / "out").exists()
    np.testing.assert_equal(sorted(p.name for p in tmp_path.iterdir()), ["train.idx", "train.rec"])
