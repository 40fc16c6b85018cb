"""A compact bundle of everything the shipped model's recipe reads, for a machine without ../shared.

    python tools/face_model_bundle.py pack build/face-model-bundle      # here, after a CPU run built the cache
    python tools/face_model_bundle.py unpack BUNDLE DEST                # there: DEST/{lfw,orl,teacher,cache}

The bundle (at most 60 MiB; 35 MiB as packed here, so that it, the wheels of albumentations and
the repository together fit the 64 MiB a GPU call carries) holds the aligned LFW and ORL crops (the crop stores, re-encoded as WebP
at ``--quality``; the store reads any format OpenCV decodes), dlib's descriptors of them (float16), SFace's published model file,
and LFW's ``pairs.txt``. ``unpack`` lays them out as ``tools/train_face_model.py`` expects them:
the stores under ``DEST/cache``, the teachers under ``DEST/teacher``, and ``DEST/lfw/images`` /
``DEST/orl`` as trees of empty placeholder files (the recipe reads people and ``pairs.txt``
there, never the photos: the crops are already aligned). SFace's targets are not carried: the
recipe computes them with the torch port on the target machine's device.
``tools/gpu_face_model.sh`` runs the whole recipe from a bundle on one GPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
SFACE = "face_recognition_sface_2021dec_int8bq.onnx"
LIMIT = 60 * 2 ** 20


def _reencode(src: Path, dest: Path, quality: int) -> list[str]:
    import cv2

    from facerec.distill.crops import load_crop_store, write_crop_store

    store = load_crop_store(src)
    encoded = [cv2.imencode(".webp", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, quality])[1].tobytes()
               for crop in store.images]
    info = {k: store.meta[k] for k in ("root", "detector", "skipped") if k in store.meta}
    write_crop_store(dest, store.paths, encoded, list(store.face), {**info, "webp_quality": quality})
    return store.paths


def _dlib_subset(src: Path, dest: Path, paths: list[str]) -> None:
    import numpy as np

    with np.load(src, allow_pickle=False) as data:
        index = {str(p): i for i, p in enumerate(data["paths"])}
        rows = [index[p] for p in paths if p in index]
        np.savez_compressed(dest, paths=data["paths"][rows], emb=data["emb"][rows].astype(np.float16))


def pack(args) -> int:
    out = args.bundle
    if out.exists():
        raise SystemExit(f"{out} exists; pack into a new folder")
    lfw = _reencode(args.cache / "crops", out / "lfw-crops", args.quality)
    orl = _reencode(args.cache / "orl-crops", out / "orl-crops", args.quality)
    _dlib_subset(args.teacher_dir / "lfw-dlib.npz", out / "lfw-dlib.npz", lfw)
    _dlib_subset(args.teacher_dir / "orl-dlib.npz", out / "orl-dlib.npz", orl)
    shutil.copyfile(args.teacher_dir / "models" / SFACE, out / SFACE)
    shutil.copyfile(args.lfw / "pairs.txt", out / "pairs.txt")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    (out / "BUNDLE.json").write_text(json.dumps({"format_version": 1, "bytes": size, "webp_quality": args.quality,
                                                 "lfw_crops": len(lfw), "orl_crops": len(orl)}, indent=2) + "\n")
    print(f"{out}: {size / 2 ** 20:.1f} MiB ({len(lfw)} LFW + {len(orl)} ORL crops, WebP {args.quality})")
    return 0 if size <= LIMIT else 1


def _placeholders(root: Path, paths: list[str]) -> None:
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()


def unpack(args) -> int:
    import json as _json

    src, dest = args.bundle, args.dest
    for name in ("lfw-crops", "orl-crops"):
        store = "crops" if name == "lfw-crops" else "orl-crops"
        shutil.copytree(src / name, dest / "cache" / store, dirs_exist_ok=True)
        paths = _json.loads((src / name / "crops.json").read_text())["paths"]
        _placeholders(dest / ("lfw/images" if name == "lfw-crops" else "orl"), paths)
    (dest / "teacher" / "models").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "lfw-dlib.npz", dest / "teacher" / "lfw-dlib.npz")
    shutil.copyfile(src / "orl-dlib.npz", dest / "teacher" / "orl-dlib.npz")
    shutil.copyfile(src / SFACE, dest / "teacher" / "models" / SFACE)
    shutil.copyfile(src / "pairs.txt", dest / "lfw" / "pairs.txt")
    print(f"unpacked into {dest}: --data {dest / 'lfw'} --orl {dest / 'orl'} --teacher-dir {dest / 'teacher'} "
          f"--cache {dest / 'cache'}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack")
    a.add_argument("bundle", type=Path)
    a.add_argument("--cache", type=Path, default=ROOT / "build" / "distill-cache")
    a.add_argument("--teacher-dir", type=Path, default=SHARED / "teacher")
    a.add_argument("--lfw", type=Path, default=SHARED / "data" / "lfw")
    a.add_argument("--quality", type=int, default=80)
    a.set_defaults(func=pack)
    b = sub.add_parser("unpack")
    b.add_argument("bundle", type=Path)
    b.add_argument("dest", type=Path)
    b.set_defaults(func=unpack)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
