"""Writes are idempotent and self-cleaning: re-enrolling is a no-op, a killed command's leftovers
are removed (crops no row refers to: quarantined) by the next writer, a damaged gallery is reported and rebuilt from the crops, and
readers never write."""

import json
import os

from facerec.cli.main import main


def _people(ws, capsys) -> dict:
    capsys.readouterr()
    assert main(["people", "-w", str(ws), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["people"]


def test_enrolling_the_same_images_again_is_a_no_op(enrolled, capsys):
    data, ws = enrolled
    before = _people(ws, capsys)
    person = sorted(before)[0]
    images = [str(p) for p in sorted((data / person).iterdir())]
    assert main(["enroll", person, *images, images[0], "-w", str(ws), "--aligned", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["enrolled_images"] == 0 and report["already_enrolled"] == len(images) + 1
    assert _people(ws, capsys) == before


def test_the_next_writer_removes_what_killed_commands_left(enrolled, capsys):
    data, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    leftovers = [ws / "crops" / person / ".0123456789abcdef-0.png.k3j4h5g6.tmp", ws / ".workspace.json.abcd1234.tmp",
                 ws / "gallery" / "vectors-99.faiss.tmp", ws / "models" / "0000000000000000.safetensors",
                 ws / "crops" / person / "ffffffffffffffff-0.png"]  # a crop no gallery row refers to
    for path in leftovers:
        path.write_bytes(b"x")
    (ws / "gallery.staging").mkdir()
    (ws / "crops" / "\udcff").mkdir()  # left by an older facerec under a name that cannot be stored
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert not any(p.exists() for p in leftovers) and not (ws / "gallery.staging").exists()
    assert sorted(os.listdir(ws / "crops")) == sorted(_people(ws, capsys))
    # the crop no row refers to and the folder of no valid name were moved aside, not deleted
    assert len(list((ws / "quarantine").glob("*/*/ffffffffffffffff-0.png"))) == 1
    assert len(list((ws / "quarantine").glob("*/\udcff"))) == 1


def test_a_gallery_swap_killed_between_its_renames_is_undone(enrolled, capsys):
    _, ws = enrolled
    before = _people(ws, capsys)
    (ws / "gallery").rename(ws / "gallery.old")
    (ws / "gallery.rebuild").mkdir()
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert _people(ws, capsys) == before and not (ws / "gallery.old").exists()


def test_a_damaged_gallery_is_reported_read_only_and_rebuilt_by_reindex(enrolled, capsys):
    data, ws = enrolled
    before = _people(ws, capsys)
    index = sorted((ws / "gallery").glob("vectors-*.faiss"))[0]
    index.write_bytes(index.read_bytes()[:-7] + b"garbage")
    assert main(["people", "-w", str(ws)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt" in err[0] and "facerec reindex" in err[0]
    assert main(["reindex", "-w", str(ws), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vectors"] == sum(before.values())
    assert _people(ws, capsys) == before

    meta = ws / "gallery" / "meta.sqlite"
    meta.write_bytes(b"")
    assert main(["people", "-w", str(ws)]) == 2 and "corrupt" in capsys.readouterr().err
    assert meta.stat().st_size == 0  # the reader did not turn it into a new database


def test_remove_says_when_the_model_still_knows_the_person(enrolled, capsys):
    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    assert main(["remove", person, "-w", str(ws), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["still_in_model"] is True
    assert main(["remove", "stranger\u202e", "-w", str(ws)]) == 2
    assert "bidirectional" in capsys.readouterr().err


def test_a_name_that_is_not_utf8_creates_nothing(enrolled, capsys):
    data, ws = enrolled
    image = str(sorted((data / sorted(os.listdir(data))[0]).iterdir())[0])
    crops = sorted(os.listdir(ws / "crops"))
    for name in ("\udcff", "é" * 65, "a\nb"):
        assert main(["enroll", name, image, "-w", str(ws), "--aligned", "-q"]) == 2
        assert "invalid name" in capsys.readouterr().err
    assert sorted(os.listdir(ws / "crops")) == crops
