"""What a killed command left behind, settled by the next command that writes.

Every write in a workspace is a temporary file renamed into place, a staging folder swapped in, a
content-addressed weights file that the manifest starts to point at, or crops written under a
journal entry (:mod:`facerec.journal`); a ``kill -9`` between two steps leaves the old state
complete plus some of these leftovers. :func:`clean_workspace` runs under the writer lock at the
start of every writing command (after the layout check and after an interrupted forget is
completed) and settles them, so no leftover outlives the next writer:

- temporary files (``.NAME.XXXXXXXX.tmp``, ``*.faiss.tmp``) in the workspace's own folders are
  removed;
- staging galleries (``gallery.rebuild``, ``gallery.staging``, ``gallery.old``) are removed,
  except that a gallery swap killed between its two renames is first completed backwards (the
  old gallery is put back), so the gallery is never lost;
- weights files the manifest does not point to (a forget or training killed before its commit;
  all of them when there is no manifest yet) are removed;
- journal entries left by a killed enroll or remove are settled: a crop the entry says that
  command wrote, whose bytes are still the ones it wrote and which no gallery row refers to, is
  deleted; a remove whose gallery commit landed has its crops deleted;
- any other stored crop no gallery row refers to (and a crop folder whose name cannot be a
  person's) is **quarantined**, never deleted: moved to ``WORKSPACE/quarantine/<batch>/`` and
  reported (`facerec reindex --restore-quarantined` enrolls it again).

Nothing is ever deleted or moved on the word of damaged metadata: when the gallery's metadata is
damaged or a gallery row has lost its crop, the crops and the journal are left exactly as they
are (the command that opens the gallery then reports the damage), and without a gallery the crops
are its source, not leftovers. Nothing is followed through a link (:mod:`facerec.layout`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from gallery import Gallery, GalleryCorrupt, stored_image_hashes

from . import journal
from .consistency import CROPS, compare, crop_key
from .erasure import remove_stale_dirs
from .layout import is_real_folder, real_files, real_folders
from .names import name_problem
from .workspace import Workspace

QUARANTINE = "quarantine"
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp", re.DOTALL)  # io.atomic_write_with's mkstemp names
log = logging.getLogger("facerec")


def clean_workspace(ws: Workspace, keep_orphans: bool = False) -> dict:
    """Settle the leftovers of killed commands; returns how many of each kind.

    ``keep_orphans``: leave crops without a gallery row where they are (``reindex``, which is
    about to enroll them from there)."""
    restored = _undo_interrupted_swap(ws.root)
    report = {
        "gallery_restored": restored,
        "temporary_files": _remove_temporary_files(ws.root),
        "staging_folders": remove_stale_dirs(ws.root),
        "weights_files": _remove_unreferenced_weights(ws),
    }
    rows = _gallery_rows(ws.root, keep_orphans)  # None: no gallery, or a damaged one -- then nothing is decided
    report.update(settle_journal(ws.root, rows))
    report["quarantined"] = 0
    if rows is not None and not keep_orphans:
        report["quarantined"] = _quarantine_orphans(ws.root, rows)
    return report


def _gallery_rows(root: Path, keep_orphans: bool) -> dict[str, set[str]] | None:
    """The gallery's ``{person: image hashes}`` when there is something to decide on them, from a
    gallery checked whole (its metadata, then its index files against it: a row deleted by hand
    from a sound-looking metadata file shows there), else None."""
    if not (root / "gallery" / "meta.sqlite").is_file():
        return None
    try:
        rows = stored_image_hashes(root / "gallery")  # the metadata alone; also rolls back a hot SQLite journal
        entries, unreadable = journal.open_entries(root)
        if not (entries or unreadable) and (keep_orphans or not compare(root, rows)):
            return rows  # nothing to settle: the cheap check is enough
        Gallery.open(root / "gallery").close()  # about to act on the rows: the index files must agree too
        return rows
    except GalleryCorrupt:
        return None


def _remove_unreferenced_weights(ws: Workspace) -> int:
    if ws.exists():
        return ws.remove_unreferenced_weights()
    doomed = [p for p in real_files(ws.root / "models") if p.suffix == ".safetensors"]  # a first training killed
    for path in doomed:
        path.unlink(missing_ok=True)
    return len(doomed)


def _undo_interrupted_swap(root: Path) -> bool:
    """``gallery`` renamed to ``gallery.old`` but the new one never renamed in: put the old one back."""
    live, old = root / "gallery", root / "gallery.old"
    if (live / "meta.sqlite").is_file() or not (old / "meta.sqlite").is_file() or not is_real_folder(old):
        return False
    shutil.rmtree(live, ignore_errors=True)
    old.rename(live)
    return True


def _remove_temporary_files(root: Path) -> int:
    folders = [root.resolve(), root / "models", root / "gallery", root / "journal", *real_folders(root / CROPS)]
    removed = 0
    for folder in folders:
        for path in real_files(folder):
            if _TEMPORARY.fullmatch(path.name) or path.name.endswith(".faiss.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


# -- the journal ---------------------------------------------------------------------------------
def settle_journal(root: Path, rows: dict[str, set[str]] | None) -> dict:
    """Finish or undo what killed enrolls and removes left, as their journal entries say; with
    ``rows`` None (no gallery, or damaged metadata) nothing can be decided and nothing is done."""
    report = {"journal_crops_removed": 0, "journal_entries": 0}
    entries, unreadable = journal.open_entries(root)
    if rows is None or not (entries or unreadable):
        return report
    batch = None
    for path in unreadable:  # facerec's own file, damaged: kept for inspection, out of the way
        batch = batch or _new_batch(root)
        _move(path, batch / ".journal" / path.name)  # no person's name starts with "."
    for entry in entries:
        if entry.command == "enroll":
            report["journal_crops_removed"] += _undo_enroll(root, entry, rows)
        elif not name_problem(entry.person) and entry.person not in rows:  # the remove's commit landed
            report["journal_crops_removed"] += delete_person_crops(root, entry.person)
        journal.end(entry)
        report["journal_entries"] += 1
    return report


def _undo_enroll(root: Path, entry: journal.Entry, rows: dict[str, set[str]]) -> int:
    """Delete the crops ``entry`` lists that are still the bytes it wrote and have no row."""
    if name_problem(entry.person):
        return 0  # not an entry this facerec wrote: never acted on
    folder = root / CROPS / entry.person
    present = {p.name: p for p in real_files(folder)}
    committed = {h[:16] for h in rows.get(entry.person, ())}
    removed = 0
    for relative, digest in entry.crops.items():
        parts = relative.split("/")
        if parts[:2] != [CROPS, entry.person] or len(parts) != 3 or parts[2] not in present:
            continue
        if crop_key(parts[2]) in committed:
            continue  # the enroll got as far as the gallery
        if journal.digest(present[parts[2]].read_bytes()) == digest:
            present[parts[2]].unlink()
            removed += 1
    _remove_if_empty(folder)
    return removed


def delete_person_crops(root: Path, person: str) -> int:
    """Delete ``person``'s stored crops and their quarantined crops; returns files deleted."""
    folders = [root / CROPS / person, *(b / person for b in real_folders(root / QUARANTINE))]
    removed = 0
    for folder in folders:
        if is_real_folder(folder):
            removed += len(real_files(folder))
            shutil.rmtree(folder)  # rmtree never follows a link inside the tree
    for batch in real_folders(root / QUARANTINE):
        _remove_if_empty(batch)
    return removed


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty, or not there
        pass


