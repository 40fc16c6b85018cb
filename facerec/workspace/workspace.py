"""The workspace: one directory holding everything later commands need.

Layout (format version 1)::

    WORKSPACE/
      workspace.json             the manifest: format version, model name + config + weights file +
                                 version, the ordered identity list (= head rows), the split, the
                                 data source and the training record
      models/<version>.safetensors   weights, named by the hash of their content
      train-state.pt             resume checkpoint while a training run is unfinished

The manifest is the commit point. New weights are written under their own content-addressed name
first, then the manifest is replaced atomically; only then are unreferenced weight files removed.
A crash at any moment therefore leaves the workspace on the old model or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from facerec import __version__
from facerec.data.images import read_file_bytes
from facerec.core.errors import DataError, WorkspaceError
from facerec.core.atomic import atomic_write_json, atomic_write_with
from facerec.models.checked import load_checked_model, weights_version
from facerec.workspace.manifest import check_manifest
from facerec.data.split import Split

if TYPE_CHECKING:  # torch and the model code load when a model is read or written, not to list people
    import torch

    from facerec.models import FaceViT

FORMAT_VERSION = 2  # 2: identities may hold null for forgotten head rows, plus the "erasure" record
MANIFEST = "workspace.json"
DEFAULT_WORKSPACE = "facerec-workspace"
ONNX_COPY_ENV = "FACEREC_ONNX_COPY"  # "0": no ONNX copy of the model (faster tests; readers use torch)
MAX_MANIFEST_BYTES = 64 << 20  # identities, split and ledger of a large workspace fit in a few MB


def resolve_workspace_path(path: str | os.PathLike | None) -> Path:
    """``-w`` if given, else ``$FACEREC_WORKSPACE``, else ``./facerec-workspace``. The path must be
    UTF-8 text: the model files' reader (safetensors) cannot open any other path."""
    root = Path(path or os.environ.get("FACEREC_WORKSPACE") or DEFAULT_WORKSPACE)
    try:
        str(root).encode("utf-8")
    except UnicodeEncodeError:
        raise WorkspaceError(f"workspace path {ascii(str(root))} is not UTF-8 text; choose a folder whose path is") \
            from None
    return root


_SCRATCH = threading.local()


def onnx_copies_wanted() -> bool:
    """Whether models get an ONNX copy (``Workspace.write_onnx_copy``): unless ``$FACEREC_ONNX_COPY``
    is 0 or the thread is inside :func:`without_onnx_copies`."""
    return os.environ.get(ONNX_COPY_ENV, "1") != "0" and not getattr(_SCRATCH, "depth", 0)


SCRATCH_IGNORE = shutil.ignore_patterns(".lock", "train-state.pt", "*.onnx")  # what a throw-away copy leaves out


@contextlib.contextmanager
def without_onnx_copies():
    """Models written inside get no ONNX copy: the benchmarks' throw-away workspace copies, which
    nothing reads through onnxruntime (an export costs ~2 s per forget request)."""
    _SCRATCH.depth = getattr(_SCRATCH, "depth", 0) + 1
    try:
        yield
    finally:
        _SCRATCH.depth -= 1


