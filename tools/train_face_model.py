"""Rebuild the shipped face model from ../shared with one command (CPU or CUDA, resumable).

    python tools/train_face_model.py --out build/face-model            # the shipped recipe
    python tools/train_face_model.py --out build/face-model-top100 --exclude-top 100
    python tools/train_face_model.py --out build/face-model --install  # copy into facerec/pretrained/

Stages (facerec/distill/build.py): align LFW once into a crop store, compute the teachers'
targets, leave out fold 1 of View 2 (and --exclude-top / --exclude people), distil, export, and
score the student beside both teachers on fold 1 (``report.json``). Re-running the same command
resumes from the last finished epoch; a finished run only re-evaluates.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from facerec.core.device import resolve_device  # noqa: E402
from facerec.distill import build  # noqa: E402
from facerec.distill.recipe import DistillConfig  # noqa: E402
from facerec.pretrained import PRETRAINED_DIR  # noqa: E402

SHARED = ROOT.parent / "shared"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED / "data" / "lfw", help="LFW root (images/ and pairs.txt)")
    p.add_argument("--orl", type=Path, default=SHARED / "data" / "orl", help="ORL, evaluated when present")
    p.add_argument("--teacher-dir", type=Path, default=SHARED / "teacher")
    p.add_argument("--detector", default=f"yunet:{SHARED / 'models' / 'face_detection_yunet_2023mar.onnx'}")
    p.add_argument("--cache", type=Path, default=ROOT / "build" / "distill-cache", help="crop store + teacher targets")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, log, model, report")
    p.add_argument("--model", default=DistillConfig.model)
    p.add_argument("--epochs", type=int, default=DistillConfig.epochs)
    p.add_argument("--batch-size", type=int, default=DistillConfig.batch_size)
    p.add_argument("--lr", type=float, default=DistillConfig.lr)
    p.add_argument("--teachers", default=DistillConfig.teachers, choices=["dlib+sface", "sface", "dlib"])
    p.add_argument("--fixed-targets", action="store_true",
                   help="SFace's targets of the clean crops instead of the student's own augmented views")
    p.add_argument("--exclude-folds", default="1", help="View 2 folds whose people are never trained on (comma list)")
    p.add_argument("--exclude-top", type=int, default=0, help="also leave out the N most-photographed other people")
    p.add_argument("--exclude", action="append", default=[], help="a person to leave out (repeatable)")
    p.add_argument("--weights-dtype", default="float16", choices=["float16", "float32"],
                   help="how the exported weights are stored (the model is measured rounded to it; float16 keeps a "
                        "hybrid with its SFace stem under the 25 MB the repository holds)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--stream", action="store_true",
                   help="decode crops when drawn instead of holding them in memory (the default above 50,000 crops)")
    p.add_argument("--install", action="store_true", help=f"copy the result into {PRETRAINED_DIR.relative_to(ROOT)}")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p.parse_args(argv)


def training_record(log: Path, run: str) -> dict:
    """The run's epochs from its log (over every resumed call) and its total training time."""
    history = [e for e in map(json.loads, log.read_text().splitlines()) if e.get("run") == run] if log.is_file() else []
    total, last = 0.0, 0.0
    for entry in history:  # "seconds" counts from the start of the call that ran the epoch
        total += entry["seconds"] - last if entry["seconds"] >= last else entry["seconds"]
        last = entry["seconds"]
    return {"epochs_logged": len(history), "training_seconds": round(total, 1), "history": history}


def main(argv=None) -> int:
    args = parse_args(argv)
    folds = tuple(int(k) for k in args.exclude_folds.split(",") if k.strip())
    cfg = DistillConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        teachers=args.teachers, same_view=not args.fixed_targets, exclude_folds=folds, exclude_top=args.exclude_top,
                        exclude_names=tuple(args.exclude))
    show = not args.quiet
    images = args.data / "images"
    store = build.ensure_crops(images, args.cache, args.detector, show, stream=args.stream or None)
    sface = args.teacher_dir / "models" / "face_recognition_sface_2021dec_int8bq.onnx"
    device = resolve_device(args.device)
    targets = build.ensure_targets(store, args.cache, args.teacher_dir / "lfw-dlib.npz", sface, show, device=device)
    excluded = build.excluded_people(args.data / "pairs.txt", images, cfg)
    data = build.prepare(store, targets, excluded, cfg)
    if show:
        print(f"training on {len(data.images)} crops of {len(data.identities)} people with a head row "
              f"+ {len(data.singles)} one-photo people; {len(excluded)} people excluded", file=sys.stderr)
    started = time.time()
    model, _ = build.train_student(data, cfg, args.out, device, show, sface_onnx=sface)
    dtype = getattr(torch, args.weights_dtype)
    build.round_weights(model, dtype)
    report = build.evaluate_run(model, store, targets, args.data / "pairs.txt", images, excluded)
    if args.orl.is_dir():
        orl = build.ensure_crops(args.orl, args.cache, args.detector, show, name="orl-crops")
        orl_targets = build.ensure_targets(orl, args.cache, args.teacher_dir / "orl-dlib.npz", sface, show,
                                           name="orl-teachers.npz", device=device)
        report["orl"] = build.evaluate_orl(model, orl, orl_targets)
    record = {"data": {"dataset": "LFW deep-funneled", "root": str(images.resolve()), "crops": len(data.images),
                       "detector": "YuNet 2023mar", "alignment": "five-point ArcFace template, 112x112"},
              "training": {"device": str(device), "seconds_this_call": round(time.time() - started, 1),
                           **training_record(args.out / "log.jsonl", build.run_id(data, cfg))},
              "evaluation": report, "open_set": build.open_set_record(report)}
    info = build.export_model(model, data, cfg, args.out, record, dtype=dtype)
    if args.install:
        PRETRAINED_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out / "model.safetensors", PRETRAINED_DIR / "face-vit.safetensors")
        shutil.copyfile(args.out / "model.json", PRETRAINED_DIR / "face-vit.json")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(build.format_report(report, info["version"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
