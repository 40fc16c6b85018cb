"""Nothing outside the workspace is ever deleted, and damaged metadata is never taken as
permission to delete (issue 24): links inside a workspace stop every command in one line, a
gallery whose rows disagree with its crops is reported (exit 2) and rebuilt by `reindex` with
every crop kept, crops without a row are quarantined rather than deleted unless the journal says
a killed command of facerec's own wrote them."""

import hashlib
import json
import os
import random
import shutil
import sqlite3
from collections import Counter

import pytest

from facerec.workspace import journal
from facerec.cli.main import main


def _crops(ws) -> Counter:
    """``(file name, content hash)`` of every crop, counted, in crops/ or quarantine/ (a move is
    not a loss; two people may hold the same image)."""
    found = Counter()
    for folder in ("crops", "quarantine"):
        for dirpath, _, files in os.walk(ws / folder):
            for f in files:
                if f.endswith(".png"):
                    found[f, hashlib.sha256(open(os.path.join(dirpath, f), "rb").read()).hexdigest()] += 1
    return found


def _run(capsys, *argv) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(list(argv))
    return code, [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]


def _people_json(ws, capsys) -> dict:
    capsys.readouterr()
    assert main(["people", "-w", str(ws), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["people"]


def _writers(data, ws, person):
    """One of each writing command, plus the readers, as the probe ran them."""
    other = sorted(p for p in os.listdir(data) if p != person)[0]
    image = str(sorted((data / other).iterdir())[0])
    return [["enroll", "Newcomer", image, "-w", str(ws), "--aligned", "-q"], ["remove", other, "-w", str(ws)],
            ["calibrate", "-w", str(ws), "-q"], ["forget", other, "-w", str(ws), "-q", "--steps", "2"],
            ["reindex", "-w", str(ws), "-q"], ["people", "-w", str(ws)],
            ["recognize", image, "-w", str(ws), "--aligned", "-q"]]


@pytest.mark.parametrize("where", ["person folder", "crop file", "crops folder", "models folder"])
def test_a_link_inside_the_workspace_stops_every_command_and_nothing_outside_changes(enrolled, tmp_path, capsys,
                                                                                    where):
    data, ws = enrolled
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    (outside / ".precious.txt.abcd1234.tmp").write_text("keep too")  # named like a leftover
    (outside / "0123456789abcdef.safetensors").write_text("keep as well")
    person = sorted(os.listdir(ws / "crops"))[0]
    if where == "person folder":  # the probe's case: crops/Bob -> somewhere else
        link = ws / "crops" / person
        shutil.rmtree(link)
        link.symlink_to(outside)
    elif where == "crop file":
        link = sorted((ws / "crops" / person).iterdir())[0]
        link.unlink()
        link.symlink_to(outside / "precious.txt")
    elif where == "crops folder":
        link = ws / "crops"
        shutil.move(str(link), str(tmp_path / "moved-crops"))
        link.symlink_to(tmp_path / "moved-crops")
    else:
        link = ws / "models"
        shutil.move(str(link), str(outside / "models"))
        link.symlink_to(outside)
    before = sorted((p.name, p.read_bytes()) for p in outside.rglob("*") if p.is_file())
    for argv in _writers(data, ws, person):
        code, errors = _run(capsys, *argv)
        assert code == 2 and len(errors) == 1, argv
        assert str(link) in errors[0] and "link" in errors[0]
    assert sorted((p.name, p.read_bytes()) for p in outside.rglob("*") if p.is_file()) == before
    assert os.path.islink(link)  # reported, not "repaired"


def test_a_special_file_or_a_file_where_a_folder_belongs_is_reported(enrolled, capsys):
    data, ws = enrolled
    os.mkfifo(ws / "crops" / "Fifo")
    code, errors = _run(capsys, "enroll", "Fifo", str(next((data / sorted(os.listdir(data))[0]).iterdir())),
                        "-w", str(ws), "--aligned", "-q")
    assert code == 2 and len(errors) == 1 and "special file" in errors[0]
    (ws / "crops" / "Fifo").unlink()
    (ws / "crops" / "Plain").write_text("a file where a person's folder belongs")
    code, errors = _run(capsys, "people", "-w", str(ws))
    assert code == 2 and "crops/Plain" in errors[0] and (ws / "crops" / "Plain").read_text().startswith("a file")


def test_the_lock_file_is_never_opened_through_a_link(enrolled, tmp_path, capsys):
    _, ws = enrolled
    target = tmp_path / "elsewhere.lock"
    (ws / ".lock").unlink()
    (ws / ".lock").symlink_to(target)
    code, errors = _run(capsys, "calibrate", "-w", str(ws), "-q")
    assert code == 2 and ".lock" in errors[0] and not target.exists()


def test_a_deleted_person_row_is_reported_and_reindex_brings_them_back(enrolled, capsys):
    data, ws = enrolled
    before, crops = _people_json(ws, capsys), _crops(ws)
    person = sorted(before)[1]
    with sqlite3.connect(ws / "gallery" / "meta.sqlite") as db:  # as the sqlite3 shell does: foreign keys off
        db.execute("DELETE FROM people WHERE name = ?", (person,))
    for argv in _writers(data, ws, person)[:4] + _writers(data, ws, person)[5:]:  # everyone but reindex
        code, errors = _run(capsys, *argv)
        assert code == 2 and len(errors) == 1 and "corrupt" in errors[0] and "facerec reindex" in errors[0], argv
        assert _crops(ws) == crops, argv  # no crop deleted, none moved
    code, _ = _run(capsys, "reindex", "-w", str(ws), "-q")
    assert code == 0 and _people_json(ws, capsys) == before and _crops(ws) == crops


def test_an_altered_image_hash_is_reported_and_reindex_keeps_every_crop(enrolled, capsys):
    data, ws = enrolled
    before, crops = _people_json(ws, capsys), _crops(ws)
    with sqlite3.connect(ws / "gallery" / "meta.sqlite") as db:
        db.execute("UPDATE vectors SET image_sha256 = '00' || substr(image_sha256, 3) WHERE vector_id = "
                   "(SELECT MIN(vector_id) FROM vectors)")
    code, errors = _run(capsys, "people", "-w", str(ws))
    assert code == 2 and "disagree" in errors[0] and "no stored crop" in errors[0]
    person = sorted(before)[0]
    for argv in _writers(data, ws, person)[:4]:
        code, errors = _run(capsys, *argv)
        assert code == 2 and len(errors) == 1 and "facerec reindex" in errors[0], argv
        assert _crops(ws) == crops
    capsys.readouterr()
    assert main(["reindex", "-w", str(ws), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_without_crop"] == 1  # the altered row; its crop is kept
    assert _people_json(ws, capsys) == before and _crops(ws) == crops


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
    crops = _crops(source)
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
            code, errors = _run(capsys, *argv, "-w", str(ws), "-q")
            assert code in (0, 2) and len(errors) == (code == 2), (edit, argv, errors)
            assert not crops - _crops(ws), (edit, argv)  # nothing lost
        assert sorted(_people_json(ws, capsys)) == sorted(os.listdir(data)), edit  # reindex repaired it
        assert not (ws / "quarantine").exists(), edit  # damage is never mistaken for leftovers


def _orphan(ws, person: str, content: bytes = b"crop") -> str:
    name = hashlib.sha256(content).hexdigest()[:16] + "-0.png"
    shutil.copy(sorted((ws / "crops" / person).iterdir())[0], ws / "crops" / person / name)
    return name


def test_crops_without_a_row_are_quarantined_reported_and_restorable(enrolled, capsys):
    data, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    orphan = _orphan(ws, person)
    (ws / "crops" / "Left Behind").mkdir()
    shutil.copy(ws / "crops" / person / orphan, ws / "crops" / "Left Behind" / orphan)
    code, errors = _run(capsys, "people", "-w", str(ws))  # a reader reports, changes nothing
    assert code == 2 and "no gallery row" in errors[0] and (ws / "crops" / person / orphan).exists()
    capsys.readouterr()
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0  # a writer moves them aside and says where
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note")]
    assert len(notes) == 1 and "2 stored crop(s)" in notes[0] and "quarantine" in notes[0]
    assert not (ws / "crops" / person / orphan).exists() and not (ws / "crops" / "Left Behind").exists()
    assert len(list((ws / "quarantine").glob(f"*/*/{orphan}"))) == 2
    people = _people_json(ws, capsys)
    capsys.readouterr()
    assert main(["reindex", "--restore-quarantined", "-w", str(ws), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["restored_from_quarantine"] == 2
    assert _people_json(ws, capsys) == {**people, person: people[person] + 1, "Left Behind": 1}
    assert not list((ws / "quarantine").glob("*/*/*"))


def test_the_journal_decides_what_a_killed_enroll_left(enrolled, capsys):
    """An enroll killed between its crops and its gallery commit: the crops its journal entry
    lists with their bytes' hash are deleted; a listed crop whose bytes changed, and a crop no
    entry lists, are quarantined; a killed remove whose commit landed is finished."""
    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    ours, changed = _orphan(ws, person, b"ours"), _orphan(ws, person, b"changed")
    stray = _orphan(ws, person, b"stray")
    crop_bytes = (ws / "crops" / person / ours).read_bytes()
    journal.begin(ws, journal.Entry("enroll", person, {f"crops/{person}/{ours}": journal.digest(crop_bytes),
                                                         f"crops/{person}/{changed}": journal.digest(b"other"),
                                                         "crops/../../precious.png": journal.digest(crop_bytes)}))
    code, errors = _run(capsys, "people", "-w", str(ws))  # the entry's crops are not counted as damage ...
    assert code == 2 and f"1 stored crop(s) have no gallery row (first: crops/{person}/{stray})" in errors[0]
    capsys.readouterr()
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert not (ws / "crops" / person / ours).exists() and not list((ws / "quarantine").glob(f"*/*/{ours}"))
    assert {p.name for p in (ws / "quarantine").glob("*/*/*")} == {changed, stray}
    assert not list((ws / "journal").iterdir())

    from gallery import Gallery

    second = sorted(os.listdir(ws / "crops"))[1]
    gallery = Gallery.open(ws / "gallery")  # a remove killed after its gallery commit ...
    gallery.remove_person(second)
    gallery.save()
    gallery.close()
    files = {p.relative_to(ws).as_posix(): journal.file_digest(p) for p in (ws / "crops" / second).iterdir()}
    journal.begin(ws, journal.Entry("remove", second, files))  # ... before its crops went: the next writer finishes it
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert not (ws / "crops" / second).exists() and not list((ws / "quarantine").glob(f"*/{second}"))


def test_a_remove_that_fails_after_its_commit_is_finished_by_the_next_writer(enrolled, capsys, monkeypatch):
    from facerec.workspace import recovery as cleanup

    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]

    def denied(root, name):
        raise PermissionError(13, "Permission denied", str(ws / "crops" / name))

    monkeypatch.setattr(cleanup, "delete_person_crops", denied)
    code, errors = _run(capsys, "remove", person, "-w", str(ws))
    assert code == 2 and len(errors) == 1 and "permission denied" in errors[0]
    monkeypatch.undo()
    assert person not in _people_json(ws, capsys) and (ws / "crops" / person).is_dir()  # committed, crops left
    assert len(list((ws / "journal").iterdir())) == 1  # ... and the entry that says to finish
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert not (ws / "crops" / person).exists() and not (ws / "quarantine").exists()


def test_a_reader_looks_again_once_no_writer_is_at_work(enrolled, capsys, monkeypatch):
    """What a writer does between its two steps is not damage: a reader that sees a disagreement
    waits (a bounded time) for the writer lock to be free and looks again."""
    import threading

    from facerec.workspace import lock

    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    stray = [ws / "crops" / person / _orphan(ws, person)]
    holding, release = threading.Event(), threading.Event()

    def writer():
        with lock.workspace_lock(ws):
            holding.set()
            release.wait(30)
            stray[0].unlink()  # the writer's second step: the state is whole again when it lets go

    monkeypatch.setattr(lock, "WAIT_SECONDS", 20.0)
    thread = threading.Thread(target=writer)
    thread.start()
    holding.wait(30)
    threading.Timer(0.5, release.set).start()
    people = _people_json(ws, capsys)  # saw the stray crop, waited, looked again: no error
    thread.join()
    assert person in people

    monkeypatch.setattr(lock, "WAIT_SECONDS", 0.3)
    stray[0] = ws / "crops" / person / _orphan(ws, person, b"another")
    release.clear()
    holding.clear()
    thread = threading.Thread(target=writer)
    thread.start()
    holding.wait(30)
    code, errors = _run(capsys, "people", "-w", str(ws))
    release.set()
    thread.join()
    assert code == 2 and "being changed" in errors[0]  # busy, not "corrupt"


def test_files_among_the_crops_that_are_not_crops_never_leave_reindex_stuck(enrolled, capsys):
    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    (ws / "crops" / person / "photo.png").write_bytes(b"not a crop name")
    (ws / "crops" / person / ".DS_Store").write_bytes(b"the system's own")
    (ws / "crops" / "notes.txt").write_text("mine")
    code, errors = _run(capsys, "people", "-w", str(ws))
    assert code == 2 and "not crops" in errors[0]
    assert main(["reindex", "-w", str(ws), "-q"]) == 0
    assert _people_json(ws, capsys)  # consistent again: the foreign entries were moved aside
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


def _forge(ws, command: str, person: str, crops: dict | None = None) -> None:
    """A journal entry as facerec writes them, but not sealed by this workspace (made by hand)."""
    (ws / "journal").mkdir(exist_ok=True)
    record = {"format_version": 1, "command": command, "person": person, "crops": crops or {}, "nonce": "0" * 32,
              "seal": "0" * 64}
    (ws / "journal" / "forged.json").write_text(json.dumps(record))


@pytest.mark.parametrize("case", ["remove entry", "enroll entry", "remove entry, quarantined crops",
                                  "remove entry, no gallery", "enroll entry, no gallery"])
def test_journal_entries_facerec_did_not_write_are_never_acted_on(enrolled, capsys, case):
    """The second independent probe's cases (N1, N2, N4, J4): entries made by hand, with or without
    the gallery's files, never delete a crop; they are dropped and the crops kept or quarantined."""
    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    if "quarantined" in case:
        batch = ws / "quarantine" / "20240101T000000Z-abcdef" / "Carol"
        batch.mkdir(parents=True)
        shutil.copy(sorted((ws / "crops" / person).iterdir())[0], batch / ("0" * 16 + "-0.png"))
        person = "Carol"
    crops = _crops(ws)
    listed = {f"crops/{person}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (ws / "crops" / person).glob("*")} if (ws / "crops" / person).exists() else {}
    _forge(ws, case.split()[0], person, listed)
    if "no gallery" in case:
        shutil.rmtree(ws / "gallery")
    for argv in (["calibrate", "-w", str(ws), "-q"], ["reindex", "-w", str(ws), "-q"]):
        code, errors = _run(capsys, *argv)
        assert code in (0, 2) and len(errors) == (code == 2), (argv, errors)
        assert _crops(ws) == crops, argv  # every crop, in crops/ or quarantine/
    assert not (ws / "journal" / "forged.json").exists()


def test_a_hand_set_pending_forget_deletes_nothing(enrolled, capsys):
    """The probe's W2: workspace.json edited to mark an old forget unfinished again would have made
    a plain `people` delete a person enrolled since under the same name."""
    data, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    assert main(["forget", person, "-w", str(ws), "-q", "--steps", "2"]) == 0
    image = str(sorted((data / person).iterdir())[0])
    assert main(["enroll", person, image, "-w", str(ws), "--aligned", "-q"]) == 0
    manifest = json.loads((ws / "workspace.json").read_text())
    manifest["erasure"]["pending"] = manifest["erasure"]["ledger"][0]["request"]
    (ws / "workspace.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert person in _people_json(ws, capsys) and (ws / "crops" / person).is_dir()
    assert "pending" not in json.loads((ws / "workspace.json").read_text())["erasure"]


def test_a_data_root_edited_to_the_workspace_never_takes_its_folders(enrolled, capsys):
    """The probe's W1: data.root pointed at the workspace and a person named "crops" forgotten."""
    data, ws = enrolled
    manifest = json.loads((ws / "workspace.json").read_text())
    manifest["data"]["root"] = str(ws)
    (ws / "workspace.json").write_text(json.dumps(manifest))
    image = str(sorted((data / sorted(os.listdir(data))[0]).iterdir())[0])
    assert main(["enroll", "crops", image, "-w", str(ws), "--aligned", "-q"]) == 0
    before = _crops(ws)
    assert main(["forget", "crops", "-w", str(ws), "-q", "--steps", "2"]) == 0
    assert sum((before - _crops(ws)).values()) == 1  # only the forgotten person's one crop went


def test_a_hard_linked_gallery_database_is_refused_not_changed(enrolled, tmp_path, capsys):
    """The probe's H1: SQLite changes meta.sqlite in place; a second hard link (a `cp -al` backup)
    would be changed with it."""
    data, ws = enrolled
    backup = tmp_path / "backup.sqlite"
    os.link(ws / "gallery" / "meta.sqlite", backup)
    before = backup.read_bytes()
    image = str(sorted((data / sorted(os.listdir(data))[0]).iterdir())[0])
    code, errors = _run(capsys, "enroll", "Newcomer", image, "-w", str(ws), "--aligned", "-q")
    assert code == 2 and "hard links" in errors[0] and backup.read_bytes() == before


def _sealed_entry_of_a_killed(command: str, ws, *argv) -> bytes:
    """The journal entry a `command` killed right after writing it leaves (sealed, genuine)."""
    from facerec.workspace import journal as journal_module

    real_begin = journal_module.begin

    def begin_then_die(root, entry):
        real_begin(root, entry)
        raise KeyboardInterrupt  # stands for the kill: the entry stays, nothing after it runs

    journal_module.begin = begin_then_die
    try:
        main([command, *argv, "-w", str(ws), "-q"])
    finally:
        journal_module.begin = real_begin
    entries = list((ws / "journal").iterdir())
    assert len(entries) == 1
    return entries[0].read_bytes()


def test_a_genuine_entry_replayed_later_deletes_nothing(enrolled, capsys):
    """The third probe's F1: a sealed remove entry of someone not enrolled, copied back after crops
    of that name appeared (by hand, or quarantined), must not delete them."""
    data, ws = enrolled
    entry = _sealed_entry_of_a_killed("remove", ws, "Carl")
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0  # settles it: nothing to do
    source = sorted((ws / "crops").iterdir())[0]
    shutil.copytree(source, ws / "crops" / "Carl")
    (ws / "journal" / "replayed.json").write_bytes(entry)
    crops = _crops(ws)
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert _crops(ws) == crops and list((ws / "quarantine").glob("*/Carl/*"))  # moved aside, not deleted
    (ws / "journal" / "replayed.json").write_bytes(entry)
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert _crops(ws) == crops  # quarantined crops are not the entry's either


def test_an_enroll_entry_from_a_copy_of_the_workspace_deletes_nothing(enrolled, tmp_path, capsys):
    """The third probe's F2: an enroll entry sealed in a copy (same key), replayed into the original
    after the same person was enrolled there and the gallery restored from before: the crops there
    carry another command's nonce, so the entry's hashes match none of them."""
    data, ws = enrolled
    copy = tmp_path / "copy"
    shutil.copytree(ws, copy)
    images = [str(p) for p in sorted((data / sorted(os.listdir(data))[0]).iterdir())[:2]]
    entry = _sealed_entry_of_a_killed("enroll", copy, "Carl", *images, "--aligned")
    shutil.copytree(ws / "gallery", tmp_path / "gallery-before")
    assert main(["enroll", "Carl", *images, "-w", str(ws), "--aligned", "-q"]) == 0
    shutil.rmtree(ws / "gallery")
    shutil.copytree(tmp_path / "gallery-before", ws / "gallery")
    (ws / "journal" / "replayed.json").write_bytes(entry)
    crops = _crops(ws)
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert _crops(ws) == crops  # Carl's crops quarantined (the restored gallery lacks them), not deleted


def test_reindex_quarantines_a_crop_it_cannot_read(enrolled, capsys):
    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    broken = ws / "crops" / person / ("f" * 16 + "-0.png")
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    capsys.readouterr()
    assert main(["reindex", "-w", str(ws), "--json", "-q"]) == 0
    assert len(json.loads(capsys.readouterr().out)["skipped"]) == 1
    assert _people_json(ws, capsys)  # readers agree with the gallery again
    assert list((ws / "quarantine").glob(f"*/{person}/{broken.name}"))
