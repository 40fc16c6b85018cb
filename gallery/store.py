"""Gallery metadata in SQLite: people, one row per enrolled vector, and the gallery's settings.

``PRAGMA secure_delete`` makes SQLite overwrite deleted rows with zeros, so removing a person
does not leave their name or image hashes readable in free pages of the file. The rollback
journal (not WAL) is used for the same reason: nothing deleted lingers in a side file after the
transaction commits.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    person_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS vectors (
    vector_id INTEGER PRIMARY KEY AUTOINCREMENT,   -- the stable 64-bit id used in the FAISS index
    person_id INTEGER NOT NULL REFERENCES people(person_id),
    image_sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    model_version TEXT NOT NULL,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_by_person ON vectors(person_id);
"""


def connect(path: Path, *, create: bool = False, read_only: bool = False) -> sqlite3.Connection:
    """Open the metadata database; only ``create`` writes the schema (opening never alters a file).

    ``read_only`` opens it with SQLite's ``mode=ro``: a reader cannot change the file even by
    accident (an empty or foreign file stays as it is). Errors are ``sqlite3.Error``.
    """
    if read_only:
        db = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)
    else:
        db = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
        db.execute("PRAGMA secure_delete = ON")
        db.execute("PRAGMA journal_mode = DELETE")
    db.execute("PRAGMA foreign_keys = ON")
    if create:
        db.executescript(SCHEMA)
    return db


def check(db: sqlite3.Connection) -> str | None:
    """What is wrong with the database's structure, or None (SQLite's ``quick_check`` plus the
    tables this module needs)."""
    result = db.execute("PRAGMA quick_check").fetchall()
    if result != [("ok",)]:
        return "; ".join(str(r[0]) for r in result[:3])
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = {"settings", "people", "vectors"} - tables
    return f"missing tables {', '.join(sorted(missing))}" if missing else None


def integrity_problem(db: sqlite3.Connection, model_version: str) -> str | None:
    """What makes the rows disagree with each other, or None: values of the wrong type, vectors
    of no person, people with no vector, or vectors of another model than the gallery's.

    SQLite checks none of this for a file edited by hand (its ``foreign_keys`` are off by default),
    and each one, undetected, turns into a wrong answer or, worse, into a clean-up that takes a
    person's stored crops for leftovers."""
    checks = (
        ("SELECT COUNT(*) FROM people WHERE typeof(person_id) != 'integer' OR typeof(name) != 'text'",
         "{} people row(s) hold values of the wrong type"),
        ("SELECT COUNT(*) FROM vectors WHERE typeof(vector_id) != 'integer' OR typeof(person_id) != 'integer' "
         "OR typeof(image_sha256) != 'text' OR typeof(source) != 'text' OR typeof(model_version) != 'text' "
         "OR typeof(added) NOT IN ('real', 'integer')", "{} vector row(s) hold values of the wrong type"),
        ("SELECT COUNT(*) FROM vectors WHERE person_id NOT IN (SELECT person_id FROM people)",
         "{} vector row(s) belong to no person"),
        ("SELECT COUNT(*) FROM people WHERE person_id NOT IN (SELECT person_id FROM vectors)",
         "{} person row(s) have no vector"),
        ("SELECT COUNT(*) FROM vectors WHERE model_version != ?", "{} vector row(s) are of another model than the gallery's"),
    )
    for query, problem in checks:
        found = db.execute(query, (model_version,) if "?" in query else ()).fetchone()[0]
        if found:
            return problem.format(found)
    return None


def ids(db: sqlite3.Connection) -> tuple[list[int], list[int]]:
    """``(vector ids, ids of the people with a vector)``, each sorted."""
    vectors = [int(r[0]) for r in db.execute("SELECT vector_id FROM vectors ORDER BY vector_id")]
    people = [int(r[0]) for r in db.execute("SELECT DISTINCT person_id FROM vectors ORDER BY person_id")]
    return vectors, people


def hashes_by_person(db: sqlite3.Connection) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, digest in db.execute("SELECT p.name, v.image_sha256 FROM vectors v JOIN people p USING(person_id)"):
        out.setdefault(name, set()).add(digest)
    return out


def records(db: sqlite3.Connection) -> list[tuple[int, str, str, str]]:
    """``(vector id, person, image hash, source)`` of every vector, by id."""
    return [(int(i), n, h, s) for i, n, h, s in db.execute(
        "SELECT v.vector_id, p.name, v.image_sha256, v.source FROM vectors v JOIN people p USING(person_id) "
        "ORDER BY v.vector_id")]


def hashes_of(db: sqlite3.Connection, pid: int) -> list[str]:
    return [r[0] for r in db.execute("SELECT image_sha256 FROM vectors WHERE person_id = ?", (pid,))]


def get_setting(db: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_setting(db: sqlite3.Connection, key: str, value) -> None:
    db.execute("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
               (key, str(value)))


def person_id(db: sqlite3.Connection, name: str, create: bool = False) -> int | None:
    row = db.execute("SELECT person_id FROM people WHERE name = ?", (name,)).fetchone()
    if row:
        return int(row[0])
    if not create:
        return None
    return int(db.execute("INSERT INTO people(name) VALUES(?)", (name,)).lastrowid)


def insert_vectors(db: sqlite3.Connection, pid: int, image_hashes: list[str], sources: list[str],
                   model_version: str) -> list[int]:
    now = time.time()
    return [
        int(db.execute("INSERT INTO vectors(person_id, image_sha256, source, model_version, added) VALUES(?,?,?,?,?)",
                       (pid, h, s, model_version, now)).lastrowid)
        for h, s in zip(image_hashes, sources)
    ]


def vector_ids_of(db: sqlite3.Connection, pid: int) -> list[int]:
    return [int(r[0]) for r in db.execute("SELECT vector_id FROM vectors WHERE person_id = ? ORDER BY vector_id", (pid,))]


def delete_person(db: sqlite3.Connection, pid: int) -> None:
    db.execute("DELETE FROM vectors WHERE person_id = ?", (pid,))
    db.execute("DELETE FROM people WHERE person_id = ?", (pid,))


def people_counts(db: sqlite3.Connection) -> dict[str, int]:
    rows = db.execute(
        "SELECT p.name, COUNT(v.vector_id) FROM people p LEFT JOIN vectors v ON v.person_id = p.person_id "
        "GROUP BY p.person_id ORDER BY p.name")
    return {name: int(count) for name, count in rows}


def names_of_vectors(db: sqlite3.Connection, ids) -> dict[int, str]:
    ids = [int(i) for i in ids if i >= 0]
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = db.execute(f"SELECT v.vector_id, p.name FROM vectors v JOIN people p USING(person_id) "
                      f"WHERE v.vector_id IN ({marks})", ids)
    return {int(i): name for i, name in rows}


def names_of_people(db: sqlite3.Connection, ids) -> dict[int, str]:
    ids = [int(i) for i in ids if i >= 0]
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {int(i): n for i, n in db.execute(f"SELECT person_id, name FROM people WHERE person_id IN ({marks})", ids)}
