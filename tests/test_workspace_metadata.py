"""Damaged metadata is never taken as permission to delete (issue 24): a gallery whose rows disagree
with its crops is reported (exit 2) and rebuilt by `reindex` with every crop kept; crops without a
row are quarantined, reported and restorable, never deleted."""

import json
import os
import random
import shutil
import sqlite3

from facerec.cli.main import main
from workspace_checks import crop_census, run_command, people_listing, writing_commands, add_orphan_crop


def test_a_deleted_person_row_is_reported_and_reindex_brings_them_back(enrolled, capsys):
    data, ws = enrolled
    before, crops = people_listing(ws, capsys), crop_census(ws)
    person = sorted(before)[1]
    with sqlite3.connect(ws / "gallery" / "meta.sqlite") as db:  # as the sqlite3 shell does: foreign keys off
        db.execute("DELETE FROM people WHERE name = ?", (person,))
    for argv in writing_commands(data, ws, person)[:4] + writing_commands(data, ws, person)[5:]:  # everyone but reindex
        code, errors = run_command(capsys, *argv)
        assert code == 2 and len(errors) == 1 and "corrupt" in errors[0] and "facerec reindex" in errors[0], argv
        assert crop_census(ws) == crops, argv  # no crop deleted, none moved
    code, _ = run_command(capsys, "reindex", "-w", str(ws), "-q")
    assert code == 0 and people_listing(ws, capsys) == before and crop_census(ws) == crops


