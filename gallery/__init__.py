"""FAISS face gallery: cosine search with stable ids, true deletion, SQLite metadata.

Knows numpy and faiss only (and the standard library); embeddings come from the caller.
"""

from .gallery import Gallery as Gallery
from .errors import GalleryCorrupt as GalleryCorrupt
from .errors import GalleryError as GalleryError
from .errors import GalleryWriteError as GalleryWriteError
from .search import Match as Match
from .gallery import stored_image_hashes as stored_image_hashes

__all__ = ["Gallery", "GalleryCorrupt", "GalleryError", "GalleryWriteError", "Match", "stored_image_hashes"]
