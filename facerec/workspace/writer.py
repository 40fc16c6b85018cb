"""Changing a workspace safely, for every front end (the CLI and the HTTP server alike).

A writer holds the workspace's ``flock`` (:mod:`facerec.workspace.lock`) and first finishes whatever an
interrupted command left: a forget killed after its commit is completed, temporary files and
staging directories are removed. Readers never see a half-finished forget: :func:`settle`
finishes one under the lock before they read. Because the CLI and ``facerec serve`` both go
through here, the two can run side by side on one workspace without corrupting it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def writing(root: str | os.PathLike, create: bool = False, seed: bool = False, rebuilding: bool = False):
    """Hold the workspace's writer lock (which first checks its layout, :mod:`facerec.workspace.layout`: a
    link or special file inside stops the command before anything changes); finish a forget that
    was interrupted after its commit, and settle what killed commands left (:mod:`facerec.workspace.recovery`).

    With ``seed``, a workspace without a model of its own gets the shipped one first (created if
    need be), so enroll / calibrate / forget work on a fresh workspace with no training step.
    ``rebuilding``: the command rebuilds the gallery from the stored crops (``reindex``), so crops
    without a gallery row stay where they are for it, and a damaged gallery does not stop an
    interrupted forget from being completed.

    Yields the recovered :class:`Workspace` (``recovered`` set): what runs inside need not
    recover it again (the forget request does not).
    """
    from facerec import pretrained
    from facerec.workspace.shipped import seed_workspace
    from facerec.workspace.recovery import clean_workspace
    from facerec.workspace.erasure import complete_pending
    from facerec.workspace.lock import workspace_lock
    from facerec.workspace.workspace import Workspace

    seeding = seed and not Workspace(root).exists() and pretrained.available()
    with workspace_lock(root, create=create or seeding):
        if seeding and not Workspace(root).exists():
            seed_workspace(root)
        if Workspace(root).exists():
            complete_pending(Workspace(root), gallery_rebuilt=rebuilding)
        clean_workspace(Workspace(root), keep_orphans=rebuilding)  # what killed commands left
        yield Workspace(root, recovered=True)


def settle(root: str | os.PathLike) -> None:
    """Before reading: the layout is checked (a link inside the workspace is reported, not read
    through), and a half-finished forget is finished under the lock, so readers never see one."""
    from facerec.workspace.erasure import erasure_record
    from facerec.workspace.layout import check_layout
    from facerec.workspace.workspace import Workspace

    check_layout(root)
    ws = Workspace(root)
    if ws.exists() and erasure_record(ws.manifest()).get("pending"):
        with writing(root):
            pass


def enrolled_people(root: str | os.PathLike) -> dict[str, int]:
    """``{person: enrolled images}`` of the workspace's gallery, read without writing to it; a
    write killed mid-way (a hot SQLite journal) is rolled back by a writer first."""
    from facerec.workspace.consistency import open_live_gallery
    from facerec.workspace.galleries import store

    settle(root)
    path = Path(root) / "gallery"
    if (path / "meta.sqlite-journal").exists():  # only a writer may roll it back
        with writing(root):
            pass
    if not store(root).exists():
        return {}
    with open_live_gallery(root, read_only=True) as g:  # a reader never writes, not even to a damaged file
        return g.people()
