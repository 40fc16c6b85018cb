"""Detection rate on a seeded sample of LFW images: the share of images with at least one face.

    python tools/bench_detection.py --root ../shared/data/lfw/images \
        --detector ../shared/models/face_detection_yunet_2023mar.onnx --sample 500 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facerec.data.folder import IMAGE_EXTENSIONS  # noqa: E402
from facerec.detect import make_detector  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder of person folders")
    parser.add_argument("--detector", default="haar")
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    files = sorted(p for p in Path(args.root).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    pick = np.random.default_rng(args.seed).choice(len(files), min(args.sample, len(files)), replace=False)
    detect = make_detector(args.detector)
    found = several = 0
    t = time.perf_counter()
    for i in pick:
        faces = detect(cv2.imread(str(files[i])))
        found += bool(faces)
        several += len(faces) > 1
    seconds = time.perf_counter() - t
    report = {"images": len(pick), "with_face": found, "rate": found / len(pick), "several_faces": several,
              "seconds": round(seconds, 1), "images_per_second": round(len(pick) / seconds, 1),
              "detector": args.detector, "seed": args.seed}
    print(json.dumps(report, indent=2) if args.json else
          f"{report['with_face']}/{report['images']} images with a face ({report['rate']:.1%}), "
          f"{several} with several; {report['images_per_second']} img/s")


if __name__ == "__main__":
    main()
