"""A fresh, never-calibrated workspace on people the shipped model never saw (issue 25's bar).

    python tools/bench_open_set.py                 # 50 LFW fold-1 people, YuNet, the shipped model
    python tools/bench_open_set.py --people 50 --json

Through the CLI, in subprocesses, as a user runs it: the first photo of each of ``--people``
LFW View 2 fold-1 people (people with two or more photos, drawn with ``--seed``) is enrolled with
``facerec enroll --folder``; then ``facerec recognize --folder`` on their other photos (accepted as
them: the open-set accuracy) and on every photo of the other fold-1 people (strangers: accepted
as anyone = 1 - unknown rate). Also times the enrolment of a 100-photo folder end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def facerec(*argv: str) -> dict:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run([sys.executable, "-m", "facerec", *argv, "--json", "-q"], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"facerec {' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def copy_people(images: Path, people: dict[str, list[str]], dest: Path) -> Path:
    for person, files in people.items():
        (dest / person).mkdir(parents=True)
        for name in files:
            shutil.copyfile(images / person / name, dest / person / name)
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lfw", type=Path, default=SHARED / "data" / "lfw")
    p.add_argument("--detector", default=f"yunet:{SHARED / 'models' / 'face_detection_yunet_2023mar.onnx'}")
    p.add_argument("--people", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from facerec.data.pairs import fold_people, read_pairs

    images = args.lfw / "images"
    fold1 = sorted(fold_people(read_pairs(args.lfw / "pairs.txt", images), (1,)))
    photos = {person: sorted(os.listdir(images / person)) for person in fold1}
    several = [person for person in fold1 if len(photos[person]) >= 2]
    enrolled = sorted(random.Random(args.seed).sample(several, args.people))
    strangers = [person for person in fold1 if person not in enrolled]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gallery = copy_people(images, {q: photos[q][:1] for q in enrolled}, tmp / "enroll")
        own = copy_people(images, {q: photos[q][1:] for q in enrolled}, tmp / "own")
        others = copy_people(images, {q: photos[q] for q in strangers}, tmp / "strangers")
        ws = str(tmp / "ws")
        enroll = facerec("enroll", "--folder", str(gallery), "--detector", args.detector, "-w", ws)
        mine = facerec("recognize", "--folder", str(own), "--detector", args.detector, "-w", ws)
        inside = set(facerec("people", "-w", ws)["people"])  # a first photo with two faces is refused
        own_enrolled = copy_people(images, {q: photos[q][1:] for q in enrolled if q in inside}, tmp / "own-enrolled")
        mine_enrolled = facerec("recognize", "--folder", str(own_enrolled), "--detector", args.detector, "-w", ws)
        theirs = facerec("recognize", "--folder", str(others), "--detector", args.detector, "-w", ws)
        hundred = {q: photos[q] for q in several}
        picked, count = {}, 0
        for q in sorted(hundred, key=lambda q: -len(hundred[q])):
            take = hundred[q][:100 - count]
            picked[q], count = take, count + len(take)
            if count == 100:
                break
        folder = copy_people(images, picked, tmp / "hundred")
        t0 = time.perf_counter()
        timed = facerec("enroll", "--folder", str(folder), "--detector", args.detector, "-w", str(tmp / "ws100"))
        seconds = time.perf_counter() - t0
    report = {"people_enrolled": args.people, "enrolled_images": enroll["enrolled_images"], "seed": args.seed,
              "threshold": mine["threshold"], "calibrated": False,
              "people_refused_at_enroll": args.people - len(inside),
              "own_photos": mine["images"], "own_accepted_as_them": mine["open_set_accuracy"], "own_rank1": mine["rank1"],
              "own_photos_of_enrolled": mine_enrolled["images"],
              "own_accepted_as_them_of_enrolled": mine_enrolled["open_set_accuracy"],
              "stranger_people": len(strangers), "stranger_photos": theirs["images"],
              "strangers_accepted_as_anyone": 1 - theirs["unknown_rate"],
              "enroll_100_photos_seconds": round(seconds, 1), "enroll_100_photos_enrolled": timed["enrolled_images"]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"fresh workspace, threshold {report['threshold']:.4f} (never calibrated): first photo of {args.people} "
              f"fold-1 people ({report['people_refused_at_enroll']} refused: not one face); own photos accepted as "
              f"them {report['own_accepted_as_them']:.3f} ({report['own_photos']}; "
              f"{report['own_accepted_as_them_of_enrolled']:.3f} of the enrolled people's), strangers accepted as anyone {report['strangers_accepted_as_anyone']:.3f} "
              f"({report['stranger_photos']} photos of {len(strangers)} people); "
              f"enroll of a 100-photo folder {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
