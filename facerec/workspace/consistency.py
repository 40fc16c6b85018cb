"""The gallery's rows against the stored crops they were made from, checked whenever the live
gallery is opened.

Every gallery row names a person and the SHA-256 of an enrolled image; the crop of that image is
``crops/<person>/<sha256[:16]>-0.png``. The gallery package checks its own files (SQLite's
structure, the rows against each other, the index files against the rows); this module checks
what only the workspace knows: that each row has its crop and each crop its row, and that
nothing else lies among the crops (a foreign file or folder; names starting with "." are left
alone, as the system's own). A disagreement means damage (a row deleted or edited by hand, a
crop removed or added), or a writer between its two steps right now: the latter is in the journal
(:mod:`facerec.workspace.journal`) and is not counted, and a reader that sees a disagreement looks again
under the workspace's shared lock, once no writer is at work, before calling it damage. Damage is
reported as :class:`gallery.GalleryCorrupt` with one line saying what disagrees (exit 2; HTTP 409),
and nothing is changed: `facerec reindex` rebuilds the gallery from the crops, keeping every crop.
The cost is one query and one directory listing per person (5,000 people, 15,000 crops: 0.13 s),
paid again only when :func:`facerec.layout.stamp` has changed since the last agreement.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gallery import Gallery, GalleryCorrupt

from facerec.workspace import journal
from facerec.workspace.layout import entries, stamp
from facerec.workspace.lock import held_here, shared_lock
from facerec.core.names import name_problem

CROPS = "crops"
_CROP = re.compile(r"([0-9a-f]{16})-[0-9]+\.png", re.ASCII)


def crop_key(file_name: str) -> str | None:
    """The image-hash prefix a crop file stands for (``<16 hex>-0.png``), or None for a file that
    is not a crop."""
    match = _CROP.fullmatch(file_name)
    return match.group(1) if match else None


@dataclass
class Disagreement:
    """Rows without a crop (``(person, hash prefix)``), crops without a row, and entries among the
    crops that are no person's crops at all (paths)."""

    rows_without_crop: list[tuple[str, str]] = field(default_factory=list)
    crops_without_row: list[Path] = field(default_factory=list)
    foreign: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows_without_crop or self.crops_without_row or self.foreign)

    def describe(self, root: Path) -> str:
        parts = []
        if self.rows_without_crop:
            person, key = self.rows_without_crop[0]
            parts.append(f"{len(self.rows_without_crop)} gallery row(s) have no stored crop (first: {person!r}, "
                         f"image {key})")
        for paths, what in ((self.crops_without_row, "stored crop(s) have no gallery row"),
                            (self.foreign, "entries among the crops are not crops")):
            if paths:
                parts.append(f"{len(paths)} {what} (first: {paths[0].relative_to(root).as_posix()})")
        return "its rows and the stored crops disagree: " + "; ".join(parts)


def compare(root: str | os.PathLike, rows: dict[str, set[str]]) -> Disagreement:
    """How the gallery's ``rows`` (``{person: image hashes}``) and the stored crops disagree,
    leaving out what open journal entries are working on. Links are never followed."""
    root = Path(root)
    claimed_crops, claimed_people = journal.claimed(journal.open_entries(root)[0])
    found = Disagreement()
    folders: dict[str, set[str]] = {}
    crops = root / CROPS
    for name, kind in entries(crops):  # strings, not paths, per file: thousands of people are listed per open
        if name.startswith("."):
            continue
        if kind != "folder" or name_problem(name):
            found.foreign.append(crops / name)
            continue
        keys = folders.setdefault(name, set())
        known = {h[:16] for h in rows.get(name, ())}
        for file, file_kind in entries(crops / name, sort=False):
            key = crop_key(file) if file_kind == "file" else None
            if key is not None and key in known:
                keys.add(key)
            elif file.startswith(".") or name in claimed_people or f"{CROPS}/{name}/{file}" in claimed_crops:
                keys.add(key)
            elif key is None:
                found.foreign.append(crops / name / file)
            else:
                keys.add(key)
                found.crops_without_row.append(crops / name / file)
    for person, hashes in sorted(rows.items()):
        keys = folders.get(person, set())
        found.rows_without_crop += [(person, h[:16]) for h in sorted(hashes) if h[:16] not in keys]
    found.foreign.sort()
    found.crops_without_row.sort()
    return found


def open_live_gallery(root: str | os.PathLike, read_only: bool = False) -> Gallery:
    """The workspace's gallery, opened after the gallery's own checks and then compared with the
    stored crops. Outside the writer lock, a failed check is made again under the shared lock (a
    writer may have been between two steps; at most :data:`facerec.lock.WAIT_SECONDS`).

    Raises:
        GalleryError: there is no gallery; GalleryCorrupt: it is damaged, or it and the crops
        disagree (nothing is changed; `facerec reindex` rebuilds it from the crops);
        WorkspaceBusy: a writer held the workspace all the while.
    """
    root = Path(root)
    try:
        return _open_checked(root, read_only)
    except GalleryCorrupt:
        if held_here(root):
            raise
    with shared_lock(root):
        return _open_checked(root, read_only)


_agreed: dict[str, tuple] = {}  # workspace -> the layout stamp its gallery and crops last agreed at


def _open_checked(root: Path, read_only: bool) -> Gallery:
    from facerec.workspace.galleries import store

    galleries = store(root)
    # the gallery's files (or its database generation), the journal and every crop folder
    key, now = os.path.realpath(root), (stamp(root), galleries.stamp())
    gallery = galleries.open("gallery", read_only=read_only)
    if _agreed.get(key) == now:  # nothing changed since they last agreed (a server's repeated reads)
        return gallery
    try:
        disagreement = compare(root, gallery.hashes_by_person())
    except BaseException:
        gallery.close()
        raise
    if disagreement:
        gallery.close()
        raise GalleryCorrupt(galleries.describe(), disagreement.describe(root))
    _agreed[key] = now
    return gallery
