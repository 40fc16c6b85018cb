"""Where a workspace's galleries live: folders inside the workspace (the embedded FAISS + SQLite
gallery, the default) or tables in a PostgreSQL database (``facerec gallery use postgresql://...``).

A workspace has one live gallery (role ``gallery``) and, while a command works, staging ones
(``gallery.staging``: a forget's re-embedded gallery; ``gallery.rebuild``: a re-embedding after a
model change; ``gallery.old``: the embedded swap's second half). Every module that opens, builds,
swaps or checks a gallery asks :func:`store` for the workspace's, so the forget transaction, the
recovery and the consistency checks run unchanged on either backend.

In PostgreSQL the workspace's galleries are named from a stem the manifest records
(``{"gallery": {"backend": "postgresql", "url": ..., "name": "fr_..."}}``); the URL is stored
without a password (libpq takes it from ``PGPASSWORD``, ``~/.pgpass`` or a service file). Several
``facerec serve`` processes on one workspace folder and one database share the gallery: each read
sees the last commit, and the consistency check a reader caches follows the database's
generation of the gallery, so no process answers from a stale copy.
"""

from __future__ import annotations

import os
from pathlib import Path

from facerec.core.errors import WorkspaceError

ROLES = ("gallery", "gallery.staging", "gallery.rebuild", "gallery.old")
BACKENDS = ("embedded", "postgresql")


class EmbeddedStore:
    """Galleries as folders of the workspace (``gallery/``, ``gallery.staging/``, ...)."""

    backend = "embedded"

    def __init__(self, root: Path):
        self.root = root

    def path(self, role: str = "gallery") -> Path:
        return self.root / role

    def describe(self, role: str = "gallery"):
        return self.path(role)

    def exists(self, role: str = "gallery") -> bool:
        return (self.path(role) / "meta.sqlite").is_file()

    def open(self, role: str = "gallery", read_only: bool = False):
        from gallery import Gallery

        return Gallery.open(self.path(role), read_only=read_only)

    def create(self, role: str, dim: int, model_version: str):
        from gallery import Gallery

        from facerec.workspace.layout import rmtree_inside

        if role != "gallery":
            rmtree_inside(self.root, self.path(role))
        return Gallery.create(self.path(role), dim, model_version)

    def hashes(self, role: str = "gallery") -> dict[str, set[str]]:
        """``{person: image hashes}`` from the metadata alone (``gallery.stored_image_hashes``)."""
        from gallery import stored_image_hashes

        return stored_image_hashes(self.path(role))

    def version(self, role: str) -> str | None:
        """The model version of a finished gallery in ``role`` (None: none, or an unfinished one)."""
        if not self.exists(role):
            return None
        try:
            gallery = self.open(role)
        except Exception:  # an unfinished staging gallery: not usable
            return None
        version = gallery.model_version
        gallery.close()
        return version

    def swap_in(self, staging: str) -> None:
        """Replace the live gallery by the finished one in ``staging`` (two renames; recovery
        completes a swap killed between them backwards)."""
        from facerec.workspace.layout import rename_inside, rmtree_inside

        live, old = self.path("gallery"), self.path("gallery.old")
        rmtree_inside(self.root, old)
        if live.exists():
            rename_inside(self.root, live, old)
        rename_inside(self.root, self.path(staging), live)
        rmtree_inside(self.root, old)

    def remove(self, role: str) -> bool:
        from facerec.workspace.layout import rmtree_inside

        if not self.path(role).exists():
            return False
        rmtree_inside(self.root, self.path(role))
        return True

    def stamp(self) -> tuple:
        return ()  # the gallery's files are part of the workspace layout's stamp

    def person_vectors(self, names) -> None:
        return None  # the FAISS gallery removes vectors from its index and rewrites its files on save

    def erasure_check(self, names, vectors) -> None:
        return None


