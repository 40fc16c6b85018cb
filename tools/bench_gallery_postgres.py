"""pgvector HNSW against FAISS on the same galleries: recall@1, queries/s from 1 and 4 clients, the
enroll rate, and the time to forget one person (delete, then the reclaim an erasure needs).

Usage::

    python tools/bench_gallery_postgres.py --sizes 100000 --dims 256,512 [--queries 1000] [--json OUT]

Each configuration starts a throw-away PostgreSQL server (``facerec.testing.postgres``) and fills
a facerec gallery (``gallery.postgres``) with synthetic face-like vectors: one unit centre per
person and 10 images per person around it (cosine ~0.7 to the centre, as same-person embeddings
are), so nearest neighbours have the structure a face gallery has. The bulk is loaded with COPY
and the HNSW index built afterwards (as pgvector advises); the enroll rate is then measured through
facerec's own ``PostgresGallery.add``, one person and one commit at a time, into the indexed gallery.
Queries are fresh images of enrolled people; recall@1 is against exact search (FAISS ``IndexFlatIP``)
on the same vectors: the same image as the exact top-1 (``recall_at_1``) and the same person
(``identity_recall_at_1``, what recognition answers). FAISS is facerec's embedded gallery (``gallery.Gallery``, IVF at these sizes).
Forgetting one person: ``remove_person`` + commit, then facerec's erasure check
(``gallery.pg_erasure.reclaim_and_check``: checkpoint, scan of the gallery's files, ``VACUUM FULL``
of both tables where the person's bytes are found, scan again), for PostgreSQL; remove + save (which
rewrites the index files) for FAISS. HNSW builds get ``maintenance_work_mem`` as facerec sets it
(``gallery.pg_tuning``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PER_PERSON = 10


def synthetic(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(vectors (n, dim), person of each, queries, person of each query)``."""
    rng = np.random.default_rng(seed)
    people = n // PER_PERSON
    centres = rng.standard_normal((people, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def around(who: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal((len(who), dim)).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        v = centres[who] + 1.0 * noise  # cosine to the centre ~0.7
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    owner = np.repeat(np.arange(people), PER_PERSON)
    vectors = np.concatenate([around(owner[i:i + 100_000]) for i in range(0, n, 100_000)])
    asked = rng.integers(0, people, 1000)
    return vectors, owner, around(asked), asked


def load(url: str, name: str, vectors: np.ndarray, owner: np.ndarray) -> dict:
    """COPY the people and vectors in, then build the HNSW indexes; returns the timings."""
    import psycopg
    from pgvector.psycopg import register_vector

    from gallery.pg_tuning import raise_for_build
    from gallery.postgres import PostgresGallery

    PostgresGallery.create(url, name, vectors.shape[1], "bench", index_kind="exact").close()
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        register_vector(conn)
        with conn.cursor().copy(f'COPY "{name}__people" (person_id, name) FROM STDIN') as copy:
            for p in range(int(owner.max()) + 1):
                copy.write_row((p + 1, f"person{p:07d}"))
        with conn.cursor().copy(f'COPY "{name}__vectors" (person_id, image_hash, source, model_version, embedding) '
                                "FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["bigint", "text", "text", "text", "vector"])
            for i, (v, p) in enumerate(zip(vectors, owner)):
                copy.write_row((int(p) + 1, f"{i:016x}", "bench", "bench", v))
        conn.execute(f"SELECT setval(pg_get_serial_sequence('\"{name}__people\"', 'person_id'), {int(owner.max()) + 1})")
        conn.commit()
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        raise_for_build(conn, [f"{name}__vectors", f"{name}__people"], local=False)  # as a forget's swap does
        conn.execute(f'CREATE INDEX ON "{name}__vectors" USING hnsw (embedding vector_ip_ops)')
        conn.execute(f'CREATE INDEX ON "{name}__people" USING hnsw (template vector_ip_ops)')
        conn.execute("UPDATE facerec_galleries SET index_kind = 'hnsw' WHERE name = %s", (name,))
        conn.execute(f'VACUUM ANALYZE "{name}__vectors"')
    return {"copy_seconds": round(loaded, 1), "hnsw_build_seconds": round(time.perf_counter() - t0, 1)}


_OPEN = {}  # the gallery each client process opened once


def _open_client(kind: str, where: tuple) -> None:
    if kind == "postgresql":
        from gallery.postgres import PostgresGallery

        _OPEN["g"] = PostgresGallery.open(*where, read_only=True)
    else:
        import faiss

        from gallery import Gallery

        faiss.omp_set_num_threads(1)  # one query at a time: threads only spin against the other clients
        _OPEN["g"] = Gallery.open(*where, read_only=True)


def _client(queries: np.ndarray) -> int:
    for q in queries:
        _OPEN["g"].search(q[None], k=1)
    return len(queries)


def query_rate(kind: str, where: tuple, queries: np.ndarray, clients: int) -> float:
    """Queries per second, one query at a time, from ``clients`` processes that each opened the
    gallery once (their own connection, or their own read-only copy of the FAISS gallery)."""
    parts = np.array_split(queries, clients)
    with multiprocessing.get_context("spawn").Pool(clients, _open_client, (kind, where)) as pool:
        pool.map(_client, [p[:5] for p in parts], chunksize=1)  # warm: imports, first pages
        t0 = time.perf_counter()
        pool.map(_client, parts, chunksize=1)
        return len(queries) / (time.perf_counter() - t0)


def enroll_rate(gallery, dim: int, people: int) -> float:
    """Vectors per second through ``gallery.add`` + ``save``, one person (10 images) per commit."""
    rng = np.random.default_rng(99)
    t0 = time.perf_counter()
    for p in range(people):
        v = rng.standard_normal((PER_PERSON, dim)).astype(np.float32)
        gallery.add(f"newcomer{p:05d}", v, image_hashes=[f"n{p}-{i}" for i in range(PER_PERSON)],
                    sources=["bench"] * PER_PERSON, model_version=gallery.model_version)
        gallery.save()
    return people * PER_PERSON / (time.perf_counter() - t0)


def faiss_side(vectors, owner, queries, truth, dim, folder: Path, enroll_people: int) -> dict:
    from gallery import Gallery

    g = Gallery.create(folder / "g", dim, "bench")
    t0 = time.perf_counter()
    for start in range(0, len(vectors), 100_000):
        part = slice(start, start + 100_000)
        for p in np.unique(owner[part]):
            idx = np.arange(part.start, min(part.stop, len(vectors)))[owner[part] == p]
            g.add(f"person{p:07d}", vectors[idx], image_hashes=[f"{i:016x}" for i in idx], sources=["bench"] * len(idx),
                  model_version="bench")
    g.save()
    bulk = time.perf_counter() - t0
    found = np.asarray([m[0].vector_id - 1 for m in g.search(queries, k=1)])  # ids count from 1 in insertion order
    recall = float(np.mean(found == truth))
    identity = float(np.mean(owner[found] == owner[truth]))
    kind = g.index_kind + "/" + type(g._vectors).__name__
    g.close()  # the clients hold their own copies: at 1M x 512-d four of them take ~16 GB
    single = query_rate("faiss", (str(folder / "g"),), queries, 1)
    four = query_rate("faiss", (str(folder / "g"),), queries, 4)
    g = Gallery.open(folder / "g")
    rate = enroll_rate(g, dim, enroll_people)
    t0 = time.perf_counter()
    g.remove_person("person0000000")
    g.save()
    forget = time.perf_counter() - t0
    g.close()
    return {"index": kind, "bulk_enroll_seconds": round(bulk, 1), "recall_at_1": recall,
            "identity_recall_at_1": identity, "qps_1_client": round(single),
            "qps_4_clients": round(four), "enroll_vectors_per_s": round(rate), "forget_seconds": round(forget, 2)}


def sweep(g, queries, truth, owner) -> list[dict]:
    """Recall and one-client rate at several ``hnsw.ef_search`` (300 queries each)."""
    rows = []
    for ef in (100, 200, 400, 800):
        g._conn.execute(f"SET hnsw.ef_search = {ef}")
        g.ef_search = ef
        t0 = time.perf_counter()
        found = np.asarray([g.search(q[None], k=1)[0][0].vector_id - 1 for q in queries])
        rows.append({"ef_search": ef, "recall_at_1": float(np.mean(found == truth)),
                     "identity_recall_at_1": float(np.mean(owner[found] == owner[truth])),
                     "qps_1_client": round(len(queries) / (time.perf_counter() - t0), 1)})
    return rows


def postgres_side(url, vectors, owner, queries, truth, dim, enroll_people: int, exact_queries: int,
                  ef_sweep: bool = False, skip_reclaim: bool = False) -> dict:
    from gallery.pg_erasure import reclaim_and_check
    from gallery.postgres import PostgresGallery

    name = f"bench{dim}"
    out = load(url, name, vectors, owner)
    g = PostgresGallery.open(url, name)
    out["ef_search"] = g.ef_search  # facerec's, for this size (gallery.pg_tuning.ef_search_for)
    found = np.asarray([m[0].vector_id - 1 for m in g.search(queries, k=1)])  # COPY gave ids 1..n in order
    out["recall_at_1"] = float(np.mean(found == truth))
    out["identity_recall_at_1"] = float(np.mean(owner[found] == owner[truth]))
    found = [m[0].vector_id - 1 for m in g.search(queries[:exact_queries], k=1, exact=True)]
    out["recall_at_1_exact_scan"] = float(np.mean(np.asarray(found) == truth[:exact_queries]))
    out["qps_1_client"] = round(query_rate("postgresql", (url, name), queries, 1))
    out["qps_4_clients"] = round(query_rate("postgresql", (url, name), queries, 4))
    t0 = time.perf_counter()
    for q in queries[:exact_queries]:
        g.search(q[None], k=1, exact=True)
    out["qps_exact_scan"] = round(exact_queries / (time.perf_counter() - t0), 2)
    out["enroll_vectors_per_s"] = round(enroll_rate(g, dim, enroll_people))
    t0 = time.perf_counter()
    g.remove_person("person0000000")
    g.save()
    out["forget_delete_seconds"] = round(time.perf_counter() - t0, 2)
    if ef_sweep:
        out["ef_sweep"] = sweep(g, queries[:300], truth[:300], owner)
    if skip_reclaim:
        g.close()
        return out
    t0 = time.perf_counter()  # what facerec's erasure check does after a remove: checkpoint, scan, rewrite, scan
    report = reclaim_and_check(g._conn, [f"{name}__people", f"{name}__vectors"], ["person0000000"], vectors[owner == 0])
    out["forget_reclaim_seconds"] = round(time.perf_counter() - t0, 1)
    out["reclaim"] = {"rewritten": report["reclaimed"], "memory": report.get("maintenance_work_mem"),
                      "found_before": report["found_before_reclaim"],
                      "found_after": report["relation_files"]["name_hits"] + report["relation_files"]["vector_hits"]}
    g.close()
    return out


def run(size: int, dim: int, queries_n: int, enroll_people: int, exact_queries: int, ef_sweep: bool = False,
        skip_reclaim: bool = False) -> dict:
    import faiss

    from facerec.testing.postgres import ThrowawayPostgres

    vectors, owner, queries, _ = synthetic(size, dim, seed=size + dim)
    queries = queries[:queries_n]
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    truth = exact.search(queries, 1)[1][:, 0]
    del exact
    result = {"size": size, "dim": dim, "queries": len(queries)}
    with tempfile.TemporaryDirectory() as folder:
        result["faiss"] = faiss_side(vectors, owner, queries, truth, dim, Path(folder), enroll_people)
    server = ThrowawayPostgres(settings={"shared_buffers": "4GB", "max_wal_size": "8GB"})
    server.start()
    try:
        result["postgresql"] = postgres_side(server.url, vectors, owner, queries, truth, dim, enroll_people,
                                             exact_queries, ef_sweep, skip_reclaim)
    finally:
        server.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--dims", default="256,512")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--enroll-people", type=int, default=100, help="people (10 images, one commit each) "
                        "added to measure the enroll rate")
    parser.add_argument("--exact-queries", type=int, default=100, help="queries answered by an exact scan")
    parser.add_argument("--ef-sweep", action="store_true", help="also measure hnsw.ef_search 100, 200, 400, 800")
    parser.add_argument("--skip-reclaim", action="store_true", help="leave out the VACUUM FULL of the forget")
    parser.add_argument("--json", default=None, help="append each configuration's result to this JSON-lines file")
    args = parser.parse_args()
    for size in map(int, args.sizes.split(",")):
        for dim in map(int, args.dims.split(",")):
            result = run(size, dim, args.queries, args.enroll_people, args.exact_queries, args.ef_sweep,
                         args.skip_reclaim)
            print(json.dumps(result), flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
