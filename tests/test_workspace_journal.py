"""Only a journal entry facerec itself sealed, in this workspace, for a command killed here, decides
what a killed command left (issue 24); forged, replayed or copied entries and hand-set pending
forgets delete nothing."""

import hashlib
import json
import os
import shutil

import pytest

from facerec.workspace import journal
from facerec.cli.main import main
from workspace_checks import crop_census, run_command, people_listing, add_orphan_crop, forge_entry, sealed_entry_of_a_killed


def test_the_journal_decides_what_a_killed_enroll_left(enrolled, capsys):
    """An enroll killed between its crops and its gallery commit: the crops its journal entry
    lists with their bytes' hash are deleted; a listed crop whose bytes changed, and a crop no
    entry lists, are quarantined; a killed remove whose commit landed is finished."""
    _, ws = enrolled
    person = sorted(os.listdir(ws / "crops"))[0]
    ours, changed = add_orphan_crop(ws, person, b"ours"), add_orphan_crop(ws, person, b"changed")
    stray = add_orphan_crop(ws, person, b"stray")
    crop_bytes = (ws / "crops" / person / ours).read_bytes()
    journal.begin(ws, journal.Entry("enroll", person, {f"crops/{person}/{ours}": journal.digest(crop_bytes),
                                                         f"crops/{person}/{changed}": journal.digest(b"other"),
                                                         "crops/../../precious.png": journal.digest(crop_bytes)}))
    code, errors = run_command(capsys, "people", "-w", str(ws))  # the entry's crops are not counted as damage ...
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
    code, errors = run_command(capsys, "remove", person, "-w", str(ws))
    assert code == 2 and len(errors) == 1 and "permission denied" in errors[0]
    monkeypatch.undo()
    assert person not in people_listing(ws, capsys) and (ws / "crops" / person).is_dir()  # committed, crops left
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
    stray = [ws / "crops" / person / add_orphan_crop(ws, person)]
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
    people = people_listing(ws, capsys)  # saw the stray crop, waited, looked again: no error
    thread.join()
    assert person in people

    monkeypatch.setattr(lock, "WAIT_SECONDS", 0.3)
    stray[0] = ws / "crops" / person / add_orphan_crop(ws, person, b"another")
    release.clear()
    holding.clear()
    thread = threading.Thread(target=writer)
    thread.start()
    holding.wait(30)
    code, errors = run_command(capsys, "people", "-w", str(ws))
    release.set()
    thread.join()
    assert code == 2 and "being changed" in errors[0]  # busy, not "corrupt"


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
    crops = crop_census(ws)
    listed = {f"crops/{person}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (ws / "crops" / person).glob("*")} if (ws / "crops" / person).exists() else {}
    forge_entry(ws, case.split()[0], person, listed)
    if "no gallery" in case:
        shutil.rmtree(ws / "gallery")
    for argv in (["calibrate", "-w", str(ws), "-q"], ["reindex", "-w", str(ws), "-q"]):
        code, errors = run_command(capsys, *argv)
        assert code in (0, 2) and len(errors) == (code == 2), (argv, errors)
        assert crop_census(ws) == crops, argv  # every crop, in crops/ or quarantine/
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
    assert person in people_listing(ws, capsys) and (ws / "crops" / person).is_dir()
    assert "pending" not in json.loads((ws / "workspace.json").read_text())["erasure"]


def test_a_genuine_entry_replayed_later_deletes_nothing(enrolled, capsys):
    """The third probe's F1: a sealed remove entry of someone not enrolled, copied back after crops
    of that name appeared (by hand, or quarantined), must not delete them."""
    data, ws = enrolled
    entry = sealed_entry_of_a_killed("remove", ws, "Carl")
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0  # settles it: nothing to do
    source = sorted((ws / "crops").iterdir())[0]
    shutil.copytree(source, ws / "crops" / "Carl")
    (ws / "journal" / "replayed.json").write_bytes(entry)
    crops = crop_census(ws)
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert crop_census(ws) == crops and list((ws / "quarantine").glob("*/Carl/*"))  # moved aside, not deleted
    (ws / "journal" / "replayed.json").write_bytes(entry)
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert crop_census(ws) == crops  # quarantined crops are not the entry's either


def test_an_enroll_entry_from_a_copy_of_the_workspace_deletes_nothing(enrolled, tmp_path, capsys):
    """The third probe's F2: an enroll entry sealed in a copy (same key), replayed into the original
    after the same person was enrolled there and the gallery restored from before: the crops there
    carry another command's nonce, so the entry's hashes match none of them."""
    data, ws = enrolled
    copy = tmp_path / "copy"
    shutil.copytree(ws, copy)
    images = [str(p) for p in sorted((data / sorted(os.listdir(data))[0]).iterdir())[:2]]
    entry = sealed_entry_of_a_killed("enroll", copy, "Carl", *images, "--aligned")
    shutil.copytree(ws / "gallery", tmp_path / "gallery-before")
    assert main(["enroll", "Carl", *images, "-w", str(ws), "--aligned", "-q"]) == 0
    shutil.rmtree(ws / "gallery")
    shutil.copytree(tmp_path / "gallery-before", ws / "gallery")
    (ws / "journal" / "replayed.json").write_bytes(entry)
    crops = crop_census(ws)
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    assert crop_census(ws) == crops  # Carl's crops quarantined (the restored gallery lacks them), not deleted
