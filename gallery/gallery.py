"""A persistent face gallery: per-image vectors and per-person templates, searchable by cosine.

On disk (a directory)::

    meta.sqlite            people, one row per vector (person, image hash, source, model version,
                           time), settings (dimension, model version, index kind, generation)
    vectors-<gen>.faiss    the per-image index (ids = SQLite vector ids)
    templates-<gen>.faiss  one L2-normalised mean vector per person (ids = SQLite person ids)

Saving writes the new generation's index files first (temporary file, then rename) and then
commits the SQLite transaction that points at them; files of older generations are removed after
the commit. A crash at any point leaves the previous generation complete.

Every vector records the model version that made it, and the gallery refuses vectors of another
version: embeddings of two models are not comparable.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np

from . import index as fx
from . import store
from .errors import GalleryCorrupt, GalleryError, GalleryWriteError, write_failure
from .search import Match, PeopleSearch, normalise


def _guarded(method):
    """Report damage SQLite finds only when a query reaches it (a malformed page, text that is not
    UTF-8) as GalleryCorrupt rather than as a database exception."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as err:
            if any(w in str(err) for w in ("full", "readonly", "read-only")):
                raise GalleryWriteError(self.path, f"meta.sqlite: {err}") from None  # the disk, not the data
            raise GalleryCorrupt(self.path, f"meta.sqlite: {err}") from None
        except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
            raise GalleryCorrupt(self.path, f"meta.sqlite: {err}") from None
    return wrapper


FORMAT_VERSION = 2  # 2: settings hold the SHA-256 of each index file, checked before faiss reads it
_INDEX_KINDS = ("auto", "flat", "ivf")


