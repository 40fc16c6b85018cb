"""FAISS index construction and deletion for cosine search; the only module that imports faiss.

Cosine similarity is the inner product of L2-normalised vectors, so every index here uses
``METRIC_INNER_PRODUCT``. Two kinds, chosen by gallery size:

- ``flat``: ``IndexIDMap2(IndexFlatIP)`` — exact, needs no training; ``remove_ids`` compacts the
  array (O(n) per delete, fine below ~1e5 vectors).
- ``ivf``: ``IndexIVFFlat`` with a hash-table direct map — approximate (``nprobe`` of ``nlist``
  cells are scanned); ``remove_ids`` goes straight to the vectors' cells through the direct map,
  so deleting a person costs microseconds, not a rebuild. Unlike HNSW, whose graphs cannot drop
  vectors, the removed vectors are really gone from the index.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

EXACT_LIMIT = 50_000  # below this many vectors "auto" stays exact


def choose_kind(size: int) -> str:
    """``flat`` for small galleries, ``ivf`` once exact search gets slow."""
    return "flat" if size < EXACT_LIMIT else "ivf"


def default_nlist(size: int) -> int:
    """About sqrt(n) cells, at least 1 and at most n/39 so that k-means has 39 points per cell.

    faiss suggests 4-16·sqrt(n); sqrt(n) keeps k-means training to seconds on a 2-core CPU at 1e6
    vectors, and ``nprobe`` recovers the recall.
    """
    return max(1, min(int(math.sqrt(max(size, 1))), max(1, size // 39)))


def make_flat(dim: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def make_ivf(train_vectors: np.ndarray, nlist: int | None = None, nprobe: int | None = None, seed: int = 0) -> faiss.Index:
    """An IVF-Flat index trained on ``train_vectors`` ``(n, d)``, with a direct map for deletion."""
    n, dim = train_vectors.shape
    nlist = nlist or default_nlist(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(np.ascontiguousarray(train_vectors, dtype=np.float32))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.nprobe = nprobe or max(1, nlist // 16)
    return index


def index_kind(index: faiss.Index) -> str:
    return "ivf" if isinstance(faiss.downcast_index(index), faiss.IndexIVF) else "flat"


def remove(index: faiss.Index, ids: np.ndarray) -> int:
    """Remove ``ids`` from ``index``; returns how many were removed."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return 0
    # A hash-table direct map removes only through an IDSelectorArray; the ID map accepts either.
    return int(index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))))


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, ids)`` of the ``k`` nearest vectors; missing neighbours have id -1."""
    if index.ntotal == 0:
        n = len(queries)
        return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def reconstruct(index: faiss.Index, ids: np.ndarray) -> np.ndarray:
    """The stored vectors of ``ids`` ``(n, d)``."""
    return np.stack([index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, index.d), np.float32)


def write(index: faiss.Index, path: str) -> None:
    faiss.write_index(index, path)


def read(path: str) -> faiss.Index:
    return faiss.read_index(path)
