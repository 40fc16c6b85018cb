"""What a killed command left behind, settled by the next command that writes.

Every write in a workspace is a temporary file renamed into place, a staging folder swapped in, a
content-addressed weights file that the manifest starts to point at, or crops written under a
journal entry (:mod:`facerec.workspace.journal`); a ``kill -9`` between two steps leaves the old state
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
  deleted; a remove whose gallery commit landed has its crops deleted; an unreadable entry is
  deleted (its crops are then treated as any others);
- any other stored crop no gallery row refers to, and anything among the crops that is not a
  crop (a stray file, a folder whose name cannot be a person's), is **quarantined**, never
  deleted: moved to ``WORKSPACE/quarantine/<batch>/`` and reported (`facerec reindex
  --restore-quarantined` enrolls quarantined crops again).

Nothing is ever deleted or moved on the word of damaged metadata: when the gallery is damaged
or one of its rows has lost its crop, the journal and the crops are left exactly as they are (the
command that opens the gallery then reports the damage; only entries that are not crops at all
are moved aside), and without a gallery the crops are its source, not leftovers. Every change
goes through :mod:`facerec.workspace.layout`'s link-refusing operations.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from pathlib import Path

from gallery import GalleryCorrupt

from facerec.workspace import journal
from facerec.workspace.consistency import CROPS, Disagreement, compare, crop_key
from facerec.workspace.erasure import remove_stale_dirs
from facerec.workspace.galleries import settle_backend, store
from facerec.workspace.layout import (is_real_folder, real_files, real_folders, remove_if_empty, rename_inside,
                                      rmtree_inside, unlink_inside)
from facerec.core.names import name_problem
from facerec.workspace.workspace import Workspace

QUARANTINE = "quarantine"
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp", re.DOTALL)  # the temporary files of atomic writes
log = logging.getLogger("facerec")


def clean_workspace(ws: Workspace, keep_orphans: bool = False) -> dict:
    """Settle the leftovers of killed commands; returns how many of each kind.

    ``keep_orphans``: leave crops without a gallery row where they are (``reindex``, which is
    about to enroll them from there)."""
    root = ws.root
    report = {
        "gallery_backend": settle_backend(ws),  # first: a folder the manifest no longer uses is no gallery
        "gallery_restored": _undo_interrupted_swap(root),
        "temporary_files": _remove_temporary_files(root),
        "staging_folders": remove_stale_dirs(root),
        "weights_files": _remove_unreferenced_weights(ws),
    }
    rows, found = _gallery_rows(root)
    report.update(settle_journal(root, rows if not (found and found.rows_without_crop) else None))
    if found is not None and report["journal_entries"]:
        found = compare(root, rows)  # again: the journal settled some of it
    report["quarantined"] = _quarantine(root, found, keep_orphans)
    return report


def _gallery_rows(root: Path) -> tuple[dict[str, set[str]] | None, Disagreement | None]:
    """``(rows, how they and the crops disagree)`` to decide on, or ``(None, None)``: without a
    gallery (the crops are its source, and whether a command committed cannot be told), or with a
    damaged one. Rows are trusted only from a gallery checked whole: its metadata, and its index
    files against it when something is about to be decided (a row deleted by hand from a
    sound-looking file shows there)."""
    galleries = store(root)
    if not galleries.exists():
        return None, None
    try:
        rows = galleries.hashes()  # the metadata alone; also rolls back a hot SQLite journal
        found = compare(root, rows)
        entries, unreadable = journal.open_entries(root)
        if found or entries or unreadable:
            galleries.open().close()
        return rows, found
    except GalleryCorrupt:
        return None, None


def _remove_unreferenced_weights(ws: Workspace) -> int:
    if ws.exists():
        return ws.remove_unreferenced_weights()
    doomed = [p for p in real_files(ws.root / "models") if p.suffix in (".safetensors", ".onnx")]  # a first training killed
    for path in doomed:
        unlink_inside(ws.root, path)
    return len(doomed)


def _undo_interrupted_swap(root: Path) -> bool:
    """``gallery`` renamed to ``gallery.old`` but the new one never renamed in: put the old one back."""
    live, old = root / "gallery", root / "gallery.old"
    if (live / "meta.sqlite").is_file() or not (old / "meta.sqlite").is_file() or not is_real_folder(old):
        return False
    rmtree_inside(root, live)
    rename_inside(root, old, live)
    return True


def _remove_temporary_files(root: Path) -> int:
    folders = [root / "models", root / "gallery", root / journal.FOLDER, *real_folders(root / CROPS)]
    removed = 0
    for path in [*real_files(root, follow=True), *(f for folder in folders for f in real_files(folder))]:
        if _TEMPORARY.fullmatch(path.name) or path.name.endswith(".faiss.tmp"):
            unlink_inside(root, path)
            removed += 1
    return removed


# -- the journal ---------------------------------------------------------------------------------
def settle_journal(root: Path, rows: dict[str, set[str]] | None) -> dict:
    """Finish or undo what killed enrolls and removes left, as their journal entries say; with
    ``rows`` None (no gallery, a damaged one, or rows that lost their crops) nothing is done."""
    report = {"journal_crops_removed": 0, "journal_entries": 0}
    entries, unreadable = journal.open_entries(root)
    if rows is None:
        return report
    for path in unreadable:
        unlink_inside(root, path)
    for entry in entries:
        if entry.command == "enroll":
            report["journal_crops_removed"] += undo_enroll(root, entry, rows)
        elif entry.person not in rows:  # the remove's commit landed: the files it named go
            report["journal_crops_removed"] += _delete(root, journal.listed_files(root, entry))
        journal.end(root, entry)
        report["journal_entries"] += 1
    return report


def undo_enroll(root: Path, entry: journal.Entry, rows: dict[str, set[str]]) -> int:
    """Delete the crops ``entry`` lists that the gallery (``rows``) did not commit and whose bytes
    are still the ones the entry recorded; returns how many."""
    committed = {h[:16] for h in rows.get(entry.person, ())}
    return _delete(root, [p for p in journal.listed_files(root, entry)
                          if p.parent.parent.name == CROPS and crop_key(p.name) not in committed])


def _delete(root: Path, files: list[Path]) -> int:
    for path in files:
        unlink_inside(root, path)
        remove_if_empty(root, path.parent)
        if path.parent.parent.parent.name == QUARANTINE:
            remove_if_empty(root, path.parent.parent)  # the batch
    return len(files)


def _person_folders(root: Path, person: str) -> list[Path]:
    """Where ``person``'s crops may be: ``crops/<person>`` and ``quarantine/<batch>/<person>``."""
    return [root / CROPS / person, *(batch / person for batch in real_folders(root / QUARANTINE))]


