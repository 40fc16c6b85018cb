"""A gallery in PostgreSQL with pgvector: the same interface as the FAISS :class:`~gallery.Gallery`,
shared by every process that connects to the database.

Layout (schema ``public`` of the database the URL names; one gallery per ``name``)::

    facerec_schema         one row: the schema version facerec created and migrates
    facerec_galleries      name, dimension, model version, index kind of each gallery
    "<name>__people"       person_id, name, template vector(dim) (the L2-normalised mean)
    "<name>__vectors"      vector_id, person_id, image hash, source, model version, time, embedding vector(dim)

Vectors are unit length, so cosine is the inner product (pgvector's ``<#>`` is its negative). Each
table has an HNSW index (``vector_ip_ops``; Malkov & Yashunin, TPAMI 2018); ``exact=True`` (or a
window wider than the HNSW candidate list) scans without it. Changes run in one transaction that
:meth:`save` commits and :meth:`rollback` drops, as the FAISS gallery's generations do, so another
process sees a person wholly enrolled or not at all. Reads outside a change see the latest commit.

Credentials never enter a URL facerec stores: libpq takes the password from ``PGPASSWORD``, the
password file (``~/.pgpass``) or a service file (``PGSERVICE``).
"""

from __future__ import annotations

import contextlib
import re

import numpy as np

from .errors import GalleryCorrupt, GalleryError, GalleryWriteError
from .pg_tuning import HNSW_EF, HNSW_MAX_EF, ef_search_for, raise_for_build
from .search import Match, PeopleSearch, normalise

SCHEMA_VERSION = 1
INDEX_KINDS = ("hnsw", "exact", "deferred")  # deferred: a staging gallery whose HNSW indexes swap() builds
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class GalleryUnavailable(GalleryError):
    """The database cannot be reached, refuses the login, or lacks the pgvector extension."""


def redacted(url: str) -> str:
    """``url`` without a password, as reports and errors show it."""
    return re.sub(r"(postgres(?:ql)?://[^:/@?]*):[^@/?]*@", r"\1:***@", url)


def connect(url: str):
    """A psycopg connection with the pgvector types registered (autocommit: a change BEGINs itself)."""
    try:
        import psycopg
        from pgvector.psycopg import register_vector
    except ImportError:
        raise GalleryUnavailable("a PostgreSQL gallery needs psycopg and pgvector: "
                                 "pip install 'facerec[postgresql]'") from None
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as err:
        raise GalleryUnavailable(f"cannot connect to {redacted(url)}: {_one_line(err)}") from None
    try:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as err:
                raise GalleryUnavailable(
                    f"the database at {redacted(url)} has no pgvector extension and it cannot be created "
                    f"({_one_line(err)}): install pgvector on the server and run CREATE EXTENSION vector") from None
        register_vector(conn)
        conn.execute(f"SET hnsw.ef_search = {HNSW_EF}")
    except BaseException:
        conn.close()
        raise
    return conn


def _one_line(err) -> str:
    return " ".join(str(err).split())[:300]


