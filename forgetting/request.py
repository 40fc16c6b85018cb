"""``facerec forget``: one erasure request as one transaction over a workspace.

1. Resolve the names: people the model was trained on (head rows) must be unlearnt; enrolled
   people (gallery, crops) must be removed. A name that is neither changes nothing.
2. Data: the forget set is what the workspace knows of the people (their training images under
   the recorded data root, their stored crops) plus ``--images``; the replay buffer is a fraction,
   or k shots, of each retained person's training images; the evaluation sets are held-out images.
3. Unlearn (GS-LoRA / GS-LoRA++, merged) and write the new weights under their content hash.
4. Re-embed the remaining gallery with the new model into ``gallery.staging``, re-calibrate the
   threshold when it was calibrated on enrolled vectors, and check the forgotten people's
   held-out photos against it.
5. Commit: one atomic manifest write switches the model, blanks the people's head rows (the rows
   themselves stay: the head keeps all classes, as in the paper), drops them from the split,
   appends the ledger entry (keyed hashes only) and marks the request pending.
6. Clean up: swap the gallery in, delete crops, dataset folders inside the workspace and the
   resume checkpoint, then clear ``pending``.

Nothing in the workspace changes before step 5, and step 6 is finished by the next command if the
process dies during it, so a failed or killed forget leaves the previous version in place and can
simply be run again.
"""

from __future__ import annotations

import time
import uuid
import zlib
from pathlib import Path

import numpy as np

from facerec.data.folder import list_identity_files, read_dataset_image, read_image
from facerec.data.split import make_split
from facerec.errors import DataError, FaceRecError
from facerec.erasure import (complete_pending, data_root_inside, erasure_key, forgotten_rows, name_hash,
                             purge_people, swap_in_gallery)
from facerec.evaluation import accept_rate, threshold_at_far
from facerec.recognition import FacePipeline, _central_face, build_gallery, enrolled_pair_scores, validate_name
from facerec.train import top1_accuracy
from facerec.workspace import Workspace
from gallery import Gallery

from .baselines import BASELINES, BaselineConfig, run_baseline
from .gslora import Data, GSLoRAConfig, unlearn
from .metrics import h_ceiling, h_mean

METHODS = ("gs-lora", "gs-lora++") + BASELINES


def _rows_of(images: list[np.ndarray], label: int) -> Data:
    return Data(np.stack(images) if images else np.zeros((0, 112, 112, 3), np.uint8),
                np.full(len(images), label, dtype=np.int64))


def _join(parts: list[Data]) -> Data:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Data(np.zeros((0, 112, 112, 3), np.uint8), np.zeros(0, np.int64))
    return Data(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))


def _read_all(root: Path | None, rel_paths: list[str]) -> list[np.ndarray]:
    if root is None:
        return []
    out = []
    for rel in rel_paths:
        try:
            out.append(read_dataset_image(root, rel))
        except DataError:
            continue  # a dataset file that has gone away since training: use the others
    return out


def replay_files(files: list[str], person: str, *, fraction: float, shots: int | None, seed: int) -> list[str]:
    """A seeded subset of one retained person's training files: ``shots`` of them, or ``fraction``."""
    k = shots if shots is not None else max(1, round(fraction * len(files)))
    rng = np.random.default_rng([seed, zlib.crc32(person.encode("utf-8"))])
    return sorted(rng.choice(files, min(k, len(files)), replace=False).tolist()) if files else []


def _accuracy(model, data: Data, device) -> float:
    return top1_accuracy(model, data.images, data.labels, device)  # nan when there are no images


def _enrolled_people(ws: Workspace) -> set[str]:
    people = set()
    if (ws.root / "gallery" / "meta.sqlite").is_file():
        gallery = Gallery.open(ws.root / "gallery")
        people |= set(gallery.people())
        gallery.close()
    if (ws.root / "crops").is_dir():
        people |= {p.name for p in (ws.root / "crops").iterdir() if p.is_dir()}
    return people


def _gallery_people(path: Path) -> set[str]:
    gallery = Gallery.open(path)
    try:
        return set(gallery.people())
    finally:
        gallery.close()


