"""The ``facerec`` command line: parses arguments, calls ``facerec.api``, prints results.

Every command that reports results takes ``--json`` (one JSON object on stdout). Progress bars go
to stderr; ``-q`` silences them. A user error prints one line, ``error: ...``, and exits 2;
anything unexpected prints one line too (set ``FACEREC_DEBUG=1`` for the traceback) and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import __version__
from .errors import FaceRecError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _add_common(p: argparse.ArgumentParser, workspace: bool = True) -> None:
    if workspace:
        p.add_argument("-w", "--workspace", default=None,
                       help="workspace directory (default: $FACEREC_WORKSPACE, else ./facerec-workspace)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _add_training(p: argparse.ArgumentParser) -> None:
    from .models import DEFAULT_MODEL
    from .train import TrainConfig

    d = TrainConfig()
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (see `facerec models`; default {DEFAULT_MODEL})")
    p.add_argument("--epochs", type=_positive_int, default=d.epochs, help=f"training epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--margin", choices=["cosface", "arcface"], default=d.margin, help="training margin (default cosface)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for the split, init and augmentation (default 0)")
    p.add_argument("--device", default=None, help="auto (default: GPU if present), cpu or cuda")


def _train_config(args):
    from .train import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, margin=args.margin, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facerec", description="Face recognition that can forget.")
    parser.add_argument("--version", action="version", version=f"facerec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a face model on a folder-per-identity dataset")
    p.add_argument("data_dir", metavar="DATA_DIR", help="one subfolder per person, with that person's images")
    p.add_argument("--min-images", type=_positive_int, default=None, help="leave out people with fewer images")
    p.add_argument("--max-images", type=_positive_int, default=None, help="use at most this many images per person")
    p.add_argument("--test-per-identity", type=_positive_int, default=2, help="held-out images per person (default 2)")
    p.add_argument("--restart", action="store_true", help="ignore an unfinished run's checkpoint and start over")
    _add_training(p)
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="train on synthetic identities (or --data) and report, offline")
    p.add_argument("--data", default=None, help="a folder dataset to use instead of synthetic identities")
    p.add_argument("--identities", type=_positive_int, default=100, help="synthetic identities (default 100)")
    p.add_argument("--images-per-identity", type=_positive_int, default=10, help="synthetic images each (default 10)")
    _add_training(p)
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list the model names")
    _add_common(p, workspace=False)
    p.set_defaults(func=cmd_models)
    return parser


def _emit(args, report: dict, human: str) -> None:
    print(json.dumps(report, indent=2) if args.json else human)


def cmd_train(args) -> None:
    from .api import train_workspace
    from .workspace import resolve_workspace_path

    report = train_workspace(
        args.data_dir, resolve_workspace_path(args.workspace), model_name=args.model, config=_train_config(args),
        min_images=args.min_images, max_images=args.max_images, test_per_identity=args.test_per_identity,
        device=args.device, restart=args.restart, show_progress=not args.quiet,
    )
    _emit(args, report, _describe_training(report))


def _describe_training(r: dict) -> str:
    lines = [
        f"trained {r['model']} on {r['identities']} identities ({r['train_images']} train / {r['test_images']} held-out images)"
        f" in {r['seconds']:.1f} s on {r['device']}"
        + (f", resumed from epoch {r['resumed_from_epoch']}" if r["resumed_from_epoch"] else ""),
        f"held-out top-1: {r['top1']:.3f}   (train top-1 {r['train_top1']:.3f})",
        f"workspace: {r['workspace']}   model version {r['model_version']}",
    ]
    if r["skipped_unreadable"]:
        lines.append(f"skipped {r['skipped_unreadable']} unreadable image file(s)")
    if r["dropped_identities"]:
        lines.append(f"left out {r['dropped_identities']} people with too few images")
    return "\n".join(lines)


def cmd_demo(args) -> None:
    from .api import run_demo
    from .workspace import resolve_workspace_path

    report = run_demo(
        resolve_workspace_path(args.workspace), data_dir=args.data, identities=args.identities,
        images_per_identity=args.images_per_identity, model_name=args.model, config=_train_config(args),
        device=args.device, show_progress=not args.quiet,
    )
    data = report["data"]
    human = f"data: {data['source']} — {data['identities']} identities, {data['images']} images\n" + _describe_training(report["train"])
    _emit(args, report, human)


def cmd_models(args) -> None:
    from .models import list_models

    models = list_models()
    _emit(args, {"models": models}, "\n".join(f"{name:18s} {text}" for name, text in models.items()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FaceRecError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted; a training run resumes from its last epoch when run again", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not a user error: still one line unless asked for more
        if os.environ.get("FACEREC_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (set FACEREC_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
