"""What every gallery store shares: a match, the vectors' check and normalisation, and the 1:N
people search built on a store's image search (``search(queries, k)`` and ``len``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GalleryError


@dataclass(frozen=True)
class Match:
    identity: str
    score: float  # cosine similarity in [-1, 1]
    vector_id: int  # the matched vector's id, or the person id for template matches


def normalise(vectors: np.ndarray, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    if vectors.shape[1] != dim:
        raise GalleryError(f"vectors have dimension {vectors.shape[1]}, the gallery holds {dim}")
    if not np.isfinite(vectors).all():
        raise GalleryError("vectors contain NaN or infinity")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms == 0).any():
        raise GalleryError("a zero vector cannot be normalised")
    return vectors / norms


class PeopleSearch:
    """What every store shares on top of its own ``dim``, ``model_version``, ``search`` and
    ``__len__``: the check of vectors to add, and ``search_people``."""

    def checked_vectors(self, vectors: np.ndarray, image_hashes: list[str], sources: list[str],
                        model_version: str) -> np.ndarray:
        """``vectors`` normalised, once they are of this gallery's model and dimension, with one
        image hash and one source each; else GalleryError."""
        if model_version != self.model_version:
            raise GalleryError(f"vectors from model {model_version} cannot join a gallery of model "
                               f"{self.model_version}; re-embed the gallery first")
        vectors = normalise(vectors, self.dim)
        if not (len(vectors) == len(image_hashes) == len(sources)):
            raise GalleryError("one image hash and one source are needed per vector")
        return vectors

    def search_people(self, queries: np.ndarray, k: int = 1, exclude=frozenset()) -> list[list[Match]]:
        """Per query, the ``k`` best distinct people, each scored by their best-matching image and
        none of them in ``exclude``: the one 1:N search recognize, evaluation, calibration and the
        forget report share. Searches a window of images that widens until it holds ``k`` people
        (or the whole gallery), so a person with many images cannot hide the runner-up."""
        queries = normalise(queries, self.dim)
        out: list[list[Match]] = [[] for _ in range(len(queries))]
        pending, window, size = np.arange(len(queries)), max(10 * k, 10), len(self)
        while len(pending) and size:
            window = min(window, size)
            rows = self.search(queries[pending], k=window)
            unfinished = []
            for q, row in zip(pending, rows):
                best: dict[str, Match] = {}
                for m in row:
                    if m.identity not in exclude:
                        best.setdefault(m.identity, m)
                out[q] = list(best.values())[:k]
                if len(out[q]) < k and window < size:
                    unfinished.append(q)
            pending, window = np.array(unfinished, dtype=int), window * 4
        return out