class PostgresStore:
    """Galleries as tables of a PostgreSQL database: ``<stem>`` live, ``<stem>_staging`` ... while working."""

    backend = "postgresql"

    def __init__(self, root: Path, url: str, stem: str):
        self.root, self.url, self.stem = root, url, stem

    def name(self, role: str = "gallery") -> str:
        return self.stem if role == "gallery" else f"{self.stem}_{role.split('.', 1)[1]}"

    def describe(self, role: str = "gallery") -> str:
        from gallery.postgres import redacted

        return f"{redacted(self.url)}#{self.name(role)}"

    def exists(self, role: str = "gallery") -> bool:
        from gallery.postgres import gallery_state

        return gallery_state(self.url, self.name(role)) is not None

    def open(self, role: str = "gallery", read_only: bool = False):
        from gallery.postgres import PostgresGallery

        return PostgresGallery.open(self.url, self.name(role), read_only=read_only)

    def create(self, role: str, dim: int, model_version: str):
        from gallery.postgres import PostgresGallery, drop

        if role != "gallery":  # a staging gallery: filled in one go, indexed when it is swapped in
            drop(self.url, self.name(role))
            return PostgresGallery.create(self.url, self.name(role), dim, model_version, index_kind="deferred")
        return PostgresGallery.create(self.url, self.name(role), dim, model_version)

    def hashes(self, role: str = "gallery") -> dict[str, set[str]]:
        with self.open(role, read_only=True) as gallery:
            return gallery.hashes_by_person()

    def version(self, role: str) -> str | None:
        from gallery.postgres import gallery_state

        state = gallery_state(self.url, self.name(role))
        return state[0] if state else None

    def swap_in(self, staging: str) -> None:
        """Replace the live gallery's tables by ``staging``'s in one transaction (nothing to recover)."""
        from gallery.postgres import swap

        swap(self.url, self.name(staging), self.name("gallery"))

    def remove(self, role: str) -> bool:
        from gallery.postgres import drop

        if not self.exists(role):
            return False
        drop(self.url, self.name(role))
        return True

    def stamp(self) -> tuple:
        from gallery.postgres import gallery_state

        return (gallery_state(self.url, self.name("gallery")),)

    def person_vectors(self, names):
        """The live gallery's vectors of ``names`` (taken before they are deleted, to look for afterwards)."""
        import numpy as np

        if not self.exists():
            return None
        with self.open(read_only=True) as gallery:
            rows, vectors = gallery.records()
        wanted = set(names)
        return vectors[[i for i, r in enumerate(rows) if r[0] in wanted]] if len(rows) else np.zeros((0, 1), np.float32)

    def erasure_check(self, names, vectors) -> dict:
        """After a deletion: rewrite the live gallery's tables, then look for ``names`` and their
        ``vectors`` in the database's files and WAL (``gallery.pg_erasure``)."""
        from gallery.pg_erasure import reclaim_and_check
        from gallery.postgres import connect

        conn = connect(self.url)
        try:
            live = self.name("gallery")
            tables = [f"{live}__people", f"{live}__vectors"] if self.exists() else []
            return {"gallery": self.describe(), **reclaim_and_check(conn, tables, list(names), vectors)}
        finally:
            conn.close()


def store(root: str | os.PathLike, manifest: dict | None = None):
    """The gallery store the workspace at ``root`` records (embedded when it records none)."""
    root = Path(root)
    if manifest is None:
        from facerec.workspace.workspace import Workspace

        ws = Workspace(root)
        manifest = ws.manifest() if ws.exists() else {}
    record = manifest.get("gallery") or {"backend": "embedded"}
    if record.get("backend") == "postgresql":
        return PostgresStore(root, record["url"], record["name"])
    return EmbeddedStore(root)


def gallery_record_problem(record) -> str | None:
    """What is wrong with a manifest's ``gallery`` entry (None: nothing)."""
    import re

    if not isinstance(record, dict) or record.get("backend") not in BACKENDS:
        return "gallery: expected an object with backend 'embedded' or 'postgresql'"
    if record["backend"] == "postgresql":
        url, name = record.get("url"), record.get("name")
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")) or len(url) > 2000:
            return "gallery.url: expected a postgresql:// URL"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,29}", name):
            return "gallery.name: expected 1-30 lower-case letters, digits or _"
    if "drop" in record and (record["backend"] != "embedded" or gallery_record_problem(
            {"backend": "postgresql", **record["drop"]} if isinstance(record["drop"], dict) else None)):
        return "gallery.drop: expected the url and name of the PostgreSQL gallery to drop"
    return None


def check_url(url: str) -> str:
    """A PostgreSQL URL facerec may record: no password in it (it would be written in clear)."""
    from urllib.parse import parse_qs, urlsplit

    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise WorkspaceError(f"expected a postgresql://USER@HOST/DATABASE URL, got {url[:100]!r}")
    parts = urlsplit(url)
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise WorkspaceError("the URL holds a password, which would be written to workspace.json in clear: give it in "
                             "PGPASSWORD, ~/.pgpass or a service file (PGSERVICE) instead")
    return url