class Workspace:
    """Reads and writes one workspace directory."""

    def __init__(self, root: str | os.PathLike, recovered: bool = False):
        self.root = Path(root)
        self.recovered = recovered  # handed out by the writer lock after recovery (``writer.writing``)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def train_state_path(self) -> Path:
        return self.root / "train-state.pt"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict:
        """The parsed manifest.

        Raises:
            WorkspaceError: there is none, it is corrupt, or a newer facerec wrote it.
        """
        from facerec.workspace.layout import require_folder

        require_folder(self.root)
        if not self.root.is_dir():
            raise WorkspaceError(f"workspace {self.root} does not exist; `facerec enroll NAME PHOTO -w {self.root}` starts "
                                 f"one on the shipped model, `facerec train DATA_DIR -w {self.root}` on your own data")
        if not self.exists():
            raise WorkspaceError(f"{self.root} is not a facerec workspace (no {MANIFEST}); run `facerec train` into it first")
        try:
            data = json.loads(read_file_bytes(self.manifest_path, MAX_MANIFEST_BYTES, "a manifest").decode("utf-8"))
        except (DataError, UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
            detail = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else \
                "nested too deeply" if isinstance(err, RecursionError) else err
            raise WorkspaceError(f"{self.manifest_path} is unreadable or corrupt: {detail}") from None
        version = data.get("format_version") if isinstance(data, dict) else None
        if type(version) is not int:
            raise WorkspaceError(f"{self.manifest_path} has no format_version; it is not a facerec workspace manifest")
        check_manifest(data, self.manifest_path, FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise WorkspaceError(
                f"{self.manifest_path} has format version {version}, newer than this facerec ({__version__}) "
                f"understands ({FORMAT_VERSION}); upgrade facerec"
            )
        return data

    def identities(self) -> list[str]:
        return list(self.manifest()["identities"])

    def split(self) -> Split:
        return Split.from_dict(self.manifest()["split"])

    def update_manifest(self, change) -> dict:
        """Apply ``change(manifest)`` in place and write the manifest atomically."""
        manifest = self.manifest()
        change(manifest)
        atomic_write_json(self.manifest_path, manifest)
        return manifest

    def load_model(self, device: torch.device | str = "cpu") -> FaceViT:
        """Rebuild the model from the manifest's config and load its weights (safetensors only)."""
        info = self.manifest()["model"]
        path = self.root / info["weights"]
        if not path.is_file():
            raise WorkspaceError(f"model weights {path} are missing from the workspace")
        return load_checked_model(path, info["config"], info["num_classes"], info["version"], self.manifest_path,
                                  device)

    def save(self, model: FaceViT, *, model_name: str, identities: list[str], split: Split,
             data: dict, training: dict) -> str:
        """Write new weights, then switch the manifest to them. Returns the model version."""
        if model.num_classes != len(identities):
            raise ValueError(f"model has {model.num_classes} head rows but {len(identities)} identities were given")
        version, weights = self.write_weights(model, model_name)
        previous = self.manifest() if self.exists() else {}
        manifest = {
            "format_version": FORMAT_VERSION,
            "facerec_version": __version__,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "model": {"name": model_name, "config": model.config.to_dict(), "num_classes": model.num_classes,
                      "weights": weights.as_posix(), "version": version},
            "identities": list(identities),
            "data": data,
            "training": training,
            "split": split.to_dict(),
        }
        if previous.get("erasure"):  # the ledger outlives models; old head rows mean nothing to the new one
            record = previous["erasure"]
            manifest["erasure"] = {"forgotten": [{**e, "row": None} for e in record.get("forgotten", [])],
                                   "ledger": record.get("ledger", [])}
        atomic_write_json(self.manifest_path, manifest)
        self._remove_unreferenced_weights(keep=self.root / weights)
        return version

    def write_weights(self, model: FaceViT, model_name: str) -> tuple[str, Path]:
        """Write ``model``'s weights under their content hash; the manifest is not touched.

        Returns ``(version, path relative to the workspace)``. An unreferenced file left by an
        interrupted command is removed by the next commit.
        """
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        metadata = {"format": "facerec-model", "model_name": model_name,
                    "config": json.dumps(model.config.to_dict()), "num_classes": str(model.num_classes)}
        version = weights_version(state)
        weights = Path("models") / f"{version}.safetensors"
        atomic_write_with(self.root / weights, lambda tmp: save_file(state, tmp, metadata=metadata))
        self.write_onnx_copy(model, version, model_name)
        return version, weights

    def onnx_copy(self, version: str) -> Path:
        """Where the ONNX copy of the model ``version`` lives: ``models/<version>.onnx``."""
        return self.root / "models" / f"{version}.onnx"

    def write_onnx_copy(self, model: FaceViT, version: str, model_name: str) -> Path | None:
        """An ONNX copy of the model beside its weights (checked against torch when written,
        ``models.onnx.export_onnx``), so that the read-only commands embed through onnxruntime
        without importing torch (``recognition.pipeline.FacePipeline(read_only=True)``). Skipped
        when ``$FACEREC_ONNX_COPY`` is 0 or the export fails (a note; readers then use torch)."""
        if not onnx_copies_wanted():
            return None
        import copy
        import logging

        from facerec.models.onnx import export_onnx

        path = self.onnx_copy(version)
        try:
            export_onnx(copy.deepcopy(model).cpu(), path, model_version=version, model_name=model_name, check_batch=2)
        except Exception as err:  # an exotic model or a missing onnx package: the torch path still works
            logging.getLogger("facerec").warning(f"no ONNX copy of the model ({type(err).__name__}: {err}); "
                                                 "read-only commands embed with torch")
            return None
        return path

    def commit_model(self, version: str, weights: Path, change) -> dict:
        """Switch the manifest to already written weights and apply ``change(manifest)`` in the
        same atomic write; then drop every other weights file."""
        def apply(manifest):
            manifest["model"].update(weights=weights.as_posix(), version=version)
            manifest["format_version"] = FORMAT_VERSION
            manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            change(manifest)

        manifest = self.update_manifest(apply)
        self._remove_unreferenced_weights(keep=self.root / weights)
        return manifest

    def remove_unreferenced_weights(self) -> int:
        """Delete every weights file the manifest does not point to (left by an interrupted command)."""
        return self._remove_unreferenced_weights(keep=self.root / self.manifest()["model"]["weights"])

    def _remove_unreferenced_weights(self, keep: Path) -> int:
        from facerec.workspace.layout import real_files, unlink_inside

        removed = 0
        for path in real_files(self.root / "models"):  # never through a link
            if (path.suffix == ".safetensors" and path != keep) or (path.suffix == ".onnx" and path.stem != keep.stem):
                unlink_inside(self.root, path)
                removed += 1
        return removed
