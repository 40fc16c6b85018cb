"""What a killed command leaves behind, removed by the next command that writes.

Every write in a workspace is a temporary file renamed into place, a staging folder swapped in, or
a content-addressed weights file that the manifest starts to point at; a ``kill -9`` between two
steps leaves the old state complete plus some of these leftovers. :func:`clean_workspace` runs
under the writer lock at the start of every writing command (after an interrupted forget is
completed) and removes them, so no leftover outlives the next writer:

- temporary files (``.NAME.XXXXXXXX.tmp``, ``*.faiss.tmp``) in the workspace's own folders;
- staging galleries (``gallery.rebuild``, ``gallery.staging``, ``gallery.old``) — except that a
  gallery swap killed between its two renames is first completed backwards (the old gallery is
  put back), so the gallery is never lost;
- weights files the manifest does not point to (a forget or training killed before its commit;
  all of them when there is no manifest yet);
- stored crops no gallery row refers to (an enroll killed between writing crops and committing
  the gallery, or a remove killed between the two), and crop folders whose names are not valid
  person names (left by an older facerec). Only the gallery's metadata is read for this (not its
  FAISS files); when the metadata is damaged the crops are left for `facerec reindex`, and without
  a gallery the crops are the gallery's source, not orphans.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from gallery import GalleryCorrupt, stored_image_hashes

from .erasure import remove_stale_dirs
from .names import name_problem
from .workspace import Workspace


_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp", re.DOTALL)  # io.atomic_write_with's mkstemp names


def clean_workspace(ws: Workspace) -> dict:
    """Remove the leftovers of killed commands; returns how many of each kind were removed."""
    restored = _undo_interrupted_swap(ws.root)
    return {
        "gallery_restored": restored,
        "temporary_files": _remove_temporary_files(ws.root),
        "staging_folders": remove_stale_dirs(ws.root),
        "weights_files": _remove_unreferenced_weights(ws),
        "orphan_crops": _remove_orphan_crops(ws.root),
    }


def _remove_unreferenced_weights(ws: Workspace) -> int:
    if ws.exists():
        return ws.remove_unreferenced_weights()
    doomed = list((ws.root / "models").glob("*.safetensors"))  # a first training killed before its commit
    for path in doomed:
        path.unlink(missing_ok=True)
    return len(doomed)


def _undo_interrupted_swap(root: Path) -> bool:
    """``gallery`` renamed to ``gallery.old`` but the new one never renamed in: put the old one back."""
    live, old = root / "gallery", root / "gallery.old"
    if (live / "meta.sqlite").is_file() or not (old / "meta.sqlite").is_file():
        return False
    shutil.rmtree(live, ignore_errors=True)
    old.rename(live)
    return True


def _remove_temporary_files(root: Path) -> int:
    folders = [root, root / "models", root / "gallery"]
    if (root / "crops").is_dir():
        folders += [p for p in (root / "crops").iterdir() if p.is_dir()]
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and (_TEMPORARY.fullmatch(path.name) or path.name.endswith(".faiss.tmp")):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _remove_orphan_crops(root: Path) -> int:
    crops_root = root / "crops"
    if not crops_root.is_dir() or not (root / "gallery" / "meta.sqlite").is_file():
        return 0
    try:
        enrolled = stored_image_hashes(root / "gallery")  # metadata only; also rolls back a hot SQLite journal
    except GalleryCorrupt:
        return 0
    removed = 0
    for folder in list(crops_root.iterdir()):
        if not folder.is_dir():
            continue
        if name_problem(folder.name):
            removed += sum(1 for _ in folder.iterdir())
            shutil.rmtree(folder, ignore_errors=True)
            continue
        known = {h[:16] for h in enrolled.get(folder.name, ())}
        for crop in list(folder.iterdir()):
            if crop.name.split("-")[0] not in known:
                crop.unlink(missing_ok=True)
                removed += 1
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed
