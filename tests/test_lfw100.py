"""The LFW-100 split: the most photographed people outside fold 1, capped, aligned, and fold-1 strangers."""

import json

import cv2
import numpy as np
import pytest

from facerec.data.lfw100 import build_lfw100
from facerec.core.errors import DataError


def _lfw_like(root, counts):
    for k, (person, n) in enumerate(counts.items()):
        (root / person).mkdir(parents=True)
        for i in range(1, n + 1):
            image = np.full((120, 120, 3), 20 * k + 10, np.uint8)
            cv2.circle(image, (60, 60), 10 + 3 * i, (200, 90, 30), -1)
            cv2.imwrite(str(root / person / f"{person}_{i:04d}.jpg"), image)


def test_the_split_takes_the_most_photographed_people_outside_fold_one(tmp_path):
    images = tmp_path / "lfw"
    _lfw_like(images, {"Ann": 6, "Bob": 5, "Cid": 4, "Zed": 3})
    pairs = tmp_path / "pairs.txt"
    # 20 pairs, 10 folds of 2: fold 1 is the first two (Zed and Ann's impostor pair), the rest Bob's
    pairs.write_text("10 1\nZed 1 2\nZed 1 Ann 1\n" + "Bob 1 2\n" * 18)
    record = build_lfw100(images, pairs, tmp_path / "out", detector="aligned", people=2, cap=4)
    people = sorted(p.name for p in (tmp_path / "out" / "people").iterdir())
    assert people == ["Bob", "Cid"]  # Ann is in fold 1 (an impostor pair) even with the most photos
    assert len(list((tmp_path / "out" / "people" / "Bob").glob("*.png"))) == 4  # capped
    strangers = sorted(p.name for p in (tmp_path / "out" / "strangers").iterdir())
    assert strangers == ["Ann", "Zed"] and record["strangers"]["photos"] == 4  # 2 each
    crop = cv2.imread(str(next((tmp_path / "out" / "people" / "Cid").glob("*.png"))))
    assert crop.shape == (112, 112, 3)
    assert json.loads((tmp_path / "out" / "split.json").read_text())["people"] == {"Bob": 4, "Cid": 4}
    with pytest.raises(DataError, match="already exists"):
        build_lfw100(images, pairs, tmp_path / "out", detector="aligned", people=2)
    with pytest.raises(DataError, match="only 2 people"):
        build_lfw100(images, pairs, tmp_path / "out2", detector="aligned", people=3)
    assert not (tmp_path / "out2").exists()
