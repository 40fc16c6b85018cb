import pytest

from facerec.data.split import Split, make_split
from facerec.core.errors import DataError


def _files(people=5, each=10):
    return {f"p{i}": [f"p{i}/{j:02d}.png" for j in range(each)] for i in range(people)}


def test_split_is_deterministic_and_disjoint():
    a, b = make_split(_files(), 2, seed=7), make_split(_files(), 2, seed=7)
    assert a.to_dict() == b.to_dict()
    for person in a.train:
        assert len(a.test[person]) == 2 and len(a.train[person]) == 8
        assert not set(a.test[person]) & set(a.train[person])


def test_seed_changes_the_split():
    assert make_split(_files(), 2, seed=1).test != make_split(_files(), 2, seed=2).test


def test_a_persons_split_does_not_depend_on_other_people():
    full = make_split(_files(people=6), 3, seed=0)
    fewer = make_split({k: v for k, v in _files(people=6).items() if k != "p2"}, 3, seed=0)
    for person in fewer.test:
        assert fewer.test[person] == full.test[person]


def test_round_trip_through_dict():
    split = make_split(_files(), 2, seed=3)
    assert Split.from_dict(split.to_dict()) == split


def test_too_few_images_for_the_split_is_a_clear_error():
    files = _files()
    files["short"] = ["short/0.png", "short/1.png"]
    with pytest.raises(DataError, match="--min-images 3"):
        make_split(files, 2, seed=0)
