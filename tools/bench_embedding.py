"""Embedding throughput on aligned crops: the shipped model beside its two teachers.

    python tools/bench_embedding.py --crops build/distill-cache/crops [--dlib-python /path/to/python] [--json]

- facerec's shipped model: ``model.embed`` on batches of 64 crops (torch, this machine's threads);
- SFace: ``cv2.FaceRecognizerSF.feature`` on one 112x112 crop at a time (its published graph has
  batch 1);
- dlib (only with ``--dlib-python``, an interpreter where the dlib wheel is installed: facerec never
  imports dlib): ``compute_face_descriptor`` on batches of 64 150x150 chips (the crops resized,
  which costs the same as dlib's own chips).

Time a benchmark with nothing else running: two cores are easily oversubscribed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

DLIB_SNIPPET = """
import sys, time, numpy as np, dlib
net = dlib.face_recognition_model_v1(sys.argv[1])
chips = [np.ascontiguousarray(c) for c in np.load(sys.argv[2])]
net.compute_face_descriptor(chips[:8])
t = time.perf_counter(); n = 0
while time.perf_counter() - t < float(sys.argv[3]):
    net.compute_face_descriptor(chips); n += len(chips)
print(n / (time.perf_counter() - t))
"""


def rate(fn, items: int, seconds: float) -> float:
    fn()  # warm-up
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        fn()
        n += items
    return n / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crops", type=Path, default=ROOT / "build" / "distill-cache" / "crops")
    p.add_argument("--sface", type=Path,
                   default=SHARED / "teacher" / "models" / "face_recognition_sface_2021dec_int8bq.onnx")
    p.add_argument("--dlib-python", default=None, help="a Python with dlib installed, to time the dlib teacher")
    p.add_argument("--dlib-model", type=Path,
                   default=SHARED / "teacher" / "models" / "dlib_face_recognition_resnet_model_v1.dat")
    p.add_argument("--seconds", type=float, default=10.0, help="time per model (default 10)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import cv2
    import torch

    from facerec import pretrained
    from facerec.distill.crops import load_crop_store
    from facerec.distill.teachers import SFace
    from facerec.recognition.pipeline import embed_images

    crops = load_crop_store(args.crops).images[:64]
    model = pretrained.load_model()
    out = {"threads": torch.get_num_threads(), "batch": 64, "crops_per_second": {}}
    out["crops_per_second"]["facerec shipped model"] = rate(
        lambda: embed_images(model, crops, torch.device("cpu"), batch_size=64), 64, args.seconds)
    sface = SFace(args.sface)
    out["crops_per_second"]["SFace (batch 1)"] = rate(lambda: sface.embed(crops[:8]), 8, args.seconds)
    if args.dlib_python:
        chips = np.stack([cv2.resize(c, (150, 150), interpolation=cv2.INTER_LINEAR) for c in crops])
        path = ROOT / "build" / "bench-chips.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, chips)
        result = subprocess.run([args.dlib_python, "-c", DLIB_SNIPPET, str(args.dlib_model), str(path),
                                 str(args.seconds)], capture_output=True, text=True, check=True)
        out["crops_per_second"]["dlib ResNet (batch 64)"] = float(result.stdout.strip())
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for name, value in out["crops_per_second"].items():
            print(f"{name:28s} {value:8.1f} crops/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
