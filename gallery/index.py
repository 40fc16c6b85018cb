"""FAISS index construction and deletion for cosine search; the only module that imports faiss.

Cosine similarity is the inner product of L2-normalised vectors, so every index here uses
``METRIC_INNER_PRODUCT``. Two kinds, chosen by gallery size:

- ``flat``: ``IndexIDMap2(IndexFlatIP)`` — exact, needs no training; ``remove_ids`` compacts the
  array (O(n) per delete, fine below ~1e5 vectors).
- ``ivf``: :class:`RefinedIVF` — approximate. Candidates come from an IVF index of 4-bit PQ
  codes scanned with SIMD ("fast scan", 64 bytes per 512-d vector; ``nprobe`` of ``nlist`` cells),
  and are re-scored exactly against the float vectors kept in an ``IndexIVFFlat`` with a
  hash-table direct map, so returned scores are true cosines (thresholds stay meaningful) and the
  ranking among close candidates is exact. Deleting removes the vectors from both indexes:
  through the direct map in the float store (microseconds) and by a scan of the compact code
  lists in the PQ index (milliseconds at 1e6). Unlike HNSW, whose graphs cannot drop vectors, the
  removed vectors are really gone.
"""

from __future__ import annotations

import math
import struct

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


def make_ivf(train_vectors: np.ndarray, nlist: int | None = None, nprobe: int | None = None,
             seed: int = 0) -> "RefinedIVF":
    """A :class:`RefinedIVF` trained on ``train_vectors`` ``(n, d)`` (k-means on at most 64 per cell)."""
    train_vectors = np.ascontiguousarray(train_vectors, dtype=np.float32)
    n, dim = train_vectors.shape
    nlist = nlist or default_nlist(n)
    exact = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    exact.cp.seed, exact.cp.max_points_per_centroid = seed, 64
    exact.train(train_vectors)
    exact.set_direct_map_type(faiss.DirectMap.Hashtable)
    # The PQ index reuses the trained cells, so only its codebooks are learnt (on residuals).
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(exact.quantizer.reconstruct_n(0, nlist))
    fast = faiss.IndexIVFPQFastScan(quantizer, dim, nlist, _pq_subquantizers(dim), 4, faiss.METRIC_INNER_PRODUCT)
    fast.pq.cp.seed = seed
    fast.train(train_vectors)
    index = RefinedIVF(exact, fast)
    index.nprobe = nprobe or max(1, nlist // 16)
    return index


def _pq_subquantizers(dim: int) -> int:
    """One 4-bit sub-quantizer per 8 dimensions (64 bytes for 512-d): compact yet ranks well."""
    return dim // 8 if dim % 8 == 0 and dim >= 16 else dim


class RefinedIVF:
    """Approximate cosine search: PQ fast-scan candidates, re-scored with the exact float vectors.

    Quacks like the faiss indexes used here (``d``, ``ntotal``, ``add_with_ids``, ``remove_ids``,
    ``search``, ``reconstruct``). ``rerank`` candidates per query are re-scored; PQ ranks the
    true neighbour among them reliably because a matching face stands far above the rest.
    """

    def __init__(self, exact: faiss.IndexIVFFlat, fast: faiss.Index, rerank: int = 16):
        self.exact, self.fast, self.rerank = exact, fast, rerank

    d = property(lambda self: self.exact.d)
    ntotal = property(lambda self: self.exact.ntotal)
    nlist = property(lambda self: self.exact.nlist)

    @property
    def nprobe(self) -> int:
        return self.fast.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.fast.nprobe = self.exact.nprobe = int(value)

    def add_with_ids(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.exact.add_with_ids(vectors, ids)
        self.fast.add_with_ids(vectors, ids)

    def remove_ids(self, selector, ids: np.ndarray | None = None) -> int:
        lists = {faiss.lo_listno(self.exact.direct_map.get(int(i))) for i in ids if self._has(i)} if ids is not None else None
        removed = self.exact.remove_ids(selector)
        if removed:
            self.fast.remove_ids(selector)
            self._scrub_block_tails(lists if lists is not None else range(self.nlist))
        return removed

    def _has(self, i) -> bool:
        try:
            self.exact.direct_map.get(int(i))
            return True
        except RuntimeError:
            return False

    def _scrub_block_tails(self, lists) -> None:
        """Zero the unused slots of each list's last code block.

        Fast-scan lists are stored in blocks of 32 codes; removing a list's last entry only
        shortens the list, leaving its code in the block, where it would be saved with the index.
        A removed person must not survive even as a 4-bit code.
        """
        invlists = faiss.downcast_InvertedLists(self.fast.invlists)
        packer, per_block, block_bytes = invlists.packer, invlists.n_per_block, invlists.block_size
        zero = np.zeros(packer.code_size, np.uint8)
        for list_no in lists:
            size = invlists.list_size(list_no)
            padded = -(-size // per_block) * per_block
            if padded == size:
                continue
            blocks = faiss.rev_swig_ptr(invlists.get_codes(list_no), padded // per_block * block_bytes)
            blocks = blocks.reshape(-1, block_bytes)  # (blocks, bytes per block): a view, writes reach the index
            for slot in range(size, padded):
                packer.pack_1(zero, slot, blocks)

    def reconstruct(self, i: int) -> np.ndarray:
        return self.exact.reconstruct(i)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(queries)
        _, candidates = self.fast.search(queries, max(k, self.rerank))  # (n, c), -1 where fewer
        valid = candidates >= 0
        if not valid.any():
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        unique, inverse = np.unique(candidates[valid], return_inverse=True)
        stored = self.exact.reconstruct_batch(unique)  # (u, d)
        scores = np.full(candidates.shape, -np.inf, np.float32)
        scores[valid] = np.einsum("cd,cd->c", stored[inverse], np.repeat(queries, valid.sum(1), axis=0))
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # best first
        top_scores = np.take_along_axis(scores, order, 1)
        top_ids = np.where(np.isfinite(top_scores), np.take_along_axis(candidates, order, 1), -1)
        if top_scores.shape[1] < k:  # fewer candidates than k: pad like faiss does
            pad = k - top_scores.shape[1]
            top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            top_ids = np.pad(top_ids, ((0, 0), (0, pad)), constant_values=-1)
        return top_scores, top_ids


def index_kind(index) -> str:
    if isinstance(index, RefinedIVF):
        return "ivf"
    return "ivf" if isinstance(faiss.downcast_index(index), faiss.IndexIVF) else "flat"


def remove(index: faiss.Index, ids: np.ndarray) -> int:
    """Remove ``ids`` from ``index``; returns how many were removed."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return 0
    # A hash-table direct map removes only through an IDSelectorArray; the ID map accepts either.
    selector = faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))
    if isinstance(index, RefinedIVF):
        return index.remove_ids(selector, ids)
    return int(index.remove_ids(selector))


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, ids)`` of the ``k`` nearest vectors; missing neighbours have id -1."""
    if index.ntotal == 0:
        n = len(queries)
        return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def reconstruct(index: faiss.Index, ids: np.ndarray) -> np.ndarray:
    """The stored vectors of ``ids`` ``(n, d)``."""
    if isinstance(index, RefinedIVF):
        index = index.exact
    if not len(ids):
        return np.zeros((0, index.d), np.float32)
    return index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))


def stored_ids(index) -> np.ndarray:
    """The ids ``index`` holds, sorted (every copy of a :class:`RefinedIVF`'s vectors counted once
    per index: its two indexes must hold the same ids)."""
    if isinstance(index, RefinedIVF):
        exact, fast = _ivf_ids(index.exact), _ivf_ids(index.fast)
        return exact if np.array_equal(exact, fast) else np.concatenate([exact, fast])
    if hasattr(index, "id_map"):
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    return _ivf_ids(faiss.downcast_index(index))


def _ivf_ids(index) -> np.ndarray:
    invlists = index.invlists
    parts = [faiss.rev_swig_ptr(invlists.get_ids(k), invlists.list_size(k)).copy()
             for k in range(index.nlist) if invlists.list_size(k)]
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, np.int64)


_REFINED_MAGIC = b"facerec-refined-ivf\n"


def write(index, path: str) -> None:
    """One file per index; a :class:`RefinedIVF` is its two faiss serialisations behind a header."""
    if not isinstance(index, RefinedIVF):
        faiss.write_index(index, path)
        return
    exact, fast = faiss.serialize_index(index.exact), faiss.serialize_index(index.fast)
    with open(path, "wb") as f:
        f.write(_REFINED_MAGIC + struct.pack("<QQI", exact.nbytes, fast.nbytes, index.rerank))
        f.write(memoryview(exact))
        f.write(memoryview(fast))


def read(path: str):
    with open(path, "rb") as f:
        if f.read(len(_REFINED_MAGIC)) != _REFINED_MAGIC:
            return faiss.read_index(path)
        n_exact, n_fast, rerank = struct.unpack("<QQI", f.read(20))
        exact = faiss.deserialize_index(np.frombuffer(f.read(n_exact), dtype=np.uint8))
        fast = faiss.deserialize_index(np.frombuffer(f.read(n_fast), dtype=np.uint8))
    return RefinedIVF(exact, fast, rerank)  # deserialize_index already gives the concrete types
