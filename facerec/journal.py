"""The workspace's journal of crop writes and removals: what makes a crop without a gallery row
*this command's own leftover* rather than something to keep.

Enrolling writes the crops, then commits the gallery; removing commits the gallery, then deletes
the crops. A ``kill -9`` between the two leaves crops no gallery row refers to. Those may be
deleted only when the workspace itself says a command of its own made them: damaged metadata
(a deleted row, an altered hash) looks exactly the same and must never become permission to
delete. So before the first step a command writes an entry (``WORKSPACE/journal/<id>.json``,
temporary file and rename) naming the crops it is about to create, each with the SHA-256 of its
bytes, or the person it is about to remove; it deletes the entry once both steps are done, and
undoes its crops itself when it fails in between. An entry that outlives its command is settled
by the next writer (:mod:`facerec.cleanup`): a listed crop that the gallery has no row for and
whose bytes are still the ones written is deleted; anything else is kept or quarantined. Readers
skip the crops open entries name when they compare the gallery with the stored crops, since a
command may be between its two steps right then.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .io import atomic_write_json
from .layout import real_files

FOLDER = "journal"
FORMAT_VERSION = 1
MAX_ENTRY_BYTES = 16 << 20  # one enroll's crop list; far more than any command writes


@dataclass
class Entry:
    """One command's intent: crops it creates (``{relative path: sha256 of the bytes}``) or a
    person it removes."""

    command: str  # "enroll" or "remove"
    person: str
    crops: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the entry's file, once written

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "command": self.command, "person": self.person, "crops": self.crops}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def begin(root: str | os.PathLike, entry: Entry) -> Entry:
    """Write ``entry`` before the command's first step; returns it with its file set."""
    entry.path = Path(root) / FOLDER / f"{uuid.uuid4().hex}.json"
    atomic_write_json(entry.path, entry.to_dict())
    return entry


def end(entry: Entry) -> None:
    """The command's steps are all done (or undone): drop its entry."""
    if entry.path is not None:
        entry.path.unlink(missing_ok=True)


def open_entries(root: str | os.PathLike) -> tuple[list[Entry], list[Path]]:
    """``(entries, unreadable entry files)`` of the workspace's journal, oldest first."""
    entries, unreadable = [], []
    files = real_files(Path(root) / FOLDER)
    for path in sorted(files, key=_mtime):
        if path.name.startswith("."):  # an entry being written (atomic_write's temporary file)
            continue
        entry = _read(path)
        if entry is None:
            unreadable.append(path)
        else:
            entries.append(entry)
    return entries, unreadable


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _read(path: Path) -> Entry | None:
    try:
        if path.lstat().st_size > MAX_ENTRY_BYTES:
            return None
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        return None
    command, person, crops = data.get("command"), data.get("person"), data.get("crops")
    if command not in ("enroll", "remove") or not isinstance(person, str) or not isinstance(crops, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in crops.items()):
        return None
    return Entry(command, person, crops, path)


def claimed(entries: list[Entry]) -> tuple[set[str], set[str]]:
    """``(crop paths relative to the workspace, people)`` that open entries are working on:
    crops being written and people being removed."""
    crops = {c for e in entries if e.command == "enroll" for c in e.crops}
    people = {e.person for e in entries if e.command == "remove"}
    return crops, people