def person_files(root: Path, person: str) -> list[Path]:
    """``person``'s stored and quarantined crop files."""
    return [f for folder in _person_folders(root, person) for f in real_files(folder)]


def delete_person_crops(root: Path, person: str) -> int:
    """Delete ``person``'s stored crops and their quarantined crops; returns files deleted."""
    removed = 0
    for folder in _person_folders(root, person):
        if is_real_folder(folder):
            removed += len(real_files(folder))
            rmtree_inside(root, folder)
    for batch in real_folders(root / QUARANTINE):
        remove_if_empty(root, batch)
    return removed


# -- quarantine ----------------------------------------------------------------------------------
def _quarantine(root: Path, found: Disagreement | None, keep_orphans: bool) -> int:
    """Move aside what is among the crops but is not a crop, and, when the gallery checked whole
    and none of its rows lost its crop, the crops no row refers to (not for ``keep_orphans``)."""
    if found is None:
        found = compare(root, {})
        found.crops_without_row = []  # without a (sound) gallery, crops are not orphans
    orphans = found.crops_without_row if not keep_orphans and not found.rows_without_crop else []
    doomed = [*orphans, *found.foreign]
    if not doomed:
        return 0
    batch = root / QUARANTINE / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    for path in doomed:
        relative = path.relative_to(root / CROPS)
        rename_inside(root, path, batch / relative)
        if len(relative.parts) == 2:
            remove_if_empty(root, path.parent)
    what = [f"{len(orphans)} stored crop(s) that no gallery row refers to"] if orphans else []
    what += [f"{len(found.foreign)} entr{'y' if len(found.foreign) == 1 else 'ies'} among the crops that "
             f"{'is' if len(found.foreign) == 1 else 'are'} not a crop"] if found.foreign else []
    log.warning("%s moved to %s (not deleted); `facerec reindex --restore-quarantined` enrolls quarantined crops "
                "again", " and ".join(what), batch)
    return len(doomed)


def quarantine_unenrolled(root: Path) -> int:
    """After a rebuild from the crops: move aside the crops it could not enroll (unreadable), so
    the gallery and the crops agree again instead of every reader sending the user back to
    `facerec reindex`."""
    return _quarantine(root, compare(root, store(root).hashes()), keep_orphans=False)


def quarantined_people(root: Path) -> set[str]:
    """Names of the people with quarantined crops."""
    return {f.name for b in real_folders(root / QUARANTINE) for f in real_folders(b) if not name_problem(f.name)}


def restore_quarantined(root: Path) -> int:
    """Move every quarantined crop of a valid person's name back under ``crops/``; returns how
    many (a crop already present, or a file that is not a crop, stays where it is)."""
    restored = 0
    for batch in real_folders(root / QUARANTINE):
        for folder in real_folders(batch):
            if name_problem(folder.name):
                continue
            existing = {p.name for p in real_files(root / CROPS / folder.name)}
            for crop in real_files(folder):
                if crop_key(crop.name) is not None and crop.name not in existing:
                    rename_inside(root, crop, root / CROPS / folder.name / crop.name)
                    restored += 1
            remove_if_empty(root, folder)
        remove_if_empty(root, batch)
    return restored
