"""The gallery's rows against the stored crops they were made from, checked whenever the live
gallery is opened.

Every gallery row names a person and the SHA-256 of an enrolled image; the crop of that image is
``crops/<person>/<sha256[:16]>-0.png``. The gallery package checks its own files (SQLite's
structure, the rows against each other, the index files against the rows); this module checks
what only the workspace knows: that each row has its crop and each crop its row. A
disagreement means damage (a row deleted or edited by hand, a crop removed or added), or a
command killed between its two steps; the latter is in the journal (:mod:`facerec.journal`) and
is not counted. Damage is reported as :class:`gallery.GalleryCorrupt` with one line saying what
disagrees (exit 2; HTTP 409), and nothing is changed: `facerec reindex` rebuilds the gallery from
the crops, keeping every crop. The cost is one directory listing per person and one query.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gallery import Gallery, GalleryCorrupt

from . import journal
from .layout import real_files, real_folders
from .names import name_problem

CROPS = "crops"


def crop_key(file_name: str) -> str | None:
    """The image-hash prefix a crop file stands for (``<16 hex>-0.png``), or None for a file that
    is not a crop (a temporary file being written is not one either)."""
    if file_name.startswith(".") or not file_name.endswith(".png"):
        return None
    return file_name.split("-")[0]


@dataclass
class Disagreement:
    """Rows without a crop (``(person, hash prefix)``) and crops without a row (paths)."""

    rows_without_crop: list[tuple[str, str]] = field(default_factory=list)
    crops_without_row: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows_without_crop or self.crops_without_row)

    def describe(self, root: Path) -> str:
        parts = []
        if self.rows_without_crop:
            person, key = self.rows_without_crop[0]
            parts.append(f"{len(self.rows_without_crop)} gallery row(s) have no stored crop (first: {person!r}, "
                         f"image {key})")
        if self.crops_without_row:
            first = self.crops_without_row[0].relative_to(root).as_posix()
            parts.append(f"{len(self.crops_without_row)} stored crop(s) have no gallery row (first: {first})")
        return "its rows and the stored crops disagree: " + "; ".join(parts)


def stored_crops(root: Path) -> dict[str, list[Path]]:
    """``{crop folder name: files}`` under ``root/crops``, real folders and files only."""
    return {folder.name: real_files(folder) for folder in real_folders(root / CROPS)}


def compare(root: str | os.PathLike, rows: dict[str, set[str]]) -> Disagreement:
    """How the gallery's ``rows`` (``{person: image hashes}``) and the stored crops disagree,
    leaving out what open journal entries are working on."""
    root = Path(root)
    entries, _ = journal.open_entries(root)
    claimed_crops, claimed_people = journal.claimed(entries)
    crops = stored_crops(root)
    found = Disagreement()
    for person, hashes in sorted(rows.items()):
        keys = {crop_key(f.name) for f in crops.get(person, [])}
        found.rows_without_crop += [(person, h[:16]) for h in sorted(hashes) if h[:16] not in keys]
    for folder, files in sorted(crops.items()):
        if folder in claimed_people:
            continue
        known = {h[:16] for h in rows.get(folder, ())} if not name_problem(folder) else set()
        found.crops_without_row += [f for f in files if crop_key(f.name) not in known
                                    and f.relative_to(root).as_posix() not in claimed_crops
                                    and not f.name.startswith(".")]
        if not files and name_problem(folder):
            found.crops_without_row.append(root / CROPS / folder)
    return found


def open_live_gallery(root: str | os.PathLike, read_only: bool = False) -> Gallery:
    """The workspace's gallery, opened after the gallery's own checks and then compared with the
    stored crops.

    Raises:
        GalleryError: there is no gallery; GalleryCorrupt: it is damaged, or it and the crops
        disagree (nothing is changed; `facerec reindex` rebuilds it from the crops).
    """
    root = Path(root)
    gallery = Gallery.open(root / "gallery", read_only=read_only)
    try:
        disagreement = compare(root, gallery.hashes_by_person())
    except BaseException:
        gallery.close()
        raise
    if disagreement:
        gallery.close()
        raise GalleryCorrupt(root / "gallery", disagreement.describe(root))
    return gallery
