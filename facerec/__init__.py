"""facerec: face recognition that can forget.

A face ViT (timm) with CosFace/ArcFace training, a FAISS gallery, and GS-LoRA continual
forgetting. The command line lives in ``facerec.cli``; this package is the library under it.
"""

import os

__version__ = "0.1.0"

# OpenCV's own decoder size check, a backstop behind facerec.data.images' header checks (same
# limit as its MAX_PIXELS); OpenCV reads it once, at its first decode, so it is set on import.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "40000000")