def _earlier_forgotten_test_set(ws: Workspace, manifest: dict, data_root: Path | None) -> Data:
    """Held-out images of people forgotten by earlier requests, found in the data root by keyed hash."""
    rows = forgotten_rows(manifest)
    key = erasure_key(ws)
    if not rows or key is None or data_root is None:
        return _join([])
    split_info, data_info = manifest["split"], manifest.get("data", {})
    unreadable = set(data_info.get("skipped_unreadable") or [])
    try:
        listing = list_identity_files(data_root)
    except DataError:
        return _join([])
    parts = []
    for person, files in listing.items():
        row = rows.get(name_hash(key, person))
        files = [f for f in files if f not in unreadable][:data_info.get("max_images") or None]  # as trained
        if row is None or len(files) <= split_info["test_per_identity"]:
            continue
        test = make_split({person: files}, split_info["test_per_identity"], split_info["seed"]).test[person]
        parts.append(_rows_of(_read_all(data_root, test), row))
    return _join(parts)


def forget_people(workspace, names: list[str], *, method: str = "gs-lora", shots: int | None = None,
                  replay_fraction: float = 1.0, images: list[str] | None = None, detector: str = "aligned",
                  config: GSLoRAConfig | None = None, baseline_config: BaselineConfig | None = None,
                  device: str | None = None, show_progress: bool = True, fail_before_commit: bool = False) -> dict:
    """Carry out one forget request; returns the report (see the module docstring for the steps).

    Raises:
        FaceRecError: a name is invalid or unknown to the workspace, or there is nothing to learn from.
    """
    t_start = time.perf_counter()
    if method not in METHODS:
        raise FaceRecError(f"unknown forgetting method {method!r}; choose one of {', '.join(METHODS)}")
    if shots is not None and shots < 1:
        raise FaceRecError(f"--shots must be >= 1, got {shots}")
    if not 0 < replay_fraction <= 1:
        raise FaceRecError(f"--replay must be in (0, 1], got {replay_fraction}")
    names = list(dict.fromkeys(validate_name(n) for n in names))
    if not names:
        raise FaceRecError("name at least one person to forget")
    ws = Workspace(workspace)
    complete_pending(ws)
    manifest = ws.manifest()
    root = Path(manifest.get("data", {}).get("root") or ws.root)
    if root.is_file() and root.resolve().is_relative_to(ws.root.resolve()):
        raise FaceRecError(f"the training data {root} is a record file inside the workspace: people cannot be "
                           "erased from it; keep record datasets outside the workspace")
    identities = manifest["identities"]
    rows = {name: i for i, name in enumerate(identities) if name is not None}
    enrolled = _enrolled_people(ws)
    unknown = [n for n in names if n not in rows and n not in enrolled]
    if unknown:
        raise FaceRecError(f"not known to this workspace (never trained on, not enrolled, or already forgotten): "
                           f"{', '.join(unknown)}; nothing was changed")
    in_model = [n for n in names if n in rows]

    pipe = FacePipeline(ws, detector=detector, device=device)
    version_before = pipe.model_version
    split = ws.split()
    data_root = Path(manifest["data"]["root"]) if manifest.get("data", {}).get("root") else None
    data_root = data_root if data_root is not None and data_root.exists() else None
    report: dict = {"people": names, "forgotten": len(names), "method": method, "model_version_before": version_before,
                    "unlearned": len(in_model)}
    trained_with = manifest.get("training", {}).get("config", {})
    cfg = config or GSLoRAConfig()
    cfg = GSLoRAConfig(**{**cfg.to_dict(), "prototype": method == "gs-lora++",
                          "margin": trained_with.get("margin", cfg.margin)})
    base_cfg = baseline_config or BaselineConfig(seed=cfg.seed)
    base_cfg = BaselineConfig(**{**base_cfg.to_dict(), "margin": cfg.margin,
                                 "retrain_epochs": trained_with.get("epochs", base_cfg.retrain_epochs)})

    new_version, weights = version_before, None
    if in_model:
        forget_parts = []
        for name in in_model:
            crops = sorted((ws.root / "crops" / name).glob("*.png")) if (ws.root / "crops" / name).is_dir() else []
            own = _read_all(data_root, split.train.get(name, [])) + [read_image(c) for c in crops]
            forget_parts.append(_rows_of(own, rows[name]))
        for path in images or []:
            found = pipe.read_faces(path)
            if found.status != "ok":
                raise FaceRecError(f"{path}: {found.status}")
            if len(in_model) != 1:
                raise FaceRecError("--images needs exactly one person per request (whose images are they?)")
            forget_parts.append(_rows_of([found.crops[_central_face(found)]], rows[in_model[0]]))
        forget = _join(forget_parts)
        if len(forget) == 0:
            raise FaceRecError(f"no images of {', '.join(in_model)} are available to unlearn from "
                               f"(data root {manifest['data'].get('root')} unreadable, no crops); pass --images")
        retained = [n for n in rows if n not in in_model]
        replay = _join([_rows_of(_read_all(data_root, replay_files(split.train.get(p, []), p, fraction=replay_fraction,
                                                                   shots=shots, seed=cfg.seed)), rows[p])
                        for p in retained])
        forget_test = _join([_rows_of(_read_all(data_root, split.test.get(n, [])), rows[n]) for n in in_model])
        retain_test = _join([_rows_of(_read_all(data_root, split.test.get(p, [])), rows[p]) for p in retained])
        old_test = _earlier_forgotten_test_set(ws, manifest, data_root)

        model, dev = pipe.model, pipe.device
        photos = list(forget_test.images)  # the forgotten people's held-out photos, already decoded
        # the same photos against everyone else before the forget: how a stranger to the gallery fares
        stranger_check = _gallery_check(pipe, ws.root / "gallery", photos, in_model, pipe.threshold)
        before = {"acc_f_before": _accuracy(model, forget_test, dev), "acc_r_before": _accuracy(model, retain_test, dev),
                  "acc_o_before": _accuracy(model, old_test, dev)}
        if method in BASELINES:
            stats = run_baseline(method, model, forget, replay, base_cfg, device=dev, show_progress=show_progress)
        else:
            stats = unlearn(model, forget, replay, cfg, device=dev, show_progress=show_progress)
        model.eval()
        acc_f, acc_r = _accuracy(model, forget_test, dev), _accuracy(model, retain_test, dev)
        report.update(before)
        report.update({
            "acc_f": acc_f, "acc_r": acc_r, "acc_o": _accuracy(model, old_test, dev),
            "h_mean": h_mean(acc_r, acc_f, before["acc_f_before"]),
            "h_ceiling": h_ceiling(before["acc_r_before"], before["acc_f_before"]),
            "group_norms": stats.get("group_norms"), "delta_norms": stats.get("delta_norms"),
            "zero_group_share": stats.get("zero_group_share"), "trainable_parameters": stats["trainable_parameters"],
            "trainable_ratio": stats["trainable_ratio"], "seconds": stats["seconds"],
            "images": {"forget": len(forget), "replay": len(replay), "forget_test": len(forget_test),
                       "retain_test": len(retain_test), "earlier_forgotten_test": len(old_test)},
            "config": stats["config"],
        })
        new_version, weights = ws.write_weights(model, manifest["model"]["name"])
        pipe.model_version = new_version
    report["model_version"] = new_version

    # the remaining gallery, re-embedded with the new model; the threshold follows it
    staging = ws.root / "gallery.staging"
    vectors = build_gallery(pipe, staging, exclude=set(names))
    recognition = dict(manifest.get("recognition", {}))
    gallery_report = {"re_embedded": vectors, "threshold": recognition.get("threshold")}
    if vectors and "enrolled_vectors" in recognition and new_version != version_before:
        gallery_report.update(_recalibrate(staging, recognition))
        recognition["threshold"], recognition["enrolled_vectors"] = gallery_report["threshold"], vectors
    if in_model and vectors:
        check = _gallery_check(pipe, staging, photos, in_model, gallery_report["threshold"] or 0.4)
        check["unknown_rate_before_as_stranger"] = stranger_check.get("unknown_rate")
        check["matched_forgotten"] = 0 if set(in_model).isdisjoint(_gallery_people(staging)) else None
        gallery_report["check"] = check
    report["gallery"] = gallery_report

    if fail_before_commit:  # for tests: a crash after all the work, before the commit
        raise RuntimeError("injected failure before the commit")
    key = erasure_key(ws, create=True)
    request = f"{len(manifest.get('erasure', {}).get('ledger', [])) + 1:04d}-{uuid.uuid4().hex[:8]}"
    report["request"] = request
    entry = {
        "request": request, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "people": [name_hash(key, n) for n in names], "method": method if in_model else "gallery-only",
        "model_version_before": version_before, "model_version_after": new_version,
        "metrics": {k: report.get(k) for k in ("acc_f", "acc_f_before", "acc_r", "acc_r_before", "acc_o", "h_mean",
                                               "h_ceiling", "zero_group_share", "trainable_ratio", "seconds")
                    if k in report},
    }

    def change(m: dict) -> None:
        for name in in_model:
            m["identities"][rows[name]] = None
        for part in ("train", "test"):
            for name in names:
                m["split"][part].pop(name, None)
        data = m.get("data", {})
        if data.get("skipped_unreadable"):  # "person/file" paths name the person too
            data["skipped_unreadable"] = [f for f in data["skipped_unreadable"] if f.split("/", 1)[0] not in names]
        record = m.setdefault("erasure", {"forgotten": [], "ledger": []})
        record["forgotten"] += [{"hash": name_hash(key, n), "row": rows.get(n), "request": request} for n in names]
        record["ledger"].append(entry)
        record["pending"] = request
        if recognition:
            m["recognition"] = recognition

    if weights is not None:
        ws.commit_model(new_version, weights, change)
    else:
        ws.update_manifest(change)
    cleanup = complete_pending(ws)
    report["removed"] = cleanup
    report["seconds_total"] = round(time.perf_counter() - t_start, 2)
    return report