# -- quarantine ----------------------------------------------------------------------------------
def _quarantine_orphans(root: Path, rows: dict[str, set[str]]) -> int:
    """Move crops no gallery row refers to into a quarantine batch, when the gallery's rows all
    have their crops (otherwise the metadata itself may be what is wrong: leave everything)."""
    found = compare(root, rows)
    if found.rows_without_crop or not found.crops_without_row:
        return 0
    batch = _new_batch(root)
    moved = 0
    for path in found.crops_without_row:
        relative = path.relative_to(root / CROPS)
        moved += _move(path, batch / relative)
        if len(relative.parts) == 2:
            _remove_if_empty(path.parent)
    log.warning("%d stored crop(s) that no gallery row refers to were moved to %s (not deleted); "
                "`facerec reindex --restore-quarantined` enrolls them again", moved, batch)
    return moved


def _new_batch(root: Path) -> Path:
    return root / QUARANTINE / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def _move(source: Path, dest: Path) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, dest)  # same file system: the workspace
    return len(real_files(dest)) if dest.is_dir() and not dest.is_symlink() else 1


def quarantined_people(root: Path) -> set[str]:
    """Names of the people with quarantined crops."""
    return {f.name for b in real_folders(root / QUARANTINE) for f in real_folders(b) if not name_problem(f.name)}


def restore_quarantined(root: Path) -> int:
    """Move every quarantined crop of a valid person's name back under ``crops/``; returns how
    many (a crop already present stays where it is)."""
    restored = 0
    for batch in real_folders(root / QUARANTINE):
        for folder in real_folders(batch):
            if name_problem(folder.name):  # not a person's (the damaged journal entries' ".journal")
                continue
            for crop in real_files(folder):
                dest = root / CROPS / folder.name / crop.name
                if crop_key(crop.name) is None or os.path.lexists(dest):
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.rename(crop, dest)
                restored += 1
            _remove_if_empty(folder)
        _remove_if_empty(batch)
    return restored
