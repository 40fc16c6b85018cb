"""Streamed training at CASIA-WebFace scale: peak memory against the record count, and samples/s
with 0, 1 and 2 loader workers.

Usage::

    python tools/bench_streaming.py --records 50000,500000 --dir build/streambench [--steps 40] [--json OUT]

For each size a synthetic insightface ``train.rec`` is written once (``--dir``/rec<N>/train.rec:
synthetic faces of N / 47 people, CASIA-WebFace's images per person, each record its own noise,
JPEG quality 95), then each measurement runs in a fresh process: the ``.rec`` is listed and split
as ``facerec train --stream`` does (``training.datasets``) and the CPU default model
(``vit-face-cpu``) trains ``--steps`` steps of 64 with augmentation (``train_model(max_steps=)``).
Peak RSS is the training process's own (``VmHWM``) and, with workers, the largest worker's;
samples/s counts the timed steps after two warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PER_PERSON = 47  # CASIA-WebFace: 494,414 images of 10,575 people


def write_rec(path: Path, records: int) -> None:
    import cv2
    import numpy as np

    from facerec.data.insightface_formats import write_records
    from facerec.data.synthetic import render_image

    people = max(1, records // PER_PERSON)
    rng = np.random.default_rng(0)

    def person_of(i: int) -> int:  # records grouped by person, as in CASIA-WebFace's .rec
        return min(i // PER_PERSON, people - 1)

    def images():
        renders: tuple = (-1, [])
        for i in range(records):
            if renders[0] != person_of(i):  # two renders per person, each record with its own noise
                renders = (person_of(i), [render_image(11, person_of(i), j).astype(np.int16) for j in range(2)])
            noisy = renders[1][i % 2] + rng.integers(-8, 9, (112, 112, 3))
            yield cv2.imencode(".jpg", np.clip(noisy, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()

    path.parent.mkdir(parents=True, exist_ok=True)
    write_records(path, images(), (person_of(i) for i in range(records)), count=records)


def child(rec: str, workers: int, steps: int) -> dict:
    import torch

    from facerec.models import create_model
    from facerec.training.datasets import load_training_data
    from facerec.training.recipe import TrainConfig
    from facerec.training.trainer import train_model

    torch.manual_seed(0)
    t0 = time.perf_counter()
    data = load_training_data(rec, min_images=None, max_images=None, test_per_identity=2, seed=0, stream=True)
    listed = time.perf_counter() - t0
    model = create_model("vit-face-cpu", len(data.identities))
    cfg = TrainConfig(epochs=1, batch_size=64)
    train_model(model, data.train, None, cfg, device=torch.device("cpu"), show_progress=False, workers=workers,
                max_steps=2)  # warm-up: first batches, allocator
    t0 = time.perf_counter()
    train_model(model, data.train, None, cfg, device=torch.device("cpu"), show_progress=False, workers=workers,
                max_steps=steps)
    seconds = time.perf_counter() - t0
    return {"records": len(data.train) + len(data.test), "people": len(data.identities), "workers": workers,
            "list_seconds": round(listed, 1), "samples_per_s": round(steps * 64 / seconds, 1),
            "peak_rss_mib": round(_own_peak_kib() / 1024),
            "peak_worker_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}


def _own_peak_kib() -> int:
    """This process's peak RSS (VmHWM: ru_maxrss would keep the parent's across exec)."""
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmHWM")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default="50000,500000")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--dir", default="build/streambench")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--json", default=None, help="append each result to this JSON-lines file")
    parser.add_argument("--child", nargs=3, metavar=("REC", "WORKERS", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), int(args.child[2]))))
        return 0
    for records in map(int, args.records.split(",")):
        rec = Path(args.dir) / f"rec{records}" / "train.rec"
        if not rec.exists():
            t0 = time.perf_counter()
            write_rec(rec, records)
            print(f"wrote {rec} ({rec.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.0f} s", flush=True)
        for workers in map(int, args.workers.split(",")):
            out = subprocess.run([sys.executable, __file__, "--child", str(rec), str(workers), str(args.steps)],
                                 capture_output=True, text=True, check=True)
            result = {**json.loads(out.stdout.strip().splitlines()[-1]), "rec_gib": round(rec.stat().st_size / 2**30, 2)}
            print(json.dumps(result), flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