def copy_gallery(source, dest) -> int:
    """Every vector of gallery ``source`` into the empty gallery ``dest`` (another store, same
    model), person by person with its image hashes and sources, committed once: no re-embedding."""
    if source.model_version != dest.model_version or source.dim != dest.dim:
        raise WorkspaceError(f"cannot copy vectors of model {source.model_version} ({source.dim}-d) into a gallery of "
                             f"model {dest.model_version} ({dest.dim}-d)")
    rows, vectors = source.records()
    order: dict[str, list[int]] = {}
    for i, (person, _, _) in enumerate(rows):
        order.setdefault(person, []).append(i)
    for person, index in order.items():
        dest.add(person, vectors[index], image_hashes=[rows[i][1] for i in index], sources=[rows[i][2] for i in index],
                 model_version=source.model_version)
    dest.save()
    return len(rows)


def use_postgresql(ws, url: str, stem: str | None = None) -> dict:
    """Move the workspace's gallery into PostgreSQL at ``url`` (call under the writer lock).

    Order, so that a kill at any step loses nothing: the tables are written and committed first
    (unreferenced until the manifest names them); the manifest's ``gallery`` entry is the commit;
    the embedded folder is removed last (recovery removes a folder the manifest no longer uses)."""
    import secrets

    from gallery.postgres import drop

    check_url(url)
    manifest = ws.manifest()
    source = store(ws.root, manifest)
    if source.backend == "postgresql":
        raise WorkspaceError(f"the gallery is already in PostgreSQL ({source.describe()}); "
                             "`facerec gallery use embedded` first to move it elsewhere")
    stem = stem or f"fr_{secrets.token_hex(6)}"
    target = PostgresStore(ws.root, url, stem)
    moved = 0
    drop(url, stem)
    if source.exists():
        with source.open(read_only=True) as old, target.create("gallery", old.dim, old.model_version) as new:
            moved = copy_gallery(old, new)
    ws.update_manifest(lambda m: m.__setitem__("gallery", {"backend": "postgresql", "url": url, "name": stem}))
    EmbeddedStore(ws.root).remove("gallery")
    return {"backend": "postgresql", "gallery": target.describe(), "vectors": moved}


def use_embedded(ws, drop_source: bool = True) -> dict:
    """Move the workspace's gallery from PostgreSQL back into the workspace folder (under the
    writer lock). The folder is written first (removed by recovery while the manifest still names
    the database), then the manifest, which keeps a ``drop`` note until the tables are dropped.
    ``drop_source`` False leaves the tables (a benchmark's throw-away copy of the workspace)."""
    manifest = ws.manifest()
    source = store(ws.root, manifest)
    if source.backend == "embedded":
        raise WorkspaceError("the gallery is already embedded in the workspace")
    target = EmbeddedStore(ws.root)
    target.remove("gallery")
    moved = 0
    if source.exists():
        with source.open(read_only=True) as old, target.create("gallery", old.dim, old.model_version) as new:
            moved = copy_gallery(old, new)
    record = {"backend": "embedded"}
    if drop_source:
        record["drop"] = {"url": source.url, "name": source.stem}
    ws.update_manifest(lambda m: m.__setitem__("gallery", record))
    finish_drop(ws)
    return {"backend": "embedded", "gallery": str(target.path()), "vectors": moved}


def finish_drop(ws) -> bool:
    """Drop the PostgreSQL galleries a move back to the folder left behind (its ``drop`` note)."""
    from gallery.postgres import drop

    note = (ws.manifest().get("gallery") or {}).get("drop")
    if not note:
        return False
    old = PostgresStore(ws.root, note["url"], note["name"])
    for role in ROLES:
        drop(old.url, old.name(role))
    ws.update_manifest(lambda m: m["gallery"].pop("drop", None))
    return True


def settle_backend(ws) -> int:
    """Recovery's part: a folder gallery the manifest no longer uses (a move to PostgreSQL killed
    before its last step) is removed; a move back whose tables were not yet dropped is finished."""
    if not ws.exists():
        return 0
    galleries = store(ws.root, ws.manifest())
    done = 0
    if galleries.backend == "postgresql":
        done += sum(EmbeddedStore(ws.root).remove(role) for role in ROLES)
    return done + finish_drop(ws)


def scratch_copy(source: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """A throw-away copy of a workspace for the benchmarks (no lock, no ONNX copies, no resume
    checkpoint) whose gallery is its own: one kept in PostgreSQL is copied into the folder, so
    nothing the copy does reaches the database."""
    import shutil

    from facerec.workspace.workspace import SCRATCH_IGNORE, Workspace

    shutil.copytree(source, dest, ignore=SCRATCH_IGNORE)
    copy = Workspace(dest)
    if copy.exists() and store(copy.root, copy.manifest()).backend == "postgresql":
        use_embedded(copy, drop_source=False)
    return copy.root
