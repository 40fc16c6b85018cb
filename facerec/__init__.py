"""facerec: face recognition that can forget.

A face ViT (timm) with CosFace/ArcFace training, a FAISS gallery, and GS-LoRA continual
forgetting. The Python API (``facerec.public``, loaded on first use so ``import facerec`` stays
fast): ``open_workspace``, ``enroll``, ``recognize``, ``verify``, ``embed``, ``people``, ``remove``,
``calibrate``, ``forget``, their result dataclasses, and ``Session`` (a workspace kept open across
calls, which the CLI and the server are built on). The command line is ``facerec.cli``;
docs/ARCHITECTURE.md has the layers.
"""

import os

__version__ = "0.1.0"

# OpenCV's own decoder size check, a backstop behind facerec.data.images' header checks (same
# limit as its MAX_PIXELS); OpenCV reads it once, at its first decode, so it is set on import.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "40000000")

__all__ = ["open_workspace", "enroll", "recognize", "verify", "embed", "people", "remove", "calibrate", "forget",
           "to_dict", "Session", "Recognition", "WorkspaceInfo", "Enrollment", "ImageResult", "Face", "Match", "Verification", "FaceRecError"]


def __getattr__(name: str):  # PEP 562: the API's modules (torch, the model) load on first use
    if name == "FaceRecError":
        from facerec.core.errors import FaceRecError

        return FaceRecError
    if name in __all__:
        from facerec import public

        return getattr(public, name)
    raise AttributeError(f"module 'facerec' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