def _recalibrate(gallery_path: Path, recognition: dict) -> dict:
    """The threshold at the stored FAR, recomputed on the re-embedded enrolled vectors."""
    gallery = Gallery.open(gallery_path)
    try:
        genuine, impostor, _ = enrolled_pair_scores(gallery)
    finally:
        gallery.close()
    if len(impostor) == 0:
        return {}
    threshold = threshold_at_far(impostor, float(recognition.get("far", 1e-3)))
    return {"threshold": threshold, "recalibrated": True, "tar": accept_rate(genuine, threshold)}


def _gallery_check(pipe: FacePipeline, gallery_path: Path, photos: list[np.ndarray], people: list[str],
                   threshold: float) -> dict:
    """Search a gallery with the forgotten people's held-out photos, ignoring matches to those
    people themselves: how many come back ``unknown`` (best other match below the threshold)."""
    if not photos or not (gallery_path / "meta.sqlite").is_file():
        return {"images": 0}
    gallery = Gallery.open(gallery_path)
    try:
        if gallery.model_version != pipe.model_version or len(gallery) == 0:
            return {"images": 0}  # vectors of another model are not comparable with this one's
        rows = gallery.search(pipe.embed(photos), k=min(len(gallery), 200))
    finally:
        gallery.close()
    best = [next((m for m in row if m.identity not in people), None) for row in rows]
    unknown = sum(m is None or m.score < threshold for m in best)
    return {"images": len(photos), "unknown": unknown, "unknown_rate": unknown / len(photos),
            "threshold": threshold}


def choose_people(workspace, fraction: float, seed: int = 0) -> list[str]:
    """A seeded ``fraction`` (at least one) of the people the workspace's model still knows."""
    people = [p for p in Workspace(workspace).identities() if p is not None]
    count = max(1, round(fraction * len(people)))
    return sorted(np.random.default_rng(seed).choice(people, count, replace=False).tolist())


def ledger(workspace) -> list[dict]:
    """The workspace's forget requests in order (keyed hashes, never names)."""
    return list(Workspace(workspace).manifest().get("erasure", {}).get("ledger", []))
