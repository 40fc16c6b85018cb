"""Rebuilding the shipped model from ``../shared`` in named stages (``tools/train_face_model.py``).

1. ``ensure_crops``: one YuNet + five-point alignment pass over the dataset into a crop store.
2. ``ensure_targets``: the teachers' embeddings of every crop (dlib looked up, SFace computed),
   cached beside the store and tied to its checksum.
3. ``excluded_people``: fold people of LFW View 2, the most-photographed, named people.
4. ``train_student``: build the registered student and distil (``recipe.distill``), resumable.
5. ``export_model``: weights as safetensors plus the JSON record the package ships beside them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..data.folder import list_identity_files
from ..data.pairs import fold_people, most_photographed, read_pairs
from facerec.core.atomic import atomic_write_json, atomic_write_with
from ..models import create_model
from facerec.core.progress import progress_bar
from .crops import CropStore, build_crop_store, load_crop_store
from .recipe import DistillConfig, DistillData, distill, fingerprint, select_data, target_dim


def ensure_crops(data_root: Path, cache: Path, detector: str, show_progress: bool = True,
                 name: str = "crops", stream: bool | None = None) -> CropStore:
    """The crop store of ``data_root`` (built once under ``cache``); ``stream``: see ``load_crop_store``."""
    store = cache / name
    if not (store / "crops.json").is_file():
        total = sum(len(f) for f in list_identity_files(data_root).values())
        with progress_bar(total, "align", enabled=show_progress, unit="img") as bar:
            build_crop_store(data_root, store, detector, progress=bar.update)
    return load_crop_store(store, stream)


def ensure_targets(store: CropStore, cache: Path, dlib_npz: Path, sface_onnx: Path,
                   show_progress: bool = True, name: str = "teachers.npz", device=None) -> dict[str, np.ndarray]:
    """``{"dlib", "dlib_have", "sface", "sface_flip"}`` for every crop of ``store`` (cached; SFace
    through the torch port, on ``device``)."""
    from .teachers import SFacePort, dlib_targets

    path = cache / name
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if str(data["rec_sha256"]) == store.meta["rec_sha256"]:
                return {k: data[k] for k in ("dlib", "dlib_have", "sface", "sface_flip")}
    sface = SFacePort(sface_onnx, device)
    with progress_bar(2 * len(store.images), "SFace", enabled=show_progress, unit="img") as bar:
        plain = sface.embed(store.images, progress=bar.update)
        mirrored = sface.embed(store.images, flip=True, progress=bar.update)
    dlib, have = dlib_targets(store.paths, dlib_npz)
    out = {"dlib": dlib, "dlib_have": have, "sface": plain, "sface_flip": mirrored}
    atomic_write_with(path, lambda tmp: np.savez(open(tmp, "wb"), rec_sha256=store.meta["rec_sha256"], **out))
    return out


def excluded_people(pairs_file: Path, data_root: Path, cfg: DistillConfig) -> set[str]:
    """Fold people (``cfg.exclude_folds``), then the ``cfg.exclude_top`` most-photographed of the
    rest, then ``cfg.exclude_names``."""
    excluded = fold_people(read_pairs(pairs_file, data_root), cfg.exclude_folds) if cfg.exclude_folds else set()
    if cfg.exclude_top:
        excluded |= set(most_photographed(list_identity_files(data_root), cfg.exclude_top, excluded))
    return excluded | set(cfg.exclude_names)


def prepare(store: CropStore, targets: dict[str, np.ndarray], excluded: set[str], cfg: DistillConfig) -> DistillData:
    usable = store.face & (targets["dlib_have"] if "dlib" in cfg.teachers else True)
    return select_data(store.paths, store.images, usable, targets, excluded, cfg)


def run_id(data: DistillData, cfg: DistillConfig) -> str:
    return fingerprint(cfg, data)


def train_student(data: DistillData, cfg: DistillConfig, out: Path, device: torch.device,
                  show_progress: bool = True, sface_onnx: Path | None = None) -> tuple[torch.nn.Module, dict]:
    """Distil a fresh ``cfg.model`` (resuming ``out/state.pt``); epoch lines go to ``out/log.jsonl``.

    SFace (``sface_onnx``, converted by ``sface_port``) fills a hybrid student's stem and gives the
    same-view targets (``same_view.py``) when ``cfg.same_view``."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=len(data.identities), embedding_dim=target_dim(data, cfg))
    teacher = None
    if cfg.sface_per_view or model.config.stem == "sface":
        if sface_onnx is None:
            raise ValueError(f"{cfg.model} with same_view={cfg.same_view} needs SFace's model file")
        from .same_view import SameViewTeacher, load_stem
        from .sface_port import load

        sface = load(sface_onnx)
        if model.config.stem == "sface":
            load_stem(model, sface)
        teacher = SameViewTeacher(sface, model, device) if cfg.sface_per_view else None
    out.mkdir(parents=True, exist_ok=True)

    def log(entry: dict) -> None:
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps({"run": fingerprint(cfg, data), **entry}) + "\n")

    workers = min(8, os.cpu_count() or 1) if device.type == "cuda" else 0  # a GPU outruns one augmenting core
    try:
        result = distill(model, data, cfg, device=device, state_path=out / "state.pt", show_progress=show_progress,
                         log=log, teacher=teacher, workers=workers)
    finally:
        if teacher is not None:
            teacher.close()  # the exported model keeps no hook holding the teacher
    return model.cpu().eval(), result


