"""FAISS face gallery: cosine search with stable ids, true deletion, SQLite metadata.

Knows numpy and faiss only (and the standard library); embeddings come from the caller.
"""

from .gallery import Gallery as Gallery
from .gallery import GalleryCorrupt as GalleryCorrupt
from .gallery import GalleryError as GalleryError
from .gallery import Match as Match

__all__ = ["Gallery", "GalleryCorrupt", "GalleryError", "Match"]
