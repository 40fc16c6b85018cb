"""Nothing outside the workspace is ever deleted (issue 24): a link, a special file or a hard link
inside a workspace stops every command in one line, the lock file is never opened through a link,
and a data root edited to point into the workspace never takes its folders."""

import json
import os
import shutil

import pytest

from facerec.cli.main import main
from workspace_checks import crop_census, run_command, writing_commands


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
    for argv in writing_commands(data, ws, person):
        code, errors = run_command(capsys, *argv)
        assert code == 2 and len(errors) == 1, argv
        assert str(link) in errors[0] and "link" in errors[0]
    assert sorted((p.name, p.read_bytes()) for p in outside.rglob("*") if p.is_file()) == before
    assert os.path.islink(link)  # reported, not "repaired"


def test_a_special_file_or_a_file_where_a_folder_belongs_is_reported(enrolled, capsys):
    data, ws = enrolled
    os.mkfifo(ws / "crops" / "Fifo")
    code, errors = run_command(capsys, "enroll", "Fifo", str(next((data / sorted(os.listdir(data))[0]).iterdir())),
                        "-w", str(ws), "--aligned", "-q")
    assert code == 2 and len(errors) == 1 and "special file" in errors[0]
    (ws / "crops" / "Fifo").unlink()
    (ws / "crops" / "Plain").write_text("a file where a person's folder belongs")
    code, errors = run_command(capsys, "people", "-w", str(ws))
    assert code == 2 and "crops/Plain" in errors[0] and (ws / "crops" / "Plain").read_text().startswith("a file")


def test_the_lock_file_is_never_opened_through_a_link(enrolled, tmp_path, capsys):
    _, ws = enrolled
    target = tmp_path / "elsewhere.lock"
    (ws / ".lock").unlink()
    (ws / ".lock").symlink_to(target)
    code, errors = run_command(capsys, "calibrate", "-w", str(ws), "-q")
    assert code == 2 and ".lock" in errors[0] and not target.exists()


def test_a_data_root_edited_to_the_workspace_never_takes_its_folders(enrolled, capsys):
    """The probe's W1: data.root pointed at the workspace and a person named "crops" forgotten."""
    data, ws = enrolled
    manifest = json.loads((ws / "workspace.json").read_text())
    manifest["data"]["root"] = str(ws)
    (ws / "workspace.json").write_text(json.dumps(manifest))
    image = str(sorted((data / sorted(os.listdir(data))[0]).iterdir())[0])
    assert main(["enroll", "crops", image, "-w", str(ws), "--aligned", "-q"]) == 0
    before = crop_census(ws)
    assert main(["forget", "crops", "-w", str(ws), "-q", "--steps", "2"]) == 0
    assert sum((before - crop_census(ws)).values()) == 1  # only the forgotten person's one crop went


def test_a_hard_linked_gallery_database_is_refused_not_changed(enrolled, tmp_path, capsys):
    """The probe's H1: SQLite changes meta.sqlite in place; a second hard link (a `cp -al` backup)
    would be changed with it."""
    data, ws = enrolled
    backup = tmp_path / "backup.sqlite"
    os.link(ws / "gallery" / "meta.sqlite", backup)
    before = backup.read_bytes()
    image = str(sorted((data / sorted(os.listdir(data))[0]).iterdir())[0])
    code, errors = run_command(capsys, "enroll", "Newcomer", image, "-w", str(ws), "--aligned", "-q")
    assert code == 2 and "hard links" in errors[0] and backup.read_bytes() == before
