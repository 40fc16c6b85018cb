"""Check the torch port of SFace against OpenCV's own ``cv2.FaceRecognizerSF`` on aligned LFW crops.

    python tools/check_sface_port.py                       # 200 crops of the distillation crop store
    python tools/check_sface_port.py --count 1000 --json

The crops are the distillation recipe's (``build/distill-cache/crops``: YuNet + five-point
alignment; ``tools/train_face_model.py`` builds them). Prints the cosine between the port's and
OpenCV's embedding of each crop (min / mean) and the ratio of their norms.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sface", type=Path,
                   default=SHARED / "teacher" / "models" / "face_recognition_sface_2021dec_int8bq.onnx")
    p.add_argument("--crops", type=Path, default=ROOT / "build" / "distill-cache" / "crops")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import cv2
    import numpy as np
    import torch

    from facerec.data.transforms import to_tensor
    from facerec.distill.crops import load_crop_store
    from facerec.distill.sface_port import load

    store = load_crop_store(args.crops)
    rows = np.random.default_rng(args.seed).choice(len(store.images), min(args.count, len(store.images)), replace=False)
    crops = store.images[np.sort(rows)]
    opencv = cv2.FaceRecognizerSF.create(str(args.sface), "")
    want = np.stack([opencv.feature(np.ascontiguousarray(cv2.cvtColor(c, cv2.COLOR_RGB2BGR))).reshape(-1)
                     for c in crops])
    net = load(args.sface)
    with torch.no_grad():
        got = torch.cat([net(to_tensor(crops[i:i + 64])) for i in range(0, len(crops), 64)]).numpy()
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    ratio = np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    report = {"crops": len(crops), "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
              "norm_ratio_min": float(ratio.min()), "norm_ratio_max": float(ratio.max()),
              "max_abs_difference": float(np.abs(got - want).max()), "reference": "cv2.FaceRecognizerSF " + cv2.__version__}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['crops']} crops: cosine min {report['cosine_min']:.6f}, mean {report['cosine_mean']:.6f}; "
              f"norm ratio {report['norm_ratio_min']:.5f}..{report['norm_ratio_max']:.5f}; "
              f"max |difference| {report['max_abs_difference']:.2e} (against {report['reference']})")
    return 0 if cos.min() >= 0.999 else 1


if __name__ == "__main__":
    raise SystemExit(main())
