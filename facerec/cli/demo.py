"""``facerec demo``: with ``--data DIR`` the shipped model on real photos, with no training step;
without, a fine-tune on synthetic people (:func:`run_demo`).

From a folder of people (LFW, or the user's own ``DIR/<person>/<photo>``) it takes people the
shipped model never saw (anyone not among its recorded training people), enrolls a few photos of
each, sets the open-set threshold at a target FAR on the enrolled faces, recognises the same
people's other photos and photos of strangers (unseen people who are not enrolled), then forgets
one enrolled person and checks how their photos are answered afterwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from facerec import pretrained
from facerec.core.atomic import atomic_write_bytes
from facerec.core.errors import DataError, FaceRecError
from facerec.core.progress import progress_bar
from facerec.data import synthetic
from facerec.data.folder import list_identity_files
from facerec.data.images import read_file_bytes
from facerec.evaluation.bench_base import enroll_and_recognize
from facerec.models import DEFAULT_MODEL
from facerec.recognition.enrollment import enroll_people
from facerec.recognition.calibration import calibrate
from facerec.recognition.pipeline import FacePipeline, evaluate_recognition
from facerec.training.recipe import TrainConfig
from facerec.training.run import train_workspace
from facerec.workspace.layout import rmtree_inside
from facerec.workspace.shipped import seed_workspace
from facerec.workspace.workspace import Workspace

STRANGER = ""  # no enrolled person has an empty name: every answer for a stranger is a wrong one
MARKER = ".demo"  # in a workspace the demo made: it may reset it
_CONTENT = ("workspace.json", "crops", "gallery", "models", "replay", "erasure.key", "api-keys.json", "journal",
            "quarantine")


def _marker(root: Path) -> str | None:
    try:
        return read_file_bytes(root / MARKER, 256, "a marker", follow=False).decode("ascii").strip()
    except (DataError, UnicodeDecodeError):
        return None


def claim_demo_workspace(root: str | Path) -> None:
    """Let the demo reset ``root`` only if it is empty or a demo made it (its marker carries the
    workspace's seal, :func:`facerec.erasure.seal`). The demo replaces the
    model and wipes the gallery and crops; run on the workspace a user enrolled people into (the
    default ``./facerec-workspace`` is shared by both), it would lose them.

    Raises:
        FaceRecError: ``root`` holds a workspace the demo did not make.
    """
    from facerec.workspace.erasure import seal, sealed

    root, ws = Path(root), Workspace(root)
    if sealed(ws, "demo", _marker(root)):  # sealed() refuses a missing marker
        return
    if not any(os.path.lexists(root / name) for name in _CONTENT):
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(root / MARKER, seal(ws, "demo").encode())  # sealed: a marker made by hand is not one
        return
    raise FaceRecError(f"{root} holds a workspace the demo did not make; the demo resets its workspace (model, "
                       f"gallery, crops), so give it another folder: facerec demo -w NEW_FOLDER")


def shipped_training_people() -> set[str]:
    """Everyone whose photos trained the shipped model (head rows and one-photo people)."""
    info = pretrained.record()
    return set(info["identities"]) | {p.split("/", 1)[0] for p in info.get("trained_singles", [])}


def choose(listing: dict[str, list[str]], *, people: int, enroll_each: int, strangers: int,
           seed: int) -> tuple[dict[str, list[str]], list[str]]:
    """``({person: photos}, stranger photos)`` among people the shipped model never saw."""
    seen = shipped_training_people()
    unseen = {p: f for p, f in listing.items() if p not in seen}
    candidates = sorted(p for p, f in unseen.items() if len(f) > enroll_each)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(candidates, min(people, len(candidates)), replace=False).tolist()) if candidates else []
    others = [p for p in sorted(unseen) if p not in chosen]
    stranger_photos = [unseen[p][0] for p in rng.permutation(others)[:strangers]] if others else []
    return {p: unseen[p] for p in chosen}, stranger_photos


def run_face_demo(workspace, data_dir, *, detector: str, people: int = 25, enroll_each: int = 3,
                  probes_each: int = 5, strangers: int = 100, far: float = 1e-3, seed: int = 0,
                  device: str | None = None, show_progress: bool = True) -> dict:
    """The demo's report: enrollment, calibration, recognition of the enrolled and of strangers,
    and one forget request. The workspace is reset to the shipped model first."""
    from forgetting.request import ForgetRequest, run_request

    t0 = time.perf_counter()
    claim_demo_workspace(workspace)
    data_dir = Path(data_dir)
    chosen, stranger_files = choose(list_identity_files(data_dir), people=people, enroll_each=enroll_each,
                                    strangers=strangers, seed=seed)
    if len(chosen) < 2:
        raise FaceRecError(f"{data_dir}: the demo needs at least two people the shipped model never saw, each with "
                           f"more than {enroll_each} photos")
    ws = Workspace(workspace)
    for part in ("gallery", "crops"):
        rmtree_inside(ws.root, ws.root / part)
    seed_workspace(ws.root)  # the demo's workspace always starts from the shipped model
    pipe = FacePipeline(ws, detector=detector, device=device)
    enrolled = {p: [str(data_dir / f) for f in files[:enroll_each]] for p, files in chosen.items()}
    probes = {p: [str(data_dir / f) for f in files[enroll_each:enroll_each + probes_each]] for p, files in chosen.items()}
    with progress_bar(sum(map(len, enrolled.values())), "enroll", enabled=show_progress, unit="img") as bar:
        enrolled_report = enroll_people(pipe, enrolled, progress=bar.update)
    calibration = calibrate(pipe, far=far)
    with progress_bar(sum(map(len, probes.values())) + len(stranger_files), "recognize", enabled=show_progress,
                      unit="img") as bar:
        known = evaluate_recognition(pipe, probes, progress=bar.update)
        unknown = evaluate_recognition(pipe, {STRANGER: [str(data_dir / f) for f in stranger_files]},
                                       progress=bar.update)
    target = sorted(chosen)[0]
    forget = run_request(ws.root, ForgetRequest((target,)), device=device, show_progress=show_progress)
    after = evaluate_recognition(FacePipeline(ws, detector=detector, device=device), {target: probes[target]})
    return {
        "data": str(data_dir), "model_version": pipe.model_version, "detector": detector,
        "enrolled_people": len(enrolled), "enrolled_images": sum(r["enrolled"] for r in enrolled_report),
        "calibration": calibration,
        "known": known,  # rank1; open_set_accuracy = right person above the threshold
        "strangers": {"images": unknown["images"], "no_face": unknown["no_face"],
                      "false_accept_rate": 1 - unknown["unknown_rate"] if unknown["images"] else float("nan")},
        "forget": {"person": target, "request": forget["request"], "photos": after["images"],
                   "answered_unknown": after["unknown_rate"],
                   "answered_as_someone_else": 1 - after["unknown_rate"] if after["images"] else float("nan")},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run_demo(
    workspace: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    identities: int = 100,
    images_per_identity: int = 10,
    model_name: str = DEFAULT_MODEL,
    config: TrainConfig = TrainConfig(),
    device: str | None = None,
    show_progress: bool = True,
) -> dict:
    """Train on ``data_dir``, or with none on synthetic identities generated into the workspace."""
    claim_demo_workspace(workspace)
    if data_dir is None:
        data_dir = Path(workspace) / "synthetic-data"
        with progress_bar(identities * images_per_identity, "generate", enabled=show_progress, unit="img") as bar:
            synthetic.generate_dataset(data_dir, identities, images_per_identity, seed=config.seed, progress=bar.update)
        source = "synthetic"
    else:
        source = str(Path(data_dir).resolve())
    train = train_workspace(data_dir, workspace, model_name=model_name, config=config, device=device,
                            show_progress=show_progress)
    recognize = enroll_and_recognize(workspace, data_dir, device=device, show_progress=show_progress)
    return {
        "data": {"source": source, "identities": train["identities"], "images": train["images"], "root": str(data_dir)},
        "train": train,
        "recognize": recognize,
    }