class Gallery(PeopleSearch):
    """Open with ``Gallery.open(path)`` or ``Gallery.create(path, dim, model_version)``."""

    def __init__(self, path: Path, db, vectors, templates):
        self.path, self._db, self._vectors, self._templates = path, db, vectors, templates
        self._stale_templates: set[int] = set()  # people added to since their template was last computed
        self.dim = int(store.get_setting(db, "dim"))
        self.model_version = store.get_setting(db, "model_version")
        self.index_kind = store.get_setting(db, "index_kind", "auto")

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, dim: int, model_version: str, index_kind: str = "auto") -> "Gallery":
        if index_kind not in _INDEX_KINDS:
            raise GalleryError(f"index kind must be auto, flat or ivf, got {index_kind!r}")
        path = Path(path)
        if (path / "meta.sqlite").exists():
            raise GalleryError(f"a gallery already exists at {path}")
        path.mkdir(parents=True, exist_ok=True)
        db = store.connect(path / "meta.sqlite", create=True)
        db.execute("BEGIN")
        for key, value in (("format_version", FORMAT_VERSION), ("dim", dim), ("model_version", model_version),
                           ("index_kind", index_kind), ("generation", 0)):
            store.set_setting(db, key, value)
        db.execute("COMMIT")
        gallery = cls(path, db, fx.make_flat(dim), fx.make_flat(dim))
        gallery.save()
        return gallery

    @classmethod
    def open(cls, path: str | os.PathLike, read_only: bool = False) -> "Gallery":
        """Open an existing gallery, checking it whole first (see :meth:`_check`).

        ``read_only`` never writes to any file (SQLite ``mode=ro``); ``save`` then fails.

        Raises:
            GalleryError: there is no gallery; GalleryCorrupt: its files are damaged.
        """
        path = Path(path)
        if not (path / "meta.sqlite").is_file():
            raise GalleryError(f"no gallery at {path}")
        try:
            db = store.connect(path / "meta.sqlite", read_only=read_only)
        except (sqlite3.Error, UnicodeDecodeError) as err:
            raise GalleryCorrupt(path, f"meta.sqlite cannot be opened ({err})") from None
        try:
            gen = cls._check(path, db)
            vectors, templates = _read_index(path, db, "vectors", gen), _read_index(path, db, "templates", gen)
            gallery = cls(path, db, vectors, templates)
            _check_counts(gallery)
            return gallery
        except (sqlite3.DatabaseError, UnicodeDecodeError, TypeError, ValueError) as err:
            db.close()  # damage that quick_check does not see (duplicated keys, a malformed index page)
            raise GalleryCorrupt(path, f"meta.sqlite: {type(err).__name__}: {err}") from None
        except BaseException:
            db.close()
            raise

    @staticmethod
    def _check(path: Path, db) -> int:
        """The metadata's structure and settings are sound; returns the generation to load."""
        try:
            problem = store.check(db)
            settings = dict(db.execute("SELECT key, value FROM settings")) if not problem else {}
        except (sqlite3.Error, UnicodeDecodeError) as err:
            problem = f"meta.sqlite is unreadable ({err})"
        if problem:
            raise GalleryCorrupt(path, problem)
        version, dim, gen = (_number(settings.get(k)) for k in ("format_version", "dim", "generation"))
        if version is None or version > FORMAT_VERSION:
            raise GalleryCorrupt(path, f"unknown gallery format {settings.get('format_version')!r}")
        if dim is None or not 0 < dim <= 1 << 16 or gen is None or not settings.get("model_version"):
            raise GalleryCorrupt(path, "the settings 'dim', 'generation' or 'model_version' are missing or invalid")
        if settings.get("index_kind", "auto") not in _INDEX_KINDS:
            raise GalleryCorrupt(path, f"unknown index kind {settings['index_kind']!r}")
        if problem := store.integrity_problem(db, settings["model_version"]):
            raise GalleryCorrupt(path, f"meta.sqlite: {problem}")
        return gen

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @_guarded
    def save(self) -> None:
        """Persist the index files as a new generation and commit metadata pointing at them."""
        self._flush_templates()
        self._maybe_switch_index()
        gen = int(store.get_setting(self._db, "generation")) + 1
        digests = {}
        for name, index in (("vectors", self._vectors), ("templates", self._templates)):
            final = self.path / f"{name}-{gen}.faiss"
            tmp = final.with_suffix(".faiss.tmp")
            try:
                fx.write(index, str(tmp))
                digests[name] = _sha256(tmp)
                os.replace(tmp, final)
            except (OSError, RuntimeError) as err:  # faiss reports a full disk as a RuntimeError
                tmp.unlink(missing_ok=True)
                for written in (self.path / f"{n}-{gen}.faiss" for n in ("vectors", "templates")):
                    written.unlink(missing_ok=True)  # of a generation nothing points to yet
                raise GalleryWriteError(self.path, write_failure(err)) from None
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        for name, digest in digests.items():
            store.set_setting(self._db, f"sha256:{name}", digest)
        store.set_setting(self._db, "format_version", FORMAT_VERSION)
        store.set_setting(self._db, "generation", gen)
        self._db.execute("COMMIT")
        for stale in self.path.glob("*.faiss"):  # committed: what is left is tidying, and may fail
            if not stale.name.endswith(f"-{gen}.faiss"):
                with contextlib.suppress(OSError):
                    stale.unlink()

    @_guarded
    def rollback(self) -> None:
        """Drop unsaved changes (reloads the last saved generation)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        gen = int(store.get_setting(self._db, "generation"))
        self._vectors = _read_index(self.path, self._db, "vectors", gen)
        self._templates = _read_index(self.path, self._db, "templates", gen)
        self._stale_templates.clear()

    # -- changes (call save() to persist) ----------------------------------------------------
    def _begin(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN")

    @_guarded
    def add(self, person: str, vectors: np.ndarray, *, image_hashes: list[str], sources: list[str],
            model_version: str) -> list[int]:
        """Add a person's per-image vectors ``(n, d)``; returns their stable ids."""
        vectors = self.checked_vectors(vectors, image_hashes, sources, model_version)
        self._begin()
        pid = store.person_id(self._db, person, create=True)
        ids = store.insert_vectors(self._db, pid, image_hashes, sources, model_version)
        self._vectors.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        self._stale_templates.add(pid)  # recomputed in one pass before the next template search or save
        return ids

    @_guarded
    def remove_person(self, person: str) -> int:
        """Remove every vector, the template and the metadata of ``person``; returns vectors removed."""
        pid = store.person_id(self._db, person)
        if pid is None:
            raise GalleryError(f"{person!r} is not enrolled")
        self._begin()
        ids = np.asarray(store.vector_ids_of(self._db, pid), dtype=np.int64)
        removed = fx.remove(self._vectors, ids)
        fx.remove(self._templates, np.asarray([pid], dtype=np.int64))
        self._stale_templates.discard(pid)
        store.delete_person(self._db, pid)
        return removed

    def _flush_templates(self) -> None:
        """Recompute the stale people's templates: one removal pass over the template index for all
        of them (removing from a flat index is linear in its size, so one pass per added person made
        filling a gallery of many people quadratic: 9.5 ms a person at 80k people)."""
        if not self._stale_templates:
            return
        pids = np.asarray(sorted(self._stale_templates), dtype=np.int64)
        fx.remove(self._templates, pids)
        means, kept = [], []
        for pid in pids:
            ids = np.asarray(store.vector_ids_of(self._db, int(pid)), dtype=np.int64)
            if len(ids):
                means.append(fx.reconstruct(self._vectors, ids).mean(axis=0))
                kept.append(pid)
        if kept:
            self._templates.add_with_ids(normalise(np.stack(means), self.dim), np.asarray(kept, dtype=np.int64))
        self._stale_templates.clear()

    def _maybe_switch_index(self) -> None:
        """Under ``auto``, move to IVF once the gallery outgrows exact search (and back)."""
        want = fx.choose_kind(self._vectors.ntotal) if self.index_kind == "auto" else self.index_kind
        if want == fx.index_kind(self._vectors) or (want == "ivf" and self._vectors.ntotal < 39):
            return
        ids = self.vector_ids()
        vectors = fx.reconstruct(self._vectors, ids)
        new = fx.make_ivf(vectors) if want == "ivf" else fx.make_flat(self.dim)
        new.add_with_ids(vectors, ids)
        self._vectors = new

    # -- queries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._vectors.ntotal)

    @_guarded
    def vector_ids(self) -> np.ndarray:
        return np.asarray([r[0] for r in self._db.execute("SELECT vector_id FROM vectors ORDER BY vector_id")],
                          dtype=np.int64)

    @_guarded
    def image_hashes(self, person: str) -> set[str]:
        """The SHA-256 (or its first 16 hex digits, for re-embedded crops) of each enrolled image of ``person``."""
        pid = store.person_id(self._db, person)
        return set(store.hashes_of(self._db, pid)) if pid is not None else set()

    @_guarded
    def hashes_by_person(self) -> dict[str, set[str]]:
        """``{person: image hashes}`` of every enrolled image."""
        return store.hashes_by_person(self._db)

    @_guarded
    def people(self) -> dict[str, int]:
        """Enrolled people with their vector counts."""
        return store.people_counts(self._db)

    @_guarded
    def search(self, queries: np.ndarray, k: int = 1) -> list[list[Match]]:
        """Per query, the ``k`` most similar enrolled images (1:N over per-image vectors)."""
        scores, ids = fx.search(self._vectors, normalise(queries, self.dim), k)
        return self._matches(scores, ids, store.names_of_vectors(self._db, np.unique(ids)))

    def _matches(self, scores, ids, names: dict[int, str]) -> list[list[Match]]:
        if any(i >= 0 and int(i) not in names for i in np.unique(ids)):  # checked on open; changed since?
            raise GalleryCorrupt(self.path, "the index holds an id the metadata does not")
        return [[Match(names[int(i)], float(s), int(i)) for s, i in zip(row_s, row_i) if i >= 0]
                for row_s, row_i in zip(scores, ids)]

    @_guarded
    def search_templates(self, queries: np.ndarray, k: int = 1) -> list[list[Match]]:
        """Per query, the ``k`` most similar people by their mean template."""
        self._flush_templates()
        scores, ids = fx.search(self._templates, normalise(queries, self.dim), k)
        return self._matches(scores, ids, store.names_of_people(self._db, np.unique(ids)))

    @_guarded
    def records(self) -> tuple[list[tuple[str, str, str]], np.ndarray]:
        """``([(person, image hash, source)], vectors (n, d))`` of every vector, by id: what moves
        a gallery to another store without re-embedding."""
        rows = store.records(self._db)
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        return [r[1:] for r in rows], fx.reconstruct(self._vectors, ids) if len(ids) else np.zeros((0, self.dim), np.float32)

    @_guarded
    def export(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        """``(vector ids, person of each, vectors (n, d))`` of the whole gallery."""
        ids = self.vector_ids()
        names = store.names_of_vectors(self._db, ids)
        return ids, [names[int(i)] for i in ids], fx.reconstruct(self._vectors, ids)


def stored_image_hashes(path: str | os.PathLike) -> dict[str, set[str]]:
    """``{person: image hashes}`` from a gallery's metadata alone, after the same checks as
    :meth:`Gallery.open` makes of it; the FAISS files are not read. The connection is read-write,
    so SQLite rolls back a journal left by a killed write.

    Raises:
        GalleryError: there is no gallery; GalleryCorrupt: its metadata is damaged.
    """
    path = Path(path)
    if not (path / "meta.sqlite").is_file():
        raise GalleryError(f"no gallery at {path}")
    try:
        db = store.connect(path / "meta.sqlite")
    except (sqlite3.Error, UnicodeDecodeError) as err:
        raise GalleryCorrupt(path, f"meta.sqlite cannot be opened ({err})") from None
    try:
        Gallery._check(path, db)
        return store.hashes_by_person(db)
    except (sqlite3.DatabaseError, UnicodeDecodeError, TypeError, ValueError) as err:
        raise GalleryCorrupt(path, f"meta.sqlite: {err}") from None
    finally:
        db.close()


def _number(text: str | None) -> int | None:
    return int(text) if isinstance(text, str) and 0 < len(text) < 10 and text.isascii() and text.isdigit() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_index(path: Path, db, name: str, gen: int):
    """Load ``<name>-<gen>.faiss`` after checking it against the SHA-256 the metadata recorded, so
    a damaged file is reported instead of reaching faiss's reader (which trusts its input)."""
    file = path / f"{name}-{gen}.faiss"
    if not file.is_file():
        raise GalleryCorrupt(path, f"index file {file.name} is missing")
    expected = store.get_setting(db, f"sha256:{name}")
    if expected is not None and _sha256(file) != expected:
        raise GalleryCorrupt(path, f"index file {file.name} does not match its recorded checksum")
    try:
        return fx.read(str(file))
    except Exception as err:  # faiss raises RuntimeError; a damaged header may give struct or value errors
        raise GalleryCorrupt(path, f"index file {file.name} is unreadable ({type(err).__name__})") from None


def _check_counts(gallery: Gallery) -> None:
    """The index files hold exactly the vectors and people the metadata lists, by id."""
    vectors, people = store.ids(gallery._db)
    for index, rows, what in ((gallery._vectors, vectors, "vectors"), (gallery._templates, people, "templates")):
        if index.d != gallery.dim or index.ntotal != len(rows):
            raise GalleryCorrupt(gallery.path, f"the {what} index holds {index.ntotal} of dimension {index.d}; "
                                               f"the metadata says {len(rows)} of dimension {gallery.dim}")
        if not np.array_equal(fx.stored_ids(index), np.asarray(rows, np.int64)):
            raise GalleryCorrupt(gallery.path, f"the {what} index and the metadata hold different ids")