class PostgresGallery(PeopleSearch):
    """Open with ``PostgresGallery.open(url, name)`` or ``PostgresGallery.create(url, name, dim, model_version)``."""

    def __init__(self, url: str, name: str, conn, dim: int, model_version: str, index_kind: str):
        self.url, self.name, self._conn = url, name, conn
        self.dim, self.model_version, self.index_kind = dim, model_version, index_kind
        self.path = f"{redacted(url)}#{name}"  # how errors name it, as the FAISS gallery names its folder
        self._people, self._vectors = f"{name}__people", f"{name}__vectors"
        self.ef_search = HNSW_EF

    def _tune(self) -> None:
        """Size ``hnsw.ef_search`` to the gallery (:func:`ef_search_for`), for this session."""
        rows = self._conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                                  (f'"{self._vectors}"',)).fetchone()
        if rows is None or rows[0] < 0:  # never vacuumed or analysed: count
            rows = self._query("SELECT count(*) FROM {vectors}").fetchone()
        self.ef_search = ef_search_for(int(rows[0]))
        self._conn.execute(f"SET hnsw.ef_search = {self.ef_search}")

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def create(cls, url: str, name: str, dim: int, model_version: str, index_kind: str = "hnsw") -> "PostgresGallery":
        _check_name(name)
        if index_kind not in INDEX_KINDS:
            raise GalleryError(f"index kind must be one of {', '.join(INDEX_KINDS)}, got {index_kind!r}")
        if not 0 < dim <= 16000:
            raise GalleryError(f"a dimension of {dim} is outside pgvector's 1..16000")
        conn = connect(url)
        try:
            with _errors(url), conn.transaction():
                migrate(conn)
                if conn.execute("SELECT 1 FROM facerec_galleries WHERE name = %s", (name,)).fetchone():
                    raise GalleryError(f"a gallery named {name!r} already exists in {redacted(url)}")
                conn.execute("INSERT INTO facerec_galleries (name, dim, model_version, index_kind) "
                             "VALUES (%s, %s, %s, %s)", (name, dim, model_version, index_kind))
                _create_tables(conn, name, dim, index_kind)
        except BaseException:
            conn.close()
            raise
        return cls(url, name, conn, dim, model_version, index_kind)

    @classmethod
    def open(cls, url: str, name: str, read_only: bool = False) -> "PostgresGallery":
        """Open an existing gallery; its schema version and settings are checked first.

        Raises:
            GalleryUnavailable: no database or no pgvector; GalleryError: no such gallery, or one
            written by a newer facerec; GalleryCorrupt: its settings or tables are damaged.
        """
        _check_name(name)
        conn = connect(url)
        try:
            with _errors(url):
                version = schema_version(conn)
                if version is None:
                    raise GalleryError(f"no facerec gallery in {redacted(url)}")
                if version > SCHEMA_VERSION:
                    raise GalleryError(f"the gallery schema in {redacted(url)} is version {version}, written by a "
                                       f"newer facerec (this one reads up to {SCHEMA_VERSION}); upgrade facerec")
                if not read_only and version < SCHEMA_VERSION:
                    with conn.transaction():
                        migrate(conn)
                row = conn.execute("SELECT dim, model_version, index_kind FROM facerec_galleries WHERE name = %s",
                                   (name,)).fetchone()
                if row is None:
                    raise GalleryError(f"no gallery named {name!r} in {redacted(url)}")
                dim, model_version, index_kind = row
                if not (isinstance(dim, int) and 0 < dim <= 16000) or not model_version or index_kind not in INDEX_KINDS:
                    raise GalleryCorrupt(f"{redacted(url)}#{name}", "its settings row is invalid")
                gallery = cls(url, name, conn, dim, model_version, index_kind)
                gallery._check_tables()
                gallery._tune()
                if read_only:
                    conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                return gallery
        except BaseException:
            conn.close()
            raise

    def _check_tables(self) -> None:
        for table in (self._people, self._vectors):
            if self._conn.execute("SELECT to_regclass(%s)", (f'"{table}"',)).fetchone()[0] is None:
                raise GalleryCorrupt(self.path, f"table {table} is missing")
        column = self._conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attname = 'embedding'", (f'"{self._vectors}"',)).fetchone()
        if column is None or column[0] != f"vector({self.dim})":
            raise GalleryCorrupt(self.path, f"the embedding column is {column and column[0]}, not vector({self.dim})")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._in_change():
                self._conn.execute("ROLLBACK")
        self._conn.close()

    def __enter__(self) -> "PostgresGallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def save(self) -> None:
        """Commit the pending changes: every other process sees them from now on, with a new
        generation (the committing transaction's id; :func:`gallery_state`), which readers that
        cache a check compare."""
        if self._in_change():
            with _errors(self.url):
                self._conn.execute("UPDATE facerec_galleries SET generation = txid_current() WHERE name = %s",
                                   (self.name,))
                self._conn.execute("COMMIT")
                self._tune()

    def rollback(self) -> None:
        """Drop the pending changes."""
        if self._in_change():
            self._conn.execute("ROLLBACK")

    def _in_change(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def _begin(self) -> None:
        if not self._in_change():
            self._conn.execute("BEGIN")

    def _sql(self, text: str):
        """``text`` with ``{people}`` and ``{vectors}`` as this gallery's table identifiers."""
        from psycopg import sql

        return sql.SQL(text).format(people=sql.Identifier(self._people), vectors=sql.Identifier(self._vectors))

    def _query(self, text: str, params=()):
        with _errors(self.url):
            return self._conn.execute(self._sql(text), params)

    # -- changes (call save() to commit) -------------------------------------------------------
    def add(self, person: str, vectors: np.ndarray, *, image_hashes: list[str], sources: list[str],
            model_version: str) -> list[int]:
        """Add a person's per-image vectors ``(n, d)``; returns their ids."""
        vectors = self.checked_vectors(vectors, image_hashes, sources, model_version)
        self._begin()
        pid = self._query("INSERT INTO {people} (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
                          "RETURNING person_id", (person,)).fetchone()[0]
        ids = [self._query("INSERT INTO {vectors} (person_id, image_hash, source, model_version, embedding) "
                           "VALUES (%s, %s, %s, %s, %s) RETURNING vector_id", (pid, h, s, model_version, v)).fetchone()[0]
               for v, h, s in zip(vectors, image_hashes, sources)]
        self._refresh_template(pid)
        return ids

    def remove_person(self, person: str) -> int:
        """Remove every vector, the template and the row of ``person``; returns vectors removed."""
        self._begin()
        row = self._query("SELECT person_id FROM {people} WHERE name = %s FOR UPDATE", (person,)).fetchone()
        if row is None:
            raise GalleryError(f"{person!r} is not enrolled")
        removed = self._query("DELETE FROM {vectors} WHERE person_id = %s", (row[0],)).rowcount
        self._query("DELETE FROM {people} WHERE person_id = %s", (row[0],))
        return removed

    def _refresh_template(self, pid: int) -> None:
        self._query("UPDATE {people} SET template = (SELECT l2_normalize(avg(embedding)) FROM {vectors} "
                    "WHERE person_id = %s) WHERE person_id = %s", (pid, pid))

    # -- queries -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._query("SELECT count(*) FROM {vectors}").fetchone()[0])

    def vector_ids(self) -> np.ndarray:
        return np.asarray([r[0] for r in self._query("SELECT vector_id FROM {vectors} ORDER BY vector_id")],
                          dtype=np.int64)

    def image_hashes(self, person: str) -> set[str]:
        return {r[0] for r in self._query("SELECT v.image_hash FROM {vectors} v JOIN {people} p USING (person_id) "
                                          "WHERE p.name = %s", (person,))}

    def hashes_by_person(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for name, digest in self._query("SELECT p.name, v.image_hash FROM {vectors} v JOIN {people} p USING (person_id)"):
            out.setdefault(name, set()).add(digest)
        return out

    def people(self) -> dict[str, int]:
        """Enrolled people with their vector counts."""
        return dict(self._query("SELECT p.name, count(*) FROM {people} p JOIN {vectors} v USING (person_id) "
                                "GROUP BY p.name ORDER BY p.name").fetchall())

    def search(self, queries: np.ndarray, k: int = 1, exact: bool = False) -> list[list[Match]]:
        """Per query, the ``k`` most similar enrolled images (HNSW unless ``exact``)."""
        return self._nearest(queries, k, exact, "SELECT v.vector_id, p.name, v.embedding <#> %s AS d FROM {vectors} v "
                                                "JOIN {people} p USING (person_id) ORDER BY d LIMIT %s")

    def search_templates(self, queries: np.ndarray, k: int = 1, exact: bool = False) -> list[list[Match]]:
        """Per query, the ``k`` most similar people by their mean template."""
        return self._nearest(queries, k, exact, "SELECT person_id, name, template <#> %s AS d FROM {people} "
                                                "WHERE template IS NOT NULL ORDER BY d LIMIT %s")

    def _nearest(self, queries: np.ndarray, k: int, exact: bool, text: str) -> list[list[Match]]:
        queries = normalise(queries, self.dim)
        exact = exact or self.index_kind != "hnsw" or k > HNSW_MAX_EF
        plain = not exact and k <= self.ef_search  # the session's candidate list holds k: one round trip
        out = []
        with _errors(self.url), contextlib.nullcontext() if plain else self._conn.transaction():
            if exact:  # SET LOCAL lasts for this search only
                self._conn.execute("SET LOCAL enable_indexscan = off")
            elif not plain:
                self._conn.execute(f"SET LOCAL hnsw.ef_search = {max(self.ef_search, min(int(k), HNSW_MAX_EF))}")
            for q in queries:
                rows = self._conn.execute(self._sql(text), (q, int(k))).fetchall()
                out.append([Match(name, -float(d), int(i)) for i, name, d in rows])
        return out

    def records(self) -> tuple[list[tuple[str, str, str]], np.ndarray]:
        """``([(person, image hash, source)], vectors (n, d))`` of every vector, by id."""
        rows = self._query("SELECT p.name, v.image_hash, v.source, v.embedding FROM {vectors} v JOIN {people} p "
                           "USING (person_id) ORDER BY v.vector_id").fetchall()
        vectors = np.asarray([_array(r[3]) for r in rows], np.float32).reshape(len(rows), self.dim)
        return [tuple(r[:3]) for r in rows], vectors

    def export(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        """``(vector ids, person of each, vectors (n, d))`` of the whole gallery."""
        rows = self._query("SELECT v.vector_id, p.name, v.embedding FROM {vectors} v JOIN {people} p USING (person_id) "
                           "ORDER BY v.vector_id").fetchall()
        vectors = np.asarray([_array(r[2]) for r in rows], np.float32).reshape(len(rows), self.dim)
        return np.asarray([r[0] for r in rows], np.int64), [r[1] for r in rows], vectors


def _array(value) -> np.ndarray:
    """A vector column's value as float32 (pgvector's adapter gives ``Vector`` objects or arrays)."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, np.float32)


def schema_version(conn) -> int | None:
    """The facerec schema version in the database (None: facerec never wrote there)."""
    if conn.execute("SELECT to_regclass('facerec_schema')").fetchone()[0] is None:
        return None
    row = conn.execute("SELECT version FROM facerec_schema").fetchone()
    return int(row[0]) if row else None


def migrate(conn) -> None:
    """Create facerec's tables, or bring an older schema up to :data:`SCHEMA_VERSION` (in the caller's transaction)."""
    conn.execute("SELECT pg_advisory_xact_lock(7202611)")  # two processes creating at once: one at a time
    version = schema_version(conn)
    if version is None:
        conn.execute("CREATE TABLE facerec_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO facerec_schema VALUES (%s)", (SCHEMA_VERSION,))
        conn.execute("CREATE TABLE facerec_galleries (name text PRIMARY KEY, dim integer NOT NULL, "
                     "model_version text NOT NULL, index_kind text NOT NULL, generation bigint NOT NULL DEFAULT 0, "
                     "created timestamptz NOT NULL DEFAULT now())")
    elif version > SCHEMA_VERSION:
        raise GalleryError(f"the gallery schema is version {version}, written by a newer facerec; upgrade facerec")
    # version 1 is the first: later versions add their steps here, each ending in UPDATE facerec_schema


def _create_tables(conn, name: str, dim: int, index_kind: str) -> None:
    from psycopg import sql

    people, vectors = sql.Identifier(f"{name}__people"), sql.Identifier(f"{name}__vectors")
    conn.execute(sql.SQL("CREATE TABLE {} (person_id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, "
                         "template vector({}))").format(people, sql.Literal(dim)))
    conn.execute(sql.SQL("CREATE TABLE {} (vector_id bigserial PRIMARY KEY, person_id bigint NOT NULL REFERENCES {} "
                         "ON DELETE CASCADE, image_hash text NOT NULL, source text NOT NULL, model_version text NOT NULL, "
                         "added timestamptz NOT NULL DEFAULT now(), embedding vector({}) NOT NULL)")
                 .format(vectors, people, sql.Literal(dim)))
    conn.execute(sql.SQL("CREATE INDEX ON {} (person_id)").format(vectors))
    if index_kind == "hnsw":
        _create_indexes(conn, name)


def _create_indexes(conn, name: str) -> None:
    """The HNSW indexes of gallery ``name`` (built in one pass over the rows: far faster than
    inserting each row into an index, which is why staging galleries defer them)."""
    from psycopg import sql

    conn.execute(sql.SQL("CREATE INDEX ON {} USING hnsw (embedding vector_ip_ops)").format(
        sql.Identifier(f"{name}__vectors")))
    conn.execute(sql.SQL("CREATE INDEX ON {} USING hnsw (template vector_ip_ops)").format(
        sql.Identifier(f"{name}__people")))


def gallery_state(url: str, name: str) -> tuple[str, int] | None:
    """``(model version, generation)`` of gallery ``name``, or None when there is none."""
    _check_name(name)
    conn = connect(url)
    try:
        with _errors(url):
            if schema_version(conn) is None:
                return None
            row = conn.execute("SELECT model_version, generation FROM facerec_galleries WHERE name = %s",
                               (name,)).fetchone()
            return (row[0], int(row[1])) if row else None
    finally:
        conn.close()


def swap(url: str, staging: str, live: str) -> None:
    """Make gallery ``staging`` the gallery ``live`` in one transaction: the old live tables are
    dropped (their files deleted) and the staging tables renamed; another process sees the old
    gallery or the new one, never neither."""
    from psycopg import sql

    _check_name(staging)
    _check_name(live)
    conn = connect(url)
    try:
        with _errors(url), conn.transaction():  # a staging gallery built without indexes gets them first,
            row = conn.execute("SELECT dim, index_kind FROM facerec_galleries WHERE name = %s", (staging,)).fetchone()
            if row is None:  # outside the swap's locks (readers of the live gallery are not held up)
                raise GalleryError(f"no gallery named {staging!r} to swap in")
            if row[1] == "deferred":
                raise_for_build(conn, [f"{staging}__vectors", f"{staging}__people"], local=True)
                _create_indexes(conn, staging)
                conn.execute("UPDATE facerec_galleries SET index_kind = 'hnsw' WHERE name = %s", (staging,))
        with _errors(url), conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7202611)")
            if conn.execute("SELECT 1 FROM facerec_galleries WHERE name = %s", (staging,)).fetchone() is None:
                raise GalleryError(f"no gallery named {staging!r} to swap in")
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(sql.Identifier(f"{live}__vectors"),
                                                                       sql.Identifier(f"{live}__people")))
            for part in ("people", "vectors"):
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(f"{staging}__{part}"),
                                                                           sql.Identifier(f"{live}__{part}")))
            conn.execute("DELETE FROM facerec_galleries WHERE name = %s", (live,))
            conn.execute("UPDATE facerec_galleries SET name = %s, generation = txid_current() WHERE name = %s",
                         (live, staging))
    finally:
        conn.close()


def drop(url: str, name: str) -> None:
    """Remove gallery ``name`` (its tables and their files) from the database."""
    from psycopg import sql

    _check_name(name)
    conn = connect(url)
    try:
        with _errors(url), conn.transaction():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(sql.Identifier(f"{name}__vectors"),
                                                                       sql.Identifier(f"{name}__people")))
            if schema_version(conn) is not None:
                conn.execute("DELETE FROM facerec_galleries WHERE name = %s", (name,))
    finally:
        conn.close()


def _check_name(name: str) -> None:
    if not _NAME.match(name or ""):
        raise GalleryError(f"a PostgreSQL gallery name is 1-40 lower-case letters, digits or _, starting with a "
                           f"letter; got {name!r}")


@contextlib.contextmanager
def _errors(url: str):
    """psycopg's errors as the gallery's: the server gone, a full disk, a read-only session."""
    import psycopg

    try:
        yield
    except psycopg.errors.DiskFull as err:
        raise GalleryWriteError(redacted(url), _one_line(err)) from None
    except psycopg.errors.ReadOnlySqlTransaction:
        raise GalleryError(f"the gallery at {redacted(url)} was opened read-only") from None
    except psycopg.OperationalError as err:
        raise GalleryUnavailable(f"the database at {redacted(url)} stopped answering: {_one_line(err)}") from None
