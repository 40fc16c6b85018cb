"""One table for face models trained by tools/train_face_model.py (issue 25's comparison).

    python tools/compare_face_models.py build/hybrid12 build/hybrid6 build/old-model [--json]

Each argument is a run folder (``model.safetensors`` + ``model.json``) or a model file
(``X.safetensors`` with ``X.json`` beside it). Per model: SFace weights it carries, the forward
FLOPs of one 112x112 crop and the share in the Transformer blocks and in SFace's stages
(``torch.utils.flop_counter``), training crops/s from its record (crops x epochs / seconds),
LFW fold-1 accuracy and TAR at FAR 1e-2, identification among fold-1 people, ORL zero-shot rank-1,
the open-set threshold, and embedding crops/s measured here (batch 64, this machine's threads;
time it with nothing else running).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _files(arg: Path) -> Path:
    return arg / "model.safetensors" if arg.is_dir() else arg


def flops(model) -> dict:
    """Forward FLOPs of one crop: in all, in the Transformer blocks, in SFace's stages."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def count(fn, x) -> tuple[float, torch.Tensor]:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            out = fn(x)
        return counter.get_total_flops(), out

    x = torch.zeros(1, 3, 112, 112)
    total, _ = count(model.embed, x)
    stem = getattr(model.patch_embed, "stem", None)
    sface = count(stem, x)[0] if stem is not None else 0.0
    with torch.no_grad():
        tokens = model._pos_embed(model.patch_embed(x))
    blocks, _ = count(model.blocks, tokens)
    return {"gflops": total / 1e9, "blocks_share": blocks / total, "sface_share": sface / total}


def embedding_speed(model, batch: int = 64, repeats: int = 5) -> float:
    import torch

    x = torch.randn(batch, 3, 112, 112)
    with torch.inference_mode():
        model.embed(x)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model.embed(x)
    return batch * repeats / (time.perf_counter() - t0)


def row(arg: Path) -> dict:
    from facerec.pretrained import load_model, read_record

    weights = _files(arg)
    info = read_record(weights)
    model = load_model("cpu", weights)
    stem = getattr(model.patch_embed, "stem", None)
    ev = info.get("evaluation", {})
    student = ev.get("models", {}).get("student", {})
    training = info.get("training", {})
    epochs = len(training.get("history", [])) or info.get("recipe", {}).get("epochs")
    crops = info.get("data", {}).get("crops")
    seconds = training.get("training_seconds")
    return {
        "model": str(arg), "name": info["name"], "sface_stages": model.config.stem_stages,
        "sface_parameters_shipped": sum(p.numel() for p in stem.parameters()) if stem is not None else 0,
        "parameters": sum(p.numel() for p in model.parameters()), **flops(model),
        "training_crops_per_s": crops * epochs / seconds if crops and epochs and seconds else None,
        "training_minutes": seconds / 60 if seconds else None,
        "fold1_accuracy": student.get("fold1", {}).get("accuracy_mean"),
        "fold1_tar_at_far_1e-2": student.get("fold1", {}).get("tar_at_far", {}).get("0.01", {}).get("tar"),
        "ten_fold_accuracy": student.get("ten_folds", {}).get("accuracy_mean"),
        "fold1_rank1": student.get("identification_fold1", {}).get("rank1"),
        "fold1_tpir_at_fpir_0.01": student.get("identification_fold1", {}).get("tpir"),
        "orl_rank1": ev.get("orl", {}).get("models", {}).get("student", {}).get("rank1_nearest_photo"),
        "open_set_threshold": info.get("open_set", {}).get("threshold"),
        "embedding_crops_per_s": embedding_speed(model),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = [row(m) for m in args.models]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0

    def f(v, fmt):
        return "—" if v is None else format(v, fmt)

    print("| model | SFace stages (weights) | GFLOPs | in blocks | in SFace stem | train crops/s | fold-1 acc | "
          "TAR@1e-2 | rank-1 | TPIR@.01 | ORL rank-1 | embed crops/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['sface_stages']} ({r['sface_parameters_shipped'] / 1e6:.2f} M) | {r['gflops']:.2f} | "
              f"{r['blocks_share']:.0%} | {r['sface_share']:.0%} | {f(r['training_crops_per_s'], '.0f')} | "
              f"{f(r['fold1_accuracy'], '.4f')} | {f(r['fold1_tar_at_far_1e-2'], '.4f')} | {f(r['fold1_rank1'], '.4f')} | "
              f"{f(r['fold1_tpir_at_fpir_0.01'], '.4f')} | {f(r['orl_rank1'], '.3f')} | {r['embedding_crops_per_s']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
