"""The PostgreSQL gallery (gallery.postgres) against a real server: the same answers as the FAISS
gallery on the same data, changes all or nothing across connections, and bad databases refused in
one line."""

from pathlib import Path

import numpy as np
import pytest

from gallery import Gallery, GalleryCorrupt, GalleryError
from gallery.postgres import GalleryUnavailable, PostgresGallery, drop, redacted

DIM = 16


def _unit(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fill(g, people=12, each=6):
    for p in range(people):
        v = _unit(each if p else 40, p)  # person0 has many images: it must not hide the runner-up
        g.add(f"person{p}", v, image_hashes=[f"h{p}-{i}" for i in range(len(v))], sources=["test"] * len(v),
              model_version="m1")
    g.save()


@pytest.fixture
def pg(postgres, request):
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")[:30]
    drop(postgres.url, name)
    yield postgres.url, name
    drop(postgres.url, name)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_the_same_answers_as_the_faiss_gallery(pg, tmp_path, kind):
    url, name = pg
    faiss_g = Gallery.create(tmp_path / "g", DIM, "m1", index_kind="flat")
    pg_g = PostgresGallery.create(url, name, DIM, "m1", index_kind=kind)
    _fill(faiss_g)
    _fill(pg_g)
    queries = _unit(25, 99)
    assert pg_g.people() == faiss_g.people() and len(pg_g) == len(faiss_g) == 40 + 11 * 6
    for a, b in zip(pg_g.search(queries, k=5), faiss_g.search(queries, k=5)):
        assert [m.identity for m in a] == [m.identity for m in b]  # 106 vectors: HNSW finds them all
        assert np.allclose([m.score for m in a], [m.score for m in b], atol=1e-5)
    for a, b in zip(pg_g.search_people(queries, k=3, exclude={"person2"}),
                    faiss_g.search_people(queries, k=3, exclude={"person2"})):
        assert [m.identity for m in a] == [m.identity for m in b]
    for a, b in zip(pg_g.search_templates(queries, k=2), faiss_g.search_templates(queries, k=2)):
        assert [m.identity for m in a] == [m.identity for m in b]
        assert np.allclose([m.score for m in a], [m.score for m in b], atol=1e-5)
    ids, names, vectors = pg_g.export()
    assert len(ids) == len(names) == len(vectors) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert pg_g.hashes_by_person() == faiss_g.hashes_by_person()
    assert pg_g.remove_person("person3") == faiss_g.remove_person("person3") == 6
    pg_g.save()
    assert "person3" not in pg_g.people() and pg_g.image_hashes("person3") == set()
    pg_g.close()


def test_changes_are_all_or_nothing_across_connections(pg):
    url, name = pg
    writer = PostgresGallery.create(url, name, DIM, "m1")
    reader = PostgresGallery.open(url, name, read_only=True)
    writer.add("ann", _unit(3, 1), image_hashes=["a", "b", "c"], sources=["t"] * 3, model_version="m1")
    assert reader.people() == {} and writer.people() == {"ann": 3}  # not committed: no one else sees it
    writer.save()
    assert reader.people() == {"ann": 3}  # committed: seen at once, without reopening
    writer.remove_person("ann")
    writer.rollback()
    assert writer.people() == reader.people() == {"ann": 3}
    with pytest.raises(GalleryError, match="read-only"):
        reader.add("bob", _unit(1, 2), image_hashes=["x"], sources=["t"], model_version="m1")
    with pytest.raises(GalleryError, match="model m2"):
        writer.add("bob", _unit(1, 2), image_hashes=["x"], sources=["t"], model_version="m2")
    with pytest.raises(GalleryError, match="dimension"):
        writer.add("bob", np.ones((1, DIM + 1), np.float32), image_hashes=["x"], sources=["t"], model_version="m1")
    with pytest.raises(GalleryError, match="already exists"):
        PostgresGallery.create(url, name, DIM, "m1")
    reader.close()
    writer.close()


def test_bad_databases_are_refused_in_one_line(pg, postgres):
    import psycopg

    url, name = pg
    with pytest.raises(GalleryError, match="no gallery named"):
        PostgresGallery.open(url, name)
    dead = url.rsplit("port=", 1)[0] + "port=1"
    with pytest.raises(GalleryUnavailable, match="cannot connect") as err:
        PostgresGallery.open(dead, name)
    assert "\n" not in str(err.value)
    PostgresGallery.create(url, name, DIM, "m1").close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE facerec_schema SET version = 99")
        try:
            with pytest.raises(GalleryError, match="newer facerec"):
                PostgresGallery.open(url, name)
        finally:
            conn.execute("UPDATE facerec_schema SET version = 1")
        conn.execute(f'ALTER TABLE "{name}__vectors" DROP COLUMN embedding')
    with pytest.raises(GalleryCorrupt, match="embedding column"):
        PostgresGallery.open(url, name)
    with psycopg.connect(url, autocommit=True) as conn:  # a database without pgvector, a user who cannot add it
        conn.execute("DROP DATABASE IF EXISTS plain")
        conn.execute("DROP ROLE IF EXISTS app")
        conn.execute("CREATE ROLE app LOGIN")
        conn.execute("CREATE DATABASE plain OWNER app")
    plain = url.replace("postgres@/facerec", "app@/plain")
    with pytest.raises(GalleryUnavailable, match="no pgvector extension"):
        PostgresGallery.create(plain, name, DIM, "m1")
    assert redacted("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"


def test_a_removed_person_leaves_no_byte_in_the_gallery_files_after_the_reclaim(pg):
    """Before the reclaim the check finds the deleted rows' bytes (it can fail); after it, none."""
    from gallery.pg_erasure import reclaim_and_check

    url, name = pg
    g = PostgresGallery.create(url, name, DIM, "m1")
    _fill(g)
    victim = g.records()
    vectors = victim[1][[i for i, r in enumerate(victim[0]) if r[0] == "person5"]]
    g.remove_person("person5")
    g.save()
    g._conn.execute("CHECKPOINT")
    tables = [f"{name}__people", f"{name}__vectors"]
    from gallery.pg_erasure import count_in_files, needles, relation_files
    data_dir = Path(g._conn.execute("SHOW data_directory").fetchone()[0])
    hits, _, _ = count_in_files(relation_files(g._conn, tables, data_dir), needles(["person5"], vectors))
    assert sum(hits.values()) > 0  # deleted, but still in the pages: what a DELETE alone leaves
    before = g._conn.execute("SHOW maintenance_work_mem").fetchone()[0]
    report = reclaim_and_check(g._conn, tables, ["person5"], vectors)
    assert report["found_before_reclaim"] > 0 and len(report["reclaimed"]) == 2
    assert report["maintenance_work_mem"] == "64MB"  # 64 MB + 1.5 x a few kB, then back to the setting before
    assert g._conn.execute("SHOW maintenance_work_mem").fetchone()[0] == before
    files = report["relation_files"]
    assert files["checked"] and files["files"] >= 4 and files["bytes"] > 0 and not files["unreadable"]
    assert files["name_hits"] == 0 and files["vector_hits"] == 0
    assert report["wal"]["checked"] and report["wal"]["name_hits"] > 0  # honest: the log still has them
    assert any("WAL" in note for note in report["beyond_reach"])
    assert g.people().get("person4") == 6  # the others are intact
    g.close()


def test_index_builds_get_the_memory_their_graph_needs_within_the_cap(pg, monkeypatch):
    """pgvector builds HNSW graphs in maintenance_work_mem (slowly on disk beyond it): facerec
    raises it for a build, by the tables' size, never above FACEREC_PG_BUILD_MEMORY, never lower."""
    from gallery.pg_tuning import raise_for_build

    url, name = pg
    g = PostgresGallery.create(url, name, DIM, "m1")
    _fill(g)
    tables = [f"{name}__people", f"{name}__vectors", "no_such_table"]
    conn = g._conn
    size = conn.execute("SELECT pg_table_size(%s) + pg_table_size(%s)", tables[:2]).fetchone()[0]
    conn.execute("SET maintenance_work_mem = '1MB'")
    with conn.transaction():
        assert raise_for_build(conn, tables, local=True) == int(size * 1.5) + (64 << 20)
        setting = "SELECT pg_size_bytes(current_setting('maintenance_work_mem'))"
        assert conn.execute(setting).fetchone()[0] == (int(size * 1.5) + (64 << 20)) >> 10 << 10
    assert conn.execute("SHOW maintenance_work_mem").fetchone()[0] == "1MB"  # local: the transaction's only
    monkeypatch.setenv("FACEREC_PG_BUILD_MEMORY", "10MB")
    assert raise_for_build(conn, tables, local=False) == 10 << 20
    conn.execute("SET maintenance_work_mem = '1GB'")
    assert raise_for_build(conn, tables, local=False) is None  # never lowered
    monkeypatch.setenv("FACEREC_PG_BUILD_MEMORY", "lots")
    with pytest.raises(GalleryError, match="FACEREC_PG_BUILD_MEMORY must be a size"):
        raise_for_build(conn, tables, local=False)
    g.close()


def test_a_staging_gallery_is_indexed_when_swapped_in(pg):
    import psycopg

    from gallery.postgres import swap

    url, name = pg
    live = PostgresGallery.create(url, name, DIM, "m1")
    _fill(live, people=3)
    live.close()
    staging = PostgresGallery.create(url, name + "_s", DIM, "m2", index_kind="deferred")
    [staging.add(f"p{p}", _unit(4, 50 + p), image_hashes=[f"x{p}{i}" for i in range(4)],
                                 sources=["t"] * 4, model_version="m2") for p in range(5)]
    staging.save()
    assert staging.search(_unit(1, 51), k=1)[0][0].identity == "p1"  # no index yet: an exact scan
    staging.close()
    swap(url, name + "_s", name)
    with PostgresGallery.open(url, name) as g:
        assert g.model_version == "m2" and g.index_kind == "hnsw" and set(g.people()) == {f"p{p}" for p in range(5)}
        assert g.search(_unit(1, 52), k=1)[0][0].identity == "p2"
    with psycopg.connect(url) as conn:
        methods = [r[0] for r in conn.execute("SELECT am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                              "JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = ANY(%s::regclass[])",
                                              ([f'"{name}__vectors"', f'"{name}__people"'],))]
        assert methods.count("hnsw") == 2
        assert conn.execute("SELECT count(*) FROM facerec_galleries WHERE name = %s", (name + "_s",)).fetchone()[0] == 0
