"""What the workspace-safety tests (test_workspace_links, _metadata, _journal) share: crops
counted by content, a command's error lines, the people listing, every writing command, and
hand-made or killed commands' journal entries."""

import hashlib
import json
import os
import shutil
from collections import Counter

from facerec.cli.main import main


def crop_census(ws) -> Counter:
    """``(file name, content hash)`` of every crop, counted, in crops/ or quarantine/ (a move is
    not a loss; two people may hold the same image)."""
    found = Counter()
    for folder in ("crops", "quarantine"):
        for dirpath, _, files in os.walk(ws / folder):
            for f in files:
                if f.endswith(".png"):
                    found[f, hashlib.sha256(open(os.path.join(dirpath, f), "rb").read()).hexdigest()] += 1
    return found


def run_command(capsys, *argv) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(list(argv))
    return code, [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]


def people_listing(ws, capsys) -> dict:
    capsys.readouterr()
    assert main(["people", "-w", str(ws), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["people"]


def writing_commands(data, ws, person):
    """One of each writing command, plus the readers, as the probe ran them."""
    other = sorted(p for p in os.listdir(data) if p != person)[0]
    image = str(sorted((data / other).iterdir())[0])
    return [["enroll", "Newcomer", image, "-w", str(ws), "--aligned", "-q"], ["remove", other, "-w", str(ws)],
            ["calibrate", "-w", str(ws), "-q"], ["forget", other, "-w", str(ws), "-q", "--steps", "2"],
            ["reindex", "-w", str(ws), "-q"], ["people", "-w", str(ws)],
            ["recognize", image, "-w", str(ws), "--aligned", "-q"]]


def add_orphan_crop(ws, person: str, content: bytes = b"crop") -> str:
    name = hashlib.sha256(content).hexdigest()[:16] + "-0.png"
    shutil.copy(sorted((ws / "crops" / person).iterdir())[0], ws / "crops" / person / name)
    return name


def forge_entry(ws, command: str, person: str, crops: dict | None = None) -> None:
    """A journal entry as facerec writes them, but not sealed by this workspace (made by hand)."""
    (ws / "journal").mkdir(exist_ok=True)
    record = {"format_version": 1, "command": command, "person": person, "crops": crops or {}, "nonce": "0" * 32,
              "seal": "0" * 64}
    (ws / "journal" / "forged.json").write_text(json.dumps(record))


def sealed_entry_of_a_killed(command: str, ws, *argv) -> bytes:
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
