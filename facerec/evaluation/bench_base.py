"""The base workspace of a forgetting benchmark over a folder dataset: trained (``training.run``),
its training images enrolled, the threshold calibrated, the held-out images recognised."""

from __future__ import annotations

from pathlib import Path

from facerec.core.progress import progress_bar
from facerec.models import DEFAULT_MODEL
from facerec.recognition.enrollment import enroll_people
from facerec.recognition.calibration import calibrate
from facerec.recognition.pipeline import FacePipeline, evaluate_recognition, folder_people
from facerec.training.run import train_workspace, training_config
from facerec.workspace.layout import rmtree_inside
from facerec.workspace.workspace import Workspace


def bench_base_current(base, data_dir, *, from_scratch: bool, init_from=None) -> bool:
    """Whether ``base`` is a bench base (trained, enrolled, calibrated) built from ``data_dir``
    with the same start, so ``bench forgetting --data`` can reuse it."""
    ws = Workspace(base)
    if not ws.exists():
        return False
    m = ws.manifest()
    init_file = str(Path(init_from).resolve()) if init_from else None
    return (m["data"]["root"] == str(Path(data_dir).resolve())
            and (m["training"].get("initialised_from") == "scratch") == from_scratch
            and m["training"].get("initialised_from_file") == init_file
            and "threshold" in m.get("recognition", {}))


def build_bench_base(base, data_dir, *, from_scratch: bool, init_from=None, epochs: int | None = None,
                     seed: int = 0, device: str | None = None, show_progress: bool = True) -> None:
    """The bench's base workspace for a folder dataset: the shipped model (or ``init_from``)
    fine-tuned on it, or a model trained from scratch; its training images enrolled and the
    threshold calibrated (:func:`enroll_and_recognize`). The caller holds the writer lock."""
    model = DEFAULT_MODEL if from_scratch else None
    config = training_config(model_name=model, from_scratch=from_scratch, init_from=init_from, epochs=epochs, seed=seed)
    train_workspace(data_dir, base, model_name=model, config=config, from_scratch=from_scratch,
                    init_from=init_from, device=device, show_progress=show_progress)
    enroll_and_recognize(base, data_dir, device=device, show_progress=show_progress)


def enroll_and_recognize(workspace, data_dir, *, device: str | None = None, show_progress: bool = True) -> dict:
    """Enroll everyone from their training images (as aligned crops), calibrate the threshold at
    FAR 1e-3 on the enrolled vectors, then recognise the held-out images."""
    ws = Workspace(workspace)
    for part in ("gallery", "crops"):  # the demo enrolls afresh each run
        rmtree_inside(ws.root, ws.root / part)
    pipe = FacePipeline(ws, detector="aligned", device=device)
    train_people = folder_people(data_dir, "train", ws)
    test_people = folder_people(data_dir, "test", ws)
    with progress_bar(sum(map(len, train_people.values())), "enroll", enabled=show_progress, unit="img") as bar:
        enroll_people(pipe, train_people, progress=bar.update)
    calibration = calibrate(pipe, far=1e-3)
    with progress_bar(sum(map(len, test_people.values())), "recognize", enabled=show_progress, unit="img") as bar:
        result = evaluate_recognition(pipe, test_people, progress=bar.update)
    return {**result, "far": calibration["far"], "tar": calibration["tar"]}