def test_an_altered_image_hash_is_reported_and_reindex_keeps_every_crop(enrolled, capsys):
    data, ws = enrolled
    before, crops = people_listing(ws, capsys), crop_census(ws)
    with sqlite3.connect(ws / "gallery" / "meta.sqlite") as db:
        db.execute("UPDATE vectors SET image_sha256 = '00' || substr(image_sha256, 3) WHERE vector_id = "
                   "(SELECT MIN(vector_id) FROM vectors)")
    code, errors = run_command(capsys, "people", "-w", str(ws))
    assert code == 2 and "disagree" in errors[0] and "no stored crop" in errors[0]
    person = sorted(before)[0]
    for argv in writing_commands(data, ws, person)[:4]:
        code, errors = run_command(capsys, *argv)
        assert code == 2 and len(errors) == 1 and "facerec reindex" in errors[0], argv
        assert crop_census(ws) == crops
    capsys.readouterr()
    assert main(["reindex", "-w", str(ws), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_without_crop"] == 1  # the altered row; its crop is kept
    assert people_listing(ws, capsys) == before and crop_census(ws) == crops


EDITS = [  # what a hand, a tool or a bad disk might do to meta.sqlite (foreign keys off, as in the shell)
    "DELETE FROM people WHERE person_id = (SELECT MIN(person_id) FROM people)",
    "DELETE FROM vectors WHERE vector_id = (SELECT MAX(vector_id) FROM vectors)",
    "DELETE FROM people", "DELETE FROM vectors",
    "UPDATE people SET name = 'Renamed' WHERE person_id = (SELECT MAX(person_id) FROM people)",
    "UPDATE people SET name = x'ff' WHERE person_id = (SELECT MIN(person_id) FROM people)",
    "UPDATE people SET name = 42 WHERE person_id = (SELECT MIN(person_id) FROM people)",
    "UPDATE people SET person_id = person_id + 1000 WHERE person_id = (SELECT MIN(person_id) FROM people)",
    "UPDATE vectors SET person_id = (SELECT MAX(person_id) FROM people) WHERE vector_id = (SELECT MIN(vector_id) FROM vectors)",
    "UPDATE vectors SET vector_id = vector_id + 1000 WHERE vector_id = (SELECT MIN(vector_id) FROM vectors)",
    "UPDATE vectors SET image_sha256 = 'zz' WHERE vector_id = (SELECT MIN(vector_id) FROM vectors)",
    "UPDATE vectors SET image_sha256 = x'ff00' WHERE vector_id = (SELECT MIN(vector_id) FROM vectors)",
    "UPDATE vectors SET model_version = 'other' WHERE vector_id = (SELECT MIN(vector_id) FROM vectors)",
    "UPDATE vectors SET source = 'edited'",
    "INSERT INTO vectors(person_id, image_sha256, source, model_version, added) SELECT person_id, image_sha256, "
    "source, model_version, added FROM vectors LIMIT 1",
    "INSERT INTO people(name) VALUES ('Ghost')",
    "UPDATE settings SET value = 'abc' WHERE key = 'generation'",
    "UPDATE settings SET value = '7' WHERE key = 'dim'",
    "UPDATE settings SET value = 'ffff' WHERE key = 'model_version'",
    "DROP TABLE people", "DROP INDEX vectors_by_person",
]


def test_random_edits_of_the_metadata_never_delete_a_crop_or_end_unexpectedly(enrolled, tmp_path, capsys):
    data, source = enrolled
    crops = crop_census(source)
    rng = random.Random(24)
    edits = EDITS + [";".join(rng.sample(EDITS, 2)) for _ in range(4)]
    image = str(sorted((data / sorted(os.listdir(data))[0]).iterdir())[1])
    for number, edit in enumerate(edits):
        ws = tmp_path / f"edit{number}"
        shutil.copytree(source, ws)
        with sqlite3.connect(ws / "gallery" / "meta.sqlite") as db:
            db.executescript(edit)
        for argv in (["people"], ["recognize", image, "--aligned"], ["enroll", "Newcomer", image, "--aligned"],
                     ["remove", "Newcomer"], ["people"], ["reindex"], ["people"]):
            code, errors = run_command(capsys, *argv, "-w", str(ws), "-q")
            assert code in (0, 2) and len(errors) == (code == 2), (edit, argv, errors)
            assert not crops - crop_census(ws), (edit, argv)  # nothing lost
        assert sorted(people_listing(ws, capsys)) == sorted(os.listdir(data)), edit  # reindex repaired it
        assert not (ws / "quarantine").exists(), edit  # damage is never mistaken for leftovers


def test_crops_without_a_row_are_quarantined_reported_and_restorable(enrolled, capsys):
    data, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    orphan = add_orphan_crop(ws, person)
    (ws / "crops" / "Left Behind").mkdir()
    shutil.copy(ws / "crops" / person / orphan, ws / "crops" / "Left Behind" / orphan)
    code, errors = run_command(capsys, "people", "-w", str(ws))  # a reader reports, changes nothing
    assert code == 2 and "no gallery row" in errors[0] and (ws / "crops" / person / orphan).exists()
    capsys.readouterr()
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0  # a writer moves them aside and says where
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note")]
    assert len(notes) == 1 and "2 stored crop(s)" in notes[0] and "quarantine" in notes[0]
    assert not (ws / "crops" / person / orphan).exists() and not (ws / "crops" / "Left Behind").exists()
    assert len(list((ws / "quarantine").glob(f"*/*/{orphan}"))) == 2
    people = people_listing(ws, capsys)
    capsys.readouterr()
    assert main(["reindex", "--restore-quarantined", "-w", str(ws), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["restored_from_quarantine"] == 2
    assert people_listing(ws, capsys) == {**people, person: people[person] + 1, "Left Behind": 1}
    assert not list((ws / "quarantine").glob("*/*/*"))


def test_files_among_the_crops_that_are_not_crops_never_leave_reindex_stuck(enrolled, capsys):
    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    (ws / "crops" / person / "photo.png").write_bytes(b"not a crop name")
    (ws / "crops" / person / ".DS_Store").write_bytes(b"the system's own")
    (ws / "crops" / "notes.txt").write_text("mine")
    code, errors = run_command(capsys, "people", "-w", str(ws))
    assert code == 2 and "not crops" in errors[0]
    assert main(["reindex", "-w", str(ws), "-q"]) == 0
    assert people_listing(ws, capsys)  # consistent again: the foreign entries were moved aside
    assert {p.name for p in (ws / "quarantine").rglob("*") if p.is_file()} == {"photo.png", "notes.txt"}
    assert (ws / "crops" / person / ".DS_Store").exists()


def test_forget_erases_a_person_whose_crops_are_only_in_quarantine(enrolled, capsys):
    from gallery import Gallery

    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[-1]
    gallery = Gallery.open(ws / "gallery")  # rows gone, crops left: the next writer quarantines them
    gallery.remove_person(person)
    gallery.save()
    gallery.close()
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert list((ws / "quarantine").glob(f"*/{person}"))
    assert main(["forget", person, "-w", str(ws), "-q", "--steps", "2"]) == 0
    assert not list((ws / "quarantine").glob(f"*/{person}")) and not (ws / "crops" / person).exists()


def test_reindex_quarantines_a_crop_it_cannot_read(enrolled, capsys):
    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    broken = ws / "crops" / person / ("f" * 16 + "-0.png")
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    capsys.readouterr()
    assert main(["reindex", "-w", str(ws), "--json", "-q"]) == 0
    assert len(json.loads(capsys.readouterr().out)["skipped"]) == 1
    assert people_listing(ws, capsys)  # readers agree with the gallery again
    assert list((ws / "quarantine").glob(f"*/{person}/{broken.name}"))
