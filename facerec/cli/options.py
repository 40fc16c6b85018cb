"""What the CLI's commands share: the common options, the training and face options, the workspace
of a command, the writer lock, and printing a report (``--json`` or text, one line per line)."""

from __future__ import annotations

import argparse
import json

from facerec.cli.args import positive_float, positive_int
from facerec.core.atomic import strict_json


def add_common(p: argparse.ArgumentParser, workspace: bool = True) -> None:
    if workspace:
        p.add_argument("-w", "--workspace", default=None,
                       help="workspace directory (default: $FACEREC_WORKSPACE, else ./facerec-workspace)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")



def add_training(p: argparse.ArgumentParser, epochs: int | None = None) -> None:
    from facerec.models.config import DEFAULT_MODEL
    from facerec.training.recipe import FINE_TUNE_EPOCHS, FINE_TUNE_LR, TrainConfig

    d = TrainConfig()
    p.add_argument("--model", default=None,
                   help=f"model name (see `facerec models`); default: fine-tune the shipped model, or {DEFAULT_MODEL} "
                        f"from scratch when there is none")
    p.add_argument("--from-scratch", action="store_true", help="random initial weights instead of the shipped model's")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"training epochs (default {epochs or d.epochs}; {FINE_TUNE_EPOCHS} when fine-tuning)")
    p.set_defaults(scratch_epochs=epochs or d.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"peak learning rate (default {d.lr}; {FINE_TUNE_LR} when fine-tuning)")
    p.add_argument("--margin", choices=["cosface", "arcface"], default=d.margin, help="training margin (default cosface)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for the split, init and augmentation (default 0)")
    p.add_argument("--device", default=None, help="auto (default: GPU if present), cpu or cuda")


def train_config(args):
    from facerec.training.run import training_config

    return training_config(model_name=args.model, from_scratch=args.from_scratch, init_from=getattr(args, "init_from", None),
                           epochs=args.epochs, scratch_epochs=args.scratch_epochs, lr=args.lr,
                           batch_size=args.batch_size, margin=args.margin, seed=args.seed)


def add_face_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", default="haar",
                   help="haar (default, no files), a YuNet or insightface ONNX path, or yunet:PATH / scrfd:PATH")
    p.add_argument("--aligned", action="store_true", help="inputs are already face crops: skip detection")
    p.add_argument("--recognizer", default=None, metavar="ONNX",
                   help="embed with this ArcFace-layout ONNX model (facerec export --onnx, or insightface's) "
                        "instead of the workspace's model")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")


def command_session(args):
    """The :class:`facerec.public.Session` a command works through: its workspace and face options."""
    from facerec.public.session import Session

    detector = "aligned" if getattr(args, "aligned", False) else getattr(args, "detector", "aligned")
    return Session(args.workspace, detector=detector, device=getattr(args, "device", None),
                   recognizer=getattr(args, "recognizer", None))


def command_pipeline(args, read_only: bool = False):
    """The command's pipeline (``Session.pipeline``), for the evaluation commands' runs."""
    return command_session(args).pipeline(read_only=read_only)


def command_workspace(args):
    from facerec.workspace.workspace import Workspace, resolve_workspace_path

    settle(args)
    return Workspace(resolve_workspace_path(args.workspace))


def writing(args, create: bool = False, seed: bool = False, rebuilding: bool = False):
    """The workspace's writer lock (``workspace.writer.writing``), which yields the recovered workspace for the workspace of ``args``."""
    from facerec.workspace.writer import writing
    from facerec.workspace.workspace import resolve_workspace_path

    return writing(resolve_workspace_path(args.workspace), create=create, seed=seed, rebuilding=rebuilding)


def settle(args) -> None:
    from facerec.workspace.writer import settle
    from facerec.workspace.workspace import resolve_workspace_path

    settle(resolve_workspace_path(args.workspace))


def emit(args, report: dict, human: str) -> None:
    if args.json:
        print(json.dumps(strict_json(report), indent=2, allow_nan=False))
    else:
        print("\n".join(one_line(line) for line in human.split("\n")))


def one_line(text: str) -> str:
    """``text`` with control characters (newlines, escapes, bidi overrides) shown escaped; a tab
    stays a tab (``people`` separates its columns with one)."""
    return "".join(c if c.isprintable() or c in " \t" else ascii(c)[1:-1] for c in text)

