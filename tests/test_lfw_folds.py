"""Person-disjoint selection: the people of LFW View 2 folds, the most-photographed, `eval --fold`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facerec.data.pairs import fold_people, most_photographed, pair_fold, read_pairs
from facerec.core.errors import DataError

from conftest import LFW, requires_lfw_and_yunet


def _lfw_like(tmp_path, people_per_fold: int = 4, folds: int = 10):
    """An LFW-shaped tree and pairs.txt: fold k uses only its own people (f<k>p<i>), 2 genuine +
    2 impostor pairs per fold."""
    rng = np.random.default_rng(0)
    lines = [f"{folds}\t2"]
    for k in range(1, folds + 1):
        names = [f"f{k}p{i}" for i in range(people_per_fold)]
        for n in names:
            (tmp_path / "images" / n).mkdir(parents=True)
            for j in (1, 2):
                cv2.imwrite(str(tmp_path / "images" / n / f"{n}_{j:04d}.jpg"), rng.integers(0, 255, (24, 24, 3), np.uint8))
        lines += [f"{names[0]}\t1\t2", f"{names[1]}\t1\t2", f"{names[2]}\t1\t{names[3]}\t1", f"{names[0]}\t2\t{names[3]}\t2"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_pair_fold_is_contiguous_and_one_based():
    assert pair_fold(6000)[:600] == [1] * 600 and pair_fold(6000)[-1] == 10
    assert pair_fold(40) == [k for k in range(1, 11) for _ in range(4)]


def test_fold_people_names_exactly_the_people_of_those_folds(tmp_path):
    root = _lfw_like(tmp_path)
    pairs = read_pairs(root / "pairs.txt", root)
    assert fold_people(pairs, [1]) == {f"f1p{i}" for i in range(4)}
    assert fold_people(pairs, [2, 10]) == {f"f{k}p{i}" for k in (2, 10) for i in range(4)}
    with pytest.raises(DataError, match="fold 11"):
        fold_people(pairs, [11])


def test_most_photographed_leaves_out_the_excluded_and_breaks_ties_by_name():
    listing = {"a": ["1"] * 3, "b": ["1"] * 5, "c": ["1"] * 3, "d": ["1"] * 9}
    assert most_photographed(listing, 2) == ["d", "b"]
    assert most_photographed(listing, 2, exclude={"d"}) == ["b", "a"]


def test_eval_verification_fold_option_scores_only_that_fold(tmp_path, tiny_trained, capsys):
    from facerec.cli.main import main

    _, ws = tiny_trained
    root = _lfw_like(tmp_path / "lfw")
    assert main(["eval", "verification", "--pairs", str(root / "pairs.txt"), "--root", str(root), "--fold", "3",
                 "--folds", "2", "--aligned", "-w", str(ws), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 4 and report["only_folds"] == [3] and report["images"] == 7
    with pytest.raises(SystemExit) as exit_info:  # argparse: one usage line, status 2
        main(["eval", "verification", "--pairs", str(root / "pairs.txt"), "--root", str(root), "--fold", "12",
              "-w", str(ws), "-q"])
    assert exit_info.value.code == 2


def test_eval_identification_fold_option_keeps_that_folds_people(tmp_path, tiny_trained, capsys):
    from facerec.cli.main import main

    _, ws = tiny_trained
    root = _lfw_like(tmp_path / "lfw")
    assert main(["eval", "identification", str(root / "images"), "--pairs", str(root / "pairs.txt"), "--fold", "2",
                 "--exclude", "f2p3", "-w", str(ws), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["people"] == 3 and report["mated_probes"] == 3
    assert main(["eval", "identification", str(root / "images"), "--fold", "2", "-w", str(ws), "-q"]) == 2


@requires_lfw_and_yunet
def test_lfw_fold_one_has_the_documented_people():
    pairs = read_pairs(LFW / "pairs.txt", LFW)
    people = fold_people(pairs, [1])
    assert len(pairs) == 6000 and len(people) == 435
    assert people.isdisjoint(fold_people(pairs, range(2, 11)))  # View 2 folds share no one
