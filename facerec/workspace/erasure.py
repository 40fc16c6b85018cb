"""Erasure bookkeeping in a workspace: keyed name hashes, the forget ledger, and purging leftovers.

After a forget, a person's name may not remain anywhere in the workspace, yet two things still
need to refer to them: the ledger (so a requester can check their request was carried out) and
the clean-up of an interrupted forget (crops or dataset folders still named after them). Both use
a keyed hash, HMAC-SHA256 of the name under a random per-workspace key (``erasure.key``): it
cannot be reversed, and without the key a guessed name cannot even be tested. With the key a
name can be checked against the ledger, which is what verifying a request needs.

In the manifest (``"erasure"``)::

    forgotten   [{"hash", "row", "request"}]   row = the head row the person had, or null
    ledger      [entry, ...]                   one per request, in order (the continual sequence)
    pending     request id | absent             set by a forget's commit, cleared once the files
                                               of its people are gone (see :func:`complete_pending`)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from facerec.workspace.galleries import ROLES, store
from facerec.workspace.workspace import Workspace

KEY_FILE = "erasure.key"
log = logging.getLogger("facerec")
STALE_DIRS = ("gallery.rebuild", "gallery.old", "gallery.staging", "replay.staging")


def erasure_key(ws: Workspace, create: bool = False) -> bytes | None:
    """The workspace's secret hashing key (32 random bytes), made on first use when ``create``."""
    path = ws.root / KEY_FILE
    if path.is_file():
        return path.read_bytes()
    if not create:
        return None
    from facerec.core.atomic import atomic_write_bytes

    atomic_write_bytes(path, os.urandom(32))
    os.chmod(path, 0o600)
    return path.read_bytes()


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def name_hash(key: bytes, name: str) -> str:
    return _mac(key, name)[:32]


def seal(ws: Workspace, message: str) -> str:
    """HMAC-SHA256 of ``message`` under the workspace's key (made on first use): what marks a
    record that gives permission to delete (a journal entry, a pending forget, the demo's marker)
    as one facerec wrote. A record edited by hand, copied from another workspace or damaged does
    not carry it, and is never acted on."""
    return _mac(erasure_key(ws, create=True), message)


def sealed(ws: Workspace, message: str, mac: object) -> bool:
    """``mac`` is :func:`seal` of ``message`` in this workspace (compared in constant time)."""
    key = erasure_key(ws)
    if key is None or not isinstance(mac, str):
        return False
    return hmac.compare_digest(_mac(key, message), mac)


def pending_seal(ws: Workspace, request: str, model_version: str) -> str:
    """The seal of a forget's ``pending`` mark: its request and the model version it committed."""
    return seal(ws, f"pending|{request}|{model_version}")


def erasure_record(manifest: dict) -> dict:
    return manifest.get("erasure") or {"forgotten": [], "ledger": []}


def forgotten_hashes(manifest: dict) -> set[str]:
    return {entry["hash"] for entry in erasure_record(manifest)["forgotten"]}


def forgotten_rows(manifest: dict) -> dict[str, int]:
    """``{hash: head row}`` of forgotten people the model was trained on."""
    return {e["hash"]: e["row"] for e in erasure_record(manifest)["forgotten"] if e.get("row") is not None}


def data_root_inside(ws: Workspace, manifest: dict) -> Path | None:
    """The training data folder when it lives inside the workspace (the demo's), else None. The
    workspace itself and facerec's own folders never count (``data.root`` edited to point at the
    workspace would otherwise make a person named "crops" take everyone's crops with them)."""
    from facerec.workspace.layout import FILES, FOLDERS

    root = manifest.get("data", {}).get("root")
    if not root or not isinstance(root, str):
        return None
    root = Path(root).resolve()
    if not root.is_relative_to(ws.root.resolve()) or not root.is_dir():
        return None
    parts = root.relative_to(ws.root.resolve()).parts
    own = (set(FILES) | set(FOLDERS)) - {"synthetic-data"}
    return root if parts and parts[0] not in own else None


