"""The teachers' embeddings of a crop store: training-time targets, never needed to run facerec.

- dlib's ResNet face descriptor (King, dlib 19.x; CC0; 99.38 % LFW per its authors): its 128-d
  descriptors of every LFW/ORL image are precomputed in ``../shared/teacher/*.npz`` from dlib's own
  HOG detection and 150x150 chips; they are looked up by relative path.
- OpenCV's SFace (Zhong et al., "SFace: Sigmoid-constrained hypersphere loss", 2021; Apache-2.0;
  128-d): run here on the store's own 112x112 five-point crops, which are exactly SFace's input
  (the ArcFace template), through facerec's torch port of the published file (``SFacePort``,
  batched, any device; cosine 1.000000 to ``cv2.FaceRecognizerSF``, which ``SFace`` wraps and
  the speed benchmark still times).

Targets are L2-normalised. ``combined`` concatenates the two unit vectors and renormalises, so its
cosine is the mean of the two teachers' cosines: an ensemble that is better than either alone.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facerec.core.errors import DataError


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def dlib_targets(paths: list[str], npz_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 128)`` unit dlib descriptors for ``paths`` and a mask of those the file holds."""
    with np.load(npz_path, allow_pickle=False) as data:
        index = {str(p): i for i, p in enumerate(data["paths"])}
        emb = data["emb"].astype(np.float32)
    rows = np.array([index.get(p, -1) for p in paths])
    have = rows >= 0
    out = np.zeros((len(paths), emb.shape[1]), np.float32)
    out[have] = _unit(emb[rows[have]])
    return out, have


class SFace:
    """OpenCV's SFace on aligned RGB crops (batch of one per call: the published graph's input)."""

    def __init__(self, model_path: str | Path):
        if not Path(model_path).is_file():
            raise DataError(f"SFace model {model_path} does not exist")
        self.net = cv2.FaceRecognizerSF.create(str(model_path), "")

    def embed(self, crops_rgb: np.ndarray, flip: bool = False, progress=None) -> np.ndarray:
        """``(N, 112, 112, 3)`` RGB crops -> ``(N, 128)`` unit embeddings (of the mirror with ``flip``)."""
        out = np.empty((len(crops_rgb), 128), np.float32)
        for i, crop in enumerate(crops_rgb):
            bgr = cv2.cvtColor(crop[:, ::-1] if flip else crop, cv2.COLOR_RGB2BGR)
            out[i] = self.net.feature(np.ascontiguousarray(bgr)).reshape(-1)
            if progress:
                progress(1)
        return _unit(out)


class SFacePort:
    """SFace through facerec's torch port (``sface_port``: cosine 1.000000 to OpenCV's own output on
    LFW crops), batched, on any device: ~1.4x OpenCV on 2 CPU cores, thousands of crops/s on a GPU."""

    def __init__(self, model_path: str | Path, device=None):
        import torch

        from .sface_port import load

        self.device = torch.device(device or "cpu")
        self.net = load(model_path).to(self.device, memory_format=torch.channels_last)

    def embed(self, crops_rgb: np.ndarray, flip: bool = False, progress=None, batch_size: int = 64) -> np.ndarray:
        """``(N, 112, 112, 3)`` RGB crops -> ``(N, 128)`` unit embeddings (of the mirror with ``flip``)."""
        import torch

        from ..data.transforms import to_tensor

        out = []
        with torch.inference_mode():
            for start in range(0, len(crops_rgb), batch_size):
                batch = crops_rgb[start:start + batch_size]
                x = to_tensor(batch[:, :, ::-1] if flip else batch).to(self.device, memory_format=torch.channels_last)
                out.append(self.net(x).float().cpu().numpy())
                if progress:
                    progress(len(batch))
        return _unit(np.concatenate(out)) if out else np.zeros((0, 128), np.float32)


def combined(*targets: np.ndarray) -> np.ndarray:
    """Concatenation of unit teacher embeddings, renormalised (cosine = mean of the teachers')."""
    return _unit(np.concatenate(targets, axis=1))
