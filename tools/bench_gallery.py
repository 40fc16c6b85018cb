"""Gallery benchmark: exact vs approximate cosine search, and deleting one person, at several sizes.

Database: random unit vectors (d = 512) in "people" of 10 images. Queries: 1,000 noisy copies of
database vectors at a set cosine to their source (``--query-cos``, default 0.9: a new photo of an
enrolled face under a good model); ground truth is exact search. The approximate index is the
gallery's own (``gallery.index.make_ivf``: IVF-PQ fast scan, re-scored exactly); the smallest
nprobe reaching the target recall@1 is reported. Deleting a person is timed on both indexes.

    python tools/bench_gallery.py --sizes 10000 100000 1000000 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gallery import index as fx  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed_search(index, queries, k=1, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        _, ids = fx.search(index, queries, k)
        best = min(best, time.perf_counter() - t)
    return ids[:, 0], len(queries) / best


def delete_person_ms(index, ids_of_person: np.ndarray) -> float:
    t = time.perf_counter()
    assert fx.remove(index, ids_of_person) == len(ids_of_person)
    return (time.perf_counter() - t) * 1000


def noisy_copies(sources: np.ndarray, cos: float, rng) -> np.ndarray:
    """Unit vectors at cosine ``cos`` to each unit source: cos·x + sin·(a unit direction ⟂ x)."""
    noise = rng.standard_normal(sources.shape, dtype=np.float32)
    noise -= (noise * sources).sum(1, keepdims=True) * sources  # remove the component along x
    return unit(cos * sources + np.sqrt(1 - cos ** 2) * unit(noise)).astype(np.float32)


def bench(size: int, dim: int, queries: int, target: float, seed: int, query_cos: float = 0.9) -> dict:
    rng = np.random.default_rng(seed)
    db = unit(rng.standard_normal((size, dim), dtype=np.float32))
    ids = np.arange(size, dtype=np.int64)
    src = rng.choice(size, queries, replace=False)
    q = noisy_copies(db[src], query_cos, rng)

    flat = fx.make_flat(dim)
    flat.add_with_ids(db, ids)
    truth, exact_qps = timed_search(flat, q)

    t = time.perf_counter()
    ivf = fx.make_ivf(db, seed=seed)
    ivf.add_with_ids(db, ids)
    build_s = time.perf_counter() - t
    chosen = None
    for nprobe in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        if nprobe > ivf.nlist:
            break
        ivf.nprobe = nprobe
        found, qps = timed_search(ivf, q)
        recall = float((found == truth).mean())
        chosen = {"nprobe": nprobe, "qps": qps, "recall_at_1": recall}
        if recall >= target:
            break
    ivf.nprobe = chosen["nprobe"]
    person = ids[(size // 2) // 10 * 10:][:10]  # one person's 10 vectors from the middle
    return {
        "size": size, "dim": dim, "queries": queries, "query_cos": query_cos,
        "exact_qps": round(exact_qps, 1),
        "ivf_nlist": int(ivf.nlist), "ivf_nprobe": chosen["nprobe"], "ivf_qps": round(chosen["qps"], 1),
        "ivf_recall_at_1": chosen["recall_at_1"], "speedup": round(chosen["qps"] / exact_qps, 1),
        "ivf_build_s": round(build_s, 1),
        "delete_person_ms_exact": round(delete_person_ms(flat, person), 2),
        "delete_person_ms_ivf": round(delete_person_ms(ivf, person), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--target-recall", type=float, default=0.98)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query-cos", type=float, default=0.9, help="cosine of each query to its source vector")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        row = bench(size, args.dim, args.queries, args.target_recall, args.seed, args.query_cos)
        rows.append(row)
        if not args.json:
            print(f"n={row['size']:>9,}  exact {row['exact_qps']:>9.1f} q/s | IVF nlist {row['ivf_nlist']} nprobe "
                  f"{row['ivf_nprobe']}: {row['ivf_qps']:>9.1f} q/s, recall@1 {row['ivf_recall_at_1']:.3f}, "
                  f"x{row['speedup']} | delete one person: exact {row['delete_person_ms_exact']} ms, "
                  f"IVF {row['delete_person_ms_ivf']} ms", flush=True)
    if args.json:
        print(json.dumps({"results": rows}, indent=2))


if __name__ == "__main__":
    main()