def round_weights(model, dtype: torch.dtype):
    """``model`` with its weights rounded to ``dtype`` (and back to float32): what a file stored in
    ``dtype`` gives when loaded, so it is what gets measured before export."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype).float())
    return model


def export_model(model, data: DistillData, cfg: DistillConfig, out: Path, record: dict,
                 dtype: torch.dtype = torch.float32) -> dict:
    """Write ``out/model.safetensors`` (weights in ``dtype``; float32 when loaded) and
    ``out/model.json`` (config, identities, split, recipe)."""
    from safetensors.torch import save_file

    from facerec.workspace.workspace import weights_version

    state = {k: v.detach().cpu().to(dtype).contiguous() for k, v in model.state_dict().items()}
    version = weights_version(state)
    atomic_write_with(out / "model.safetensors", lambda tmp: save_file(state, tmp, metadata={"format": "facerec-model"}))
    info = {"format_version": 1, "name": cfg.model, "version": version, "config": model.config.to_dict(),
            "num_classes": model.num_classes, "identities": data.identities, "split": data.split.to_dict(),
            "trained_singles": data.singles, "excluded_people": data.excluded, "recipe": cfg.to_dict(), **record}
    atomic_write_json(out / "model.json", info)
    return info


def open_set_record(report: dict) -> dict:
    """The student's open-set threshold as the model record carries it (``workspace.shipped.shipped_manifest``):
    the default of every workspace that was never calibrated."""
    found = report["models"]["student"]["open_set"]
    calibrated, held_out = found["calibrated_outside_fold1"], found["fold1_at_that_threshold"]
    return {"threshold": calibrated["threshold"], "fpir_target": calibrated["fpir_target"],
            "gallery_size": calibrated["gallery_size"],
            "calibrated_on": f"LFW people outside View 2 fold 1 ({calibrated['people']}), {calibrated['draws']} "
                             f"random galleries, {calibrated['stranger_searches']} stranger searches",
            "fold1_fpir": held_out["fpir"], "fold1_tpir": held_out["tpir"]}


def evaluate_run(model, store: CropStore, targets: dict[str, np.ndarray], pairs_file: Path, data_root: Path,
                 excluded: set[str]) -> dict:
    """Student, SFace, dlib and their ensemble on LFW fold 1 (person-disjoint: split into 10
    sub-folds), all 10 folds (folds 2-10 *not* person-disjoint for the student), identification
    among fold-1 people, and the open-set threshold (``open_set_threshold``: calibrated on the
    people outside fold 1, checked on fold 1's)."""
    from facerec.recognition.pipeline import embed_images
    from .evaluate import identification, open_set_check, open_set_scores, open_set_threshold, pair_rows, verification
    from .teachers import combined

    student = embed_images(model, store.images, torch.device("cpu"), batch_size=128)
    models = {"student": student, "sface": targets["sface"], "dlib": targets["dlib"],
              "dlib+sface": combined(targets["dlib"], targets["sface"])}
    pairs = read_pairs(pairs_file, data_root)
    fold1 = pair_rows(pairs, store.paths, folds=(1,))
    every = pair_rows(pairs, store.paths, folds=range(1, 11))
    people1 = fold_people(pairs, (1,))
    counts: dict[str, int] = {}
    for p in store.people:
        counts[p] = counts.get(p, 0) + 1
    singles1 = {p for p in people1 if counts.get(p) == 1}
    singles_all = {p for p, n in counts.items() if n == 1}
    report = {"fold1_people": len(people1), "excluded_people": len(excluded),
              "fold1_people_all_excluded": people1 <= excluded, "models": {}}
    for name, emb in models.items():
        report["models"][name] = {
            "fold1": verification(emb, *fold1),
            "ten_folds": verification(emb, *every),
            "identification_fold1": identification(emb, store.paths, people1, singles1),
            "identification_fold1_all_singles": identification(emb, store.paths, people1, singles_all - people1),
        }
        calibrated = open_set_threshold(emb, store.paths, set(store.people) - people1 - excluded)
        held_out = open_set_check(*open_set_scores(emb, store.paths, people1, seed=1)[:2], calibrated["threshold"])
        report["models"][name]["open_set"] = {"calibrated_outside_fold1": calibrated, "fold1_at_that_threshold": held_out}
    return report


def evaluate_orl(model, store: CropStore, targets: dict[str, np.ndarray], enrolled: int = 8) -> dict:
    """ORL (never trained on: 40 people, grey, another camera): photos 1..``enrolled`` of each
    person enrolled, the rest probed; rank-1 against the nearest enrolled photo and against each
    person's mean template, for the student and both teachers."""
    from facerec.recognition.pipeline import embed_images

    number = np.array([int(Path(p).stem) for p in store.paths])
    person = np.array(store.people)
    gallery, probe = number <= enrolled, number > enrolled
    names = sorted(set(person))
    truth = np.array([names.index(p) for p in person[probe]])
    models = {"student": embed_images(model, store.images, torch.device("cpu"), batch_size=128),
              "sface": targets["sface"], "dlib": targets["dlib"]}
    out = {"people": len(names), "enrolled_per_person": enrolled, "probes": int(probe.sum()),
           "faces_detected": int(store.face.sum()), "images": len(store.paths), "models": {}}
    for key, emb in models.items():
        scores = emb[probe] @ emb[gallery].T
        labels = np.array([names.index(p) for p in person[gallery]])
        nearest = labels[scores.argmax(1)]
        centres = np.stack([emb[gallery][labels == k].mean(0) for k in range(len(names))])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        template = (emb[probe] @ centres.T).argmax(1)
        out["models"][key] = {"rank1_nearest_photo": float((nearest == truth).mean()),
                              "rank1_mean_template": float((template == truth).mean())}
    return out


def format_report(report: dict, version: str) -> str:
    """A plain-text table of ``evaluate_run``'s report."""
    lines = [f"model {version}: LFW fold 1 ({report['fold1_people']} people, none trained on: "
             f"{report['fold1_people_all_excluded']})",
             f"{'':12s} {'fold1 acc':>15s} {'TAR@1e-3':>9s} {'TAR@1e-2':>9s} {'10-fold acc':>15s} "
             f"{'rank-1':>7s} {'TPIR@.01':>9s} {'open-set t':>10s} {'fold1 FPIR':>10s}"]
    for name, r in report["models"].items():
        f1, ten, ident = r["fold1"], r["ten_folds"], r["identification_fold1"]
        lines.append(f"{name:12s} {f1['accuracy_mean']:.4f}±{f1['accuracy_std']:.4f} "
                     f"{f1['tar_at_far']['0.001']['tar']:9.4f} {f1['tar_at_far']['0.01']['tar']:9.4f} "
                     f"{ten['accuracy_mean']:.4f}±{ten['accuracy_std']:.4f} {ident['rank1']:7.4f} {ident['tpir']:9.4f} "
                     f"{r['open_set']['calibrated_outside_fold1']['threshold']:10.4f} "
                     f"{r['open_set']['fold1_at_that_threshold']['fpir']:10.4f}")
    if "orl" in report:
        orl = report["orl"]
        lines.append(f"ORL ({orl['people']} people, photos 1-{orl['enrolled_per_person']} enrolled, {orl['probes']} probes) "
                     "rank-1 nearest photo / mean template: "
                     + ", ".join(f"{k} {v['rank1_nearest_photo']:.3f} / {v['rank1_mean_template']:.3f}"
                                 for k, v in orl["models"].items()))
    return "\n".join(lines)
