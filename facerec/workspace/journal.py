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
by the next writer (:mod:`facerec.workspace.recovery`): a listed crop that the gallery has no row for and
whose bytes are still the ones written is deleted; anything else is kept or quarantined. Readers
skip the crops open entries name when they compare the gallery with the stored crops, since a
command may be between its two steps right then. Each entry is sealed with the workspace's key
(an HMAC): an entry facerec did not write, or one damaged since, is never acted on.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from facerec.data.images import read_file_bytes
from facerec.core.errors import DataError
from facerec.workspace.layout import real_files, unlink_inside, write_inside

FOLDER = "journal"
FORMAT_VERSION = 1
MAX_ENTRY_BYTES = 16 << 20  # one enroll's crop list; far more than any command writes


@dataclass
class Entry:
    """One command's intent: the crops an enroll creates, or the files of the person a remove
    deletes, each as ``{path relative to the workspace: sha256 of its bytes}``; and the command's
    nonce, which every crop it writes carries (:func:`facerec.data.folder.png_bytes`), so the
    hashes match only the files this very command wrote or saw. A genuine entry copied back later,
    or from a copy of the workspace, therefore matches nothing it could delete."""

    command: str  # "enroll" or "remove"
    person: str
    crops: dict[str, str] = field(default_factory=dict)
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex)
    path: Path | None = None  # the entry's file, once written

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "command": self.command, "person": self.person, "crops": self.crops,
                "nonce": self.nonce}

    def message(self) -> str:
        """What the entry's seal covers: everything it says."""
        return "journal|" + json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str | None:
    """:func:`digest` of a regular file's bytes (never through a link), or None when unreadable."""
    try:
        return digest(read_file_bytes(path, 1 << 30, "a crop", follow=False))
    except DataError:
        return None


def begin(root: str | os.PathLike, entry: Entry) -> Entry:
    """Write ``entry`` before the command's first step; returns it with its file set."""
    from facerec.workspace.erasure import seal
    from facerec.workspace.workspace import Workspace

    entry.path = Path(root) / FOLDER / f"{uuid.uuid4().hex}.json"
    record = {**entry.to_dict(), "seal": seal(Workspace(root), entry.message())}
    write_inside(Path(root), entry.path, json.dumps(record).encode("utf-8"))
    return entry


def end(root: str | os.PathLike, entry: Entry) -> None:
    """The command's steps are all done (or undone): drop its entry."""
    if entry.path is not None:
        unlink_inside(Path(root), entry.path)


def open_entries(root: str | os.PathLike) -> tuple[list[Entry], list[Path]]:
    """``(entries, unreadable entry files)`` of the workspace's journal, oldest first. An entry is
    acted on only if it carries this workspace's seal (:func:`facerec.erasure.seal`): one edited
    by hand, copied from elsewhere or damaged is unreadable; the next writer deletes it, and the
    crops it may have named are then treated as any others (quarantined, never deleted)."""
    entries, unreadable = [], []
    files = real_files(Path(root) / FOLDER)
    for path in sorted(files, key=_mtime):
        if path.name.startswith("."):  # an entry being written (atomic_write's temporary file)
            continue
        entry = _read(Path(root), path)
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


def _read(root: Path, path: Path) -> Entry | None:
    """The entry at ``path``, or None when it is unreadable or not sealed by this workspace."""
    from facerec.workspace.erasure import sealed
    from facerec.workspace.workspace import Workspace

    try:
        data = json.loads(read_file_bytes(path, MAX_ENTRY_BYTES, "a journal entry", follow=False).decode("utf-8"))
    except (DataError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        return None
    command, person, crops, nonce = (data.get(k) for k in ("command", "person", "crops", "nonce"))
    if command not in ("enroll", "remove") or not isinstance(person, str) or not isinstance(crops, dict):
        return None
    if not isinstance(nonce, str) or not all(isinstance(k, str) and isinstance(v, str) for k, v in crops.items()):
        return None
    entry = Entry(command, person, crops, nonce, path)
    return entry if sealed(Workspace(root), entry.message(), data.get("seal")) else None


def listed_files(root: Path, entry: Entry) -> list[Path]:
    """The files ``entry`` names that are there now with the bytes it recorded: only these may
    be deleted on its word. Paths are taken only in the two shapes the journal writes,
    ``crops/<its person>/<file>`` and ``quarantine/<batch>/<its person>/<file>``."""
    from facerec.workspace.layout import is_real_folder
    from facerec.core.names import name_problem

    if name_problem(entry.person):
        return []
    found = []
    for relative, sha in entry.crops.items():
        parts = relative.split("/")
        shaped = (len(parts) == 3 and parts[:2] == ["crops", entry.person]) or \
            (len(parts) == 4 and parts[0] == "quarantine" and parts[2] == entry.person and not name_problem(parts[1]))
        if not shaped or parts[-1] in ("", ".", ".."):
            continue
        path = root.joinpath(*parts)
        if is_real_folder(path.parent) and file_digest(path) == sha:  # file_digest: regular files, no link
            found.append(path)
    return found


def claimed(entries: list[Entry]) -> tuple[set[str], set[str]]:
    """``(crop paths relative to the workspace, people)`` that open entries are working on:
    crops being written and people being removed."""
    crops = {c for e in entries if e.command == "enroll" for c in e.crops}
    people = {e.person for e in entries if e.command == "remove"}
    return crops, people