def purge_people(ws: Workspace, hashes: set[str], gallery_rebuilt: bool = False) -> dict:
    """Delete crops folders (quarantined ones too), gallery entries and workspace-held dataset
    folders of ``hashes``. Folders are found without following links, and removed with
    :func:`facerec.layout.rmtree_inside`, which follows none.

    ``gallery_rebuilt``: the caller rebuilds the gallery from the remaining crops next, so a
    damaged gallery is left to that rebuild instead of stopping the purge (a damaged gallery
    cannot be edited, and it is never deleted on the strength of its damage).

    Idempotent: safe to run again after an interruption. Returns counts of what was removed.

    Raises:
        GalleryCorrupt: the gallery is damaged (without ``gallery_rebuilt``); the folders are
        purged first, the gallery's entries when it has been rebuilt (`facerec reindex`).
    """
    from gallery import GalleryCorrupt

    from facerec.workspace.layout import real_folders, remove_if_empty, rmtree_inside

    key = erasure_key(ws)
    removed = {"crop_folders": 0, "replay_folders": 0, "data_folders": 0, "gallery_people": 0}
    if key is None or not hashes:
        return removed
    manifest = ws.manifest()
    folders = [("crop_folders", ws.root / "crops"), *(("crop_folders", b) for b in real_folders(ws.root / "quarantine")),
               ("replay_folders", ws.root / "replay"), ("data_folders", data_root_inside(ws, manifest))]
    for kind, parent in folders:
        for child in real_folders(parent) if parent is not None else []:
            if name_hash(key, child.name) in hashes:
                rmtree_inside(ws.root if kind != "data_folders" else parent, child)
                removed[kind] += 1
    for batch in real_folders(ws.root / "quarantine"):
        remove_if_empty(ws.root, batch)
    galleries = store(ws.root, manifest)
    if galleries.exists():
        try:
            gallery = galleries.open()
        except GalleryCorrupt:
            if gallery_rebuilt:
                return removed
            raise
        try:
            doomed = [p for p in gallery.people() if name_hash(key, p) in hashes]
            for person in doomed:
                gallery.remove_person(person)
            if doomed:
                gallery.save()
            removed["gallery_people"] = len(doomed)
        finally:
            gallery.close()
    return removed


def complete_pending(ws: Workspace, gallery_rebuilt: bool = False) -> dict | None:
    """Finish a forget whose commit landed but whose clean-up did not (the process was killed).

    Removes the request's people's files, the resume checkpoint (it holds pre-forget weights)
    and staging folders, then clears ``pending``. Returns what was removed, or None if nothing
    was pending. ``gallery_rebuilt``: as in :func:`purge_people`.
    """
    manifest = ws.manifest()
    record = erasure_record(manifest)
    request = record.get("pending")
    if not request:
        return None
    version = manifest["model"]["version"]
    if not sealed(ws, f"pending|{request}|{version}", record.get("pending_seal")):
        log.warning("workspace.json marks forget request %s as unfinished, but facerec did not write that mark (or the "
                    "model changed since): nothing was deleted for it and the mark was dropped; if a forget was "
                    "interrupted, remove its people with `facerec remove`", request)
        ws.update_manifest(_drop_pending)
        return None
    hashes = {e["hash"] for e in record["forgotten"] if e.get("request") == request}
    galleries = store(ws.root, manifest)
    if galleries.version("gallery.staging") == manifest["model"]["version"]:
        galleries.swap_in("gallery.staging")  # the forget's re-embedded gallery; otherwise it is rebuilt on next use
    removed = purge_people(ws, hashes, gallery_rebuilt=gallery_rebuilt)
    ws.train_state_path.unlink(missing_ok=True)
    ws.remove_unreferenced_weights()  # the pre-forget weights still know the person
    remove_stale_dirs(ws.root)
    ws.update_manifest(_drop_pending)
    return removed


def _drop_pending(manifest: dict) -> None:
    manifest["erasure"].pop("pending", None)
    manifest["erasure"].pop("pending_seal", None)


def remove_stale_dirs(root: Path) -> int:
    """Delete the staging galleries of unfinished rebuilds, forgets and swaps, and the staging
    replay buffer of an unfinished training; returns how many. A replay buffer caught between
    its two renames is put back."""
    from facerec.workspace.layout import rename_inside, rmtree_inside

    removed = 0
    if (root / "replay.old").exists():
        if (root / "replay").exists():
            rmtree_inside(root, root / "replay.old")
        else:
            rename_inside(root, root / "replay.old", root / "replay")
        removed += 1
    for name in STALE_DIRS:
        if (root / name).exists():
            rmtree_inside(root, root / name)
            removed += 1
    galleries = store(root)
    if galleries.backend != "embedded":  # staging galleries held in a database
        removed += sum(galleries.remove(role) for role in ROLES if role != "gallery")
    return removed


def ledger(workspace) -> list[dict]:
    """The workspace's forget requests in order (keyed hashes, never names)."""
    return list(Workspace(workspace).manifest().get("erasure", {}).get("ledger", []))
