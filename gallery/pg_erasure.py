"""What a deleted person leaves in PostgreSQL, reclaimed and then measured in the server's own files.

PostgreSQL does not erase a deleted row: its bytes stay in the table's and the indexes' pages (an
HNSW index keeps a copy of every vector) until the pages are rewritten, and in the write-ahead log
until its segments are recycled; archives, base backups and standbys keep their own copies. So
after facerec deletes a person from a PostgreSQL gallery it

1. asks for a ``CHECKPOINT`` so that what is in the files is what the server holds, then reads
   every relation file of the gallery's tables (all forks and segments, their TOAST and indexes)
   for the person's name (UTF-8) and the first 16 bytes of each of their vectors (float4, as
   pgvector stores them);
2. where anything is found (a remove deletes rows in place; a plain VACUUM measurably leaves some
   behind), rewrites the tables and indexes (``VACUUM FULL``: new relation files, the old ones
   unlinked) and reads them again — what is still found is reported, never hidden;
3. reads the WAL segments in ``pg_wal`` for the same byte strings, and reports the settings that
   decide how long the log, its archive and any standby keep them.

Files can be read only on the database's machine by a user allowed to (the ``postgres`` user, or
root); elsewhere the report says the files were not checked and why. Nothing is overclaimed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .pg_tuning import raise_for_build

CHUNK = 1 << 20
SETTINGS = ("wal_level", "wal_keep_size", "max_wal_size", "min_wal_size", "archive_mode", "archive_command",
            "checkpoint_timeout", "full_page_writes", "data_directory")


def needles(names: list[str], vectors: np.ndarray | None) -> dict[str, bytes]:
    """The byte strings to look for: each name, and a 16-byte prefix of each vector."""
    found = {f"name:{n}": n.encode("utf-8") for n in names}
    if vectors is not None:
        for i, v in enumerate(np.asarray(vectors, np.float32).reshape(len(vectors), -1)):
            found[f"vector:{i}"] = v[:4].astype("<f4").tobytes()
    return found


def count_in_files(paths: list[Path], patterns: dict[str, bytes]) -> tuple[dict[str, int], int, list[str]]:
    """``(hits per pattern, bytes read, unreadable files)``, reading in chunks with overlap."""
    hits = {k: 0 for k in patterns}
    longest = max((len(p) for p in patterns.values()), default=1)
    total, unreadable = 0, []
    for path in paths:
        try:
            with open(path, "rb") as f:
                tail = b""
                while block := f.read(CHUNK):
                    data = tail + block
                    for key, pattern in patterns.items():
                        hits[key] += data.count(pattern) - tail.count(pattern)
                    tail = data[-(longest - 1):] if longest > 1 else b""
                    total += len(block)
        except OSError as err:
            unreadable.append(f"{path.name}: {err.strerror or err}")
    return hits, total, unreadable


def relation_files(conn, tables: list[str], data_dir: Path) -> list[Path]:
    """Every file of ``tables``: the heap, its indexes, its TOAST table and index, each fork and segment."""
    oids = conn.execute(
        "SELECT c.oid FROM pg_class c WHERE c.oid = ANY(%(t)s::regclass[]) "
        "UNION SELECT i.indexrelid FROM pg_index i WHERE i.indrelid = ANY(%(t)s::regclass[]) "
        "UNION SELECT c.reltoastrelid FROM pg_class c WHERE c.oid = ANY(%(t)s::regclass[]) AND c.reltoastrelid <> 0 "
        "UNION SELECT i.indexrelid FROM pg_index i JOIN pg_class c ON i.indrelid = c.reltoastrelid "
        "WHERE c.oid = ANY(%(t)s::regclass[])", {"t": [f'"{t}"' for t in tables]}).fetchall()
    files = []
    for (oid,) in oids:
        relative = conn.execute("SELECT pg_relation_filepath(%s)", (oid,)).fetchone()[0]
        if relative is None:
            continue
        base = data_dir / relative
        for fork in ("", "_fsm", "_vm", "_init"):
            segment = 0
            while (path := Path(f"{base}{fork}" + (f".{segment}" if segment else ""))).exists():
                files.append(path)
                segment += 1
    return files


def reclaim_and_check(conn, tables: list[str], names: list[str], vectors: np.ndarray | None) -> dict:
    """Look for ``names`` and ``vectors`` in the files of ``tables`` (autocommit connection); where
    they are found, or the files cannot be read here, rewrite the tables and look again; then the
    WAL. The report says what was checked, what was found and what is out of reach.

    A forget swaps in tables built without the person (the old ones are dropped, their files
    unlinked), so its check usually finds nothing and rewrites nothing; a remove deletes rows in
    place, which leaves their bytes until the rewrite."""
    report: dict = {"reclaimed": [], "checkpoint": _checkpoint(conn)}
    if report["checkpoint"] is not True:
        report["checkpoint_refused"], report["checkpoint"] = report["checkpoint"], False
    settings = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(SETTINGS),)))
    patterns = needles(names, vectors)
    data_dir = Path(settings.get("data_directory") or "")
    readable = bool(settings.get("data_directory")) and os.access(data_dir, os.R_OK | os.X_OK)
    found = _scan(relation_files(conn, tables, data_dir), patterns) if readable else None
    report["found_before_reclaim"] = None if found is None else found["name_hits"] + found["vector_hits"]
    if found is None or report["found_before_reclaim"]:
        memory = raise_for_build(conn, tables, local=False)  # VACUUM FULL rebuilds the HNSW indexes
        try:
            for table in tables:
                conn.execute(f'VACUUM FULL "{table}"')
                report["reclaimed"].append(f"VACUUM FULL {table}")
        finally:
            if memory is not None:
                conn.execute("RESET maintenance_work_mem")
                report["maintenance_work_mem"] = f"{memory >> 20}MB"
        _checkpoint(conn)
        found = _scan(relation_files(conn, tables, data_dir), patterns) if readable else None
    if not readable:
        why = ("the server does not show its data directory to this user" if not settings.get("data_directory")
               else f"{data_dir} is not readable here (another machine, or another user's files)")
        report["relation_files"] = report["wal"] = {"checked": False, "why": why}
    else:
        report["relation_files"] = {"checked": True, **found}
        wal = sorted(p for p in (data_dir / "pg_wal").glob("*") if p.is_file() and len(p.name) == 24)
        report["wal"] = {"checked": True, **_scan(wal, patterns, "segments")}
    report["patterns"] = {"names": len(names), "vectors": 0 if vectors is None else len(vectors)}
    report["beyond_reach"] = beyond_reach(conn, settings)
    return report


def _checkpoint(conn):
    try:
        conn.execute("CHECKPOINT")
        return True
    except Exception as err:  # not a superuser (nor pg_checkpoint): the files may lag the server's buffers
        return " ".join(str(err).split())[:200]


def _scan(files: list[Path], patterns: dict[str, bytes], what: str = "files") -> dict:
    hits, size, unreadable = count_in_files(files, patterns)
    return {what: len(files), "bytes": size, "unreadable": unreadable,
            "name_hits": sum(v for k, v in hits.items() if k.startswith("name:")),
            "vector_hits": sum(v for k, v in hits.items() if k.startswith("vector:"))}


def beyond_reach(conn, settings: dict) -> list[str]:
    """What PostgreSQL may still hold that facerec cannot erase, with the settings that shorten it."""
    notes = [f"WAL segments in pg_wal keep the deleted rows until they are recycled after later checkpoints "
             f"(max_wal_size {settings.get('max_wal_size')} MB, wal_keep_size {settings.get('wal_keep_size')} MB, "
             f"checkpoint_timeout {settings.get('checkpoint_timeout')} s): smaller values recycle sooner"]
    if settings.get("archive_mode") not in (None, "off"):
        notes.append(f"archive_mode is {settings['archive_mode']}: archived WAL ({settings.get('archive_command')!r}) "
                     "keeps the rows for as long as the archive keeps its files")
    slots = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]
    standbys = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0]
    if slots or standbys:
        notes.append(f"{standbys} standby(s) and {slots} replication slot(s): each standby holds its own copy, "
                     "erased as it replays this deletion; a slot keeps WAL until its consumer reads it")
    notes.append("base backups and file-system snapshots taken before the deletion keep the rows until they are "
                 "deleted; the file system may keep the unlinked files' blocks until they are overwritten")
    return notes
