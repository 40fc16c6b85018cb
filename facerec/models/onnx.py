"""Face models as ONNX: export facerec's embedding model, and use any ArcFace-layout ONNX model.

The exported file follows insightface's recognition-model convention, so
``insightface.model_zoo.get_model(path)`` loads it as an ``ArcFaceONNX`` and onnxruntime runs it:
one input ``(N, 3, 112, 112)`` float32, RGB, normalised as ``(pixel - 127.5) / 127.5`` (exactly
facerec's own ``to_tensor``), one output ``(N, D)``: facerec's ``embed()``, already L2-normalised.
insightface decides the normalisation by looking for ``Sub``/``Mul`` nodes among the first eight
of the graph (models that normalise inside take raw pixels); the export checks that it has none,
so insightface feeds it the normalisation above.

:class:`OnnxEmbedder` runs such a file (facerec's export, or an insightface model such as
``w600k_r50.onnx``) in place of the workspace's model for enroll / recognize / verify / eval,
with the same rule for the normalisation. The TorchScript-based exporter is used
(``dynamo=False``): it needs no extra package and folds the conv stem's batch norms.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from facerec import __version__
from facerec.core.errors import FaceRecError

INPUT, OUTPUT = "input.1", "embedding"
OPSET = 17


def _normalisation(graph) -> tuple[float, float]:
    """``(mean, std)`` insightface's ``ArcFaceONNX`` applies for this graph (its own rule)."""
    names = [node.name for node in graph.node[:8]]
    inside = any(n.startswith(("Sub", "_minus")) for n in names) and any(n.startswith(("Mul", "_mul")) for n in names)
    return (0.0, 1.0) if inside else (127.5, 127.5)


def export_onnx(model, out: str | os.PathLike, *, model_version: str, model_name: str, opset: int = OPSET,
                check_batch: int = 8, seed: int = 0) -> dict:
    """Write ``model``'s embedding as ONNX to ``out`` (temporary file, then rename) and check it:
    onnxruntime on ``check_batch`` random inputs must agree with torch to cosine >= 0.999."""
    import onnx
    import torch

    from facerec.core.atomic import atomic_write_with

    class Embedding(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner.embed(x)

    wrapper = Embedding(model.cpu().eval()).eval()
    size = model.config.img_size
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))

    checks = {}

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (example,), tmp, dynamo=False, opset_version=opset, input_names=[INPUT],
                              output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        proto = onnx.load(tmp)
        if _normalisation(proto.graph) != (127.5, 127.5):
            raise FaceRecError("the exported graph starts with Sub/Mul nodes: insightface would not normalise its input")
        for key, value in {"facerec_version": __version__, "model_name": model_name, "model_version": model_version,
                           "input": f"(N, 3, {size}, {size}) float32 RGB, (pixel - 127.5) / 127.5",
                           "output": "L2-normalised face embedding"}.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        checks["cosine"], checks["version"] = _agreement(wrapper, tmp, check_batch, size, seed)
        if checks["cosine"] < 0.999:
            raise FaceRecError(f"the exported model disagrees with facerec's (cosine {checks['cosine']:.5f} < 0.999)")

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise FaceRecError(f"{out}: the file name must end in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(out, write)
    return {"onnx": str(out), "bytes": out.stat().st_size, "model": model_name, "model_version": model_version,
            "embedding_dim": int(model.embedding_dim), "input": [None, 3, size, size], "opset": opset,
            "check_min_cosine": round(checks["cosine"], 6), "onnx_version": checks["version"]}


def _agreement(wrapper, path: str, batch: int, size: int, seed: int) -> tuple[float, str]:
    """``(lowest cosine between torch and onnxruntime on random crops, the file's OnnxEmbedder version)``."""
    import torch

    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    from facerec.data.transforms import to_tensor

    with torch.no_grad():
        expected = wrapper(to_tensor(crops)).numpy()
    embedder = OnnxEmbedder(path)
    return float(np.min(np.sum(expected * embedder.embed(crops), axis=1))), embedder.version


class OnnxEmbedder:
    """An ArcFace-layout ONNX recognition model run by onnxruntime: aligned RGB crops in, unit embeddings out."""

    def __init__(self, path: str | os.PathLike, normalisation: tuple[float, float] | None = None):
        """``normalisation``: the input's ``(mean, std)`` when known (facerec's own export), which
        spares reading the graph with the ``onnx`` package (0.7 s of import)."""
        import onnxruntime

        from facerec.data.images import read_file_bytes

        path = Path(path)
        data = read_file_bytes(path, limit=2 << 30, what="an ONNX model")
        try:
            if normalisation is None:
                import onnx

                graph = onnx.load_model_from_string(data).graph
            self.session = onnxruntime.InferenceSession(data, providers=_providers(onnxruntime))
        except Exception as err:  # protobuf and onnxruntime raise their own types for a bad file
            raise FaceRecError(f"{path}: not an ONNX model onnxruntime can run ({type(err).__name__})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or not isinstance(shape[2], int):
            raise FaceRecError(f"{path}: not a face recognition model (input {shape}; need (N, 3, S, S))")
        self.path, self.input_name, self.size = path, inputs[0].name, int(shape[2])
        self.batch = shape[0] if isinstance(shape[0], int) else None  # a fixed batch size, or any
        self.mean, self.std = normalisation or _normalisation(graph)
        self.embedding_dim = int(outputs[0].shape[-1])
        self.version = "onnx-" + hashlib.sha256(data).hexdigest()[:12]

    def embed(self, crops: np.ndarray | list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 RGB aligned crops -> ``(N, D)`` float32 unit embeddings."""
        crops = np.asarray(crops)
        if len(crops) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        if crops.shape[1:3] != (self.size, self.size):
            import cv2

            crops = np.stack([cv2.resize(c, (self.size, self.size), interpolation=cv2.INTER_AREA) for c in crops])
        step = self.batch or batch_size
        out = []
        for i in range(0, len(crops), step):
            x = (crops[i:i + step].astype(np.float32).transpose(0, 3, 1, 2) - self.mean) / self.std
            out.append(self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0])
        emb = np.concatenate(out).astype(np.float32).reshape(len(crops), -1)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _providers(onnxruntime) -> list[str]:
    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
