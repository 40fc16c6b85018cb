"""facerec: face recognition that can forget.

A face ViT (timm) with CosFace/ArcFace training, a FAISS gallery, and GS-LoRA continual
forgetting. The command line lives in ``facerec.cli``; this package is the library under it.
"""

__version__ = "0.1.0"
