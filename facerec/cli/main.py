"""The ``facerec`` command line: parses arguments, calls the library, prints results.

Every command that reports results takes ``--json`` (one JSON object on stdout). Progress bars go
to stderr; ``-q`` silences them. A user error prints one line, ``error: ...``, and exits 2;
anything unexpected prints one line too (set ``FACEREC_DEBUG=1`` for the traceback) and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from facerec import __version__
from facerec.cli.args import fold_list, positive_float, positive_int
from facerec.cli.service_commands import add_parsers as add_service_parsers
from facerec.core.errors import FaceRecError, storage_problem
from facerec.cli.reports import (describe_demo, describe_enroll, describe_face_demo, describe_forget,
                                 describe_forgetting_eval, describe_recognition, describe_training, strict_json)


def _add_common(p: argparse.ArgumentParser, workspace: bool = True) -> None:
    if workspace:
        p.add_argument("-w", "--workspace", default=None,
                       help="workspace directory (default: $FACEREC_WORKSPACE, else ./facerec-workspace)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


# The demo's synthetic set: 40 people x 12 images (10 to train, 2 held out). Synthetic faces vary
# more per image than ORL's, so the demo trains longer than `train`'s default.
DEMO_IDENTITIES, DEMO_IMAGES, DEMO_EPOCHS = 40, 12, 90
DEMO_FORGET_SHARE = 0.1  # the demo then forgets 10 % of the people (GS-LoRA)
DEFAULT_BENCH_METHODS = "gs-lora,gs-lora-paper,gs-lora++,finetune,grad-ascent,random-label,salun,scrub,lwf,l2,ewc"


def _add_training(p: argparse.ArgumentParser, epochs: int | None = None) -> None:
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


def _train_config(args):
    from facerec.training.run import training_config

    return training_config(model_name=args.model, from_scratch=args.from_scratch, init_from=getattr(args, "init_from", None),
                           epochs=args.epochs, scratch_epochs=args.scratch_epochs, lr=args.lr,
                           batch_size=args.batch_size, margin=args.margin, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facerec", description="Face recognition that can forget.")
    parser.add_argument("--version", action="version", version=f"facerec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a face model on a folder-per-identity dataset")
    p.add_argument("data_dir", metavar="DATA_DIR", help="one subfolder per person, with that person's images")
    p.add_argument("--min-images", type=positive_int, default=None, help="leave out people with fewer images")
    p.add_argument("--max-images", type=positive_int, default=None, help="use at most this many images per person")
    p.add_argument("--test-per-identity", type=positive_int, default=2, help="held-out images per person (default 2)")
    p.add_argument("--replay-shots", type=int, default=4, metavar="K",
                   help="keep K training crops per person in the workspace, so forget works without the data "
                        "(default 4; 0 keeps none)")
    p.add_argument("--restart", action="store_true", help="ignore an unfinished run's checkpoint and start over")
    p.add_argument("--init-from", default=None, metavar="MODEL.safetensors",
                   help="fine-tune this face model file (tools/train_face_model.py's model.safetensors with its "
                        "model.json) instead of the shipped model; forget --method retrain starts from it again")
    _add_training(p)
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="the shipped model on real photos (--data), or training on synthetic identities")
    p.add_argument("--data", default=None,
                   help="a folder of people (LFW's images/ or your own): enroll a few photos of people the shipped "
                        "model never saw, recognise their other photos and strangers, forget one of them")
    p.add_argument("--detector", default="haar", help="face detector for --data (as in enroll; default haar)")
    p.add_argument("--far", type=float, default=1e-3, help="open-set threshold's target FAR for --data (default 1e-3)")
    p.add_argument("--identities", type=positive_int, default=DEMO_IDENTITIES,
                   help=f"synthetic identities (default {DEMO_IDENTITIES})")
    p.add_argument("--images-per-identity", type=positive_int, default=DEMO_IMAGES,
                   help=f"synthetic images each, 2 of them held out (default {DEMO_IMAGES})")
    _add_training(p, epochs=DEMO_EPOCHS)
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("enroll", help="enroll a person from images (or everyone in a folder tree)")
    p.add_argument("name", nargs="?", metavar="NAME", help="the person's name")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="photos of NAME")
    p.add_argument("--folder", default=None, help="enroll every subfolder of this folder as one person")
    p.add_argument("--split", choices=["train", "test"], default=None,
                   help="with --folder: only the images of this part of the workspace's recorded split")
    p.add_argument("--multi-face", default="dominant", metavar="RULE",
                   help="a photo with several faces: 'dominant' enrolls the face that clearly stands out (default: "
                        "the largest, when it is twice any other's area, or 1.25x and nearest the centre), "
                        "'largest' the largest, 'refuse' none")
    _add_face_options(p)
    _add_common(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("recognize", help="identify every face in images against the gallery")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--folder", default=None,
                   help="labelled folder tree instead of images: report rank-1 and unknown rate against the names")
    p.add_argument("--split", choices=["train", "test"], default=None, help="with --folder: only this split part")
    p.add_argument("--top-k", type=positive_int, default=1, help="candidates per face (default 1)")
    _add_face_options(p)
    _add_common(p)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("verify", help="are the faces in two images the same person?")
    p.add_argument("image_a", metavar="IMAGE_A")
    p.add_argument("image_b", metavar="IMAGE_B")
    _add_face_options(p)
    _add_common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("people", help="enrolled people with their image counts")
    _add_common(p)
    p.set_defaults(func=cmd_people)

    p = sub.add_parser("remove", help="remove a person from the gallery and stored crops")
    p.add_argument("name", metavar="NAME")
    _add_common(p)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("reindex", help="rebuild the gallery from the stored face crops (after damage, or to re-embed)")
    p.add_argument("--restore-quarantined", action="store_true",
                   help="first move quarantined crops (crops no gallery row referred to) back, to enroll them again")
    _add_common(p)
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("calibrate", help="set the open-set threshold at a target false-accept rate")
    p.add_argument("--far", type=float, default=1e-3, help="target false-accept rate (default 1e-3)")
    p.add_argument("--pairs", default=None, help="a pairs file (LFW pairs.txt format) instead of enrolled data")
    p.add_argument("--root", default=None, help="image root for --pairs (the folder of person folders, or its parent)")
    p.add_argument("--strangers", default=None, metavar="DIR",
                   help="a folder per person of photos of people who are NOT enrolled (nor, ideally, trained on): "
                        "each is searched against the gallery, so --far is the rate a stranger is accepted as anyone")
    _add_face_options(p)
    _add_common(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("forget", help="erase people from the model, the gallery and storage (GS-LoRA), or show the ledger")
    p.add_argument("names", nargs="*", metavar="NAME", help="the people to forget, in one request")
    p.add_argument("--method", default="gs-lora", metavar="METHOD",
                   help="gs-lora (default: forgotten faces become strangers' faces), gs-lora++ (adds the prototype "
                        "term; for few replay shots), gs-lora-calibrated / gs-lora++-calibrated (one edit of every "
                        "face, training photos held to where unseen ones go: closer to a retrained model beyond "
                        "the head), gs-lora-paper / gs-lora++-paper (the paper's bounded CE ascent), or a baseline: retrain, finetune, grad-ascent, random-label, salun, scrub, lwf, l2, ewc")
    p.add_argument("--shots", type=positive_int, default=None, help="replay K images per retained person")
    p.add_argument("--replay", type=float, default=1.0,
                   help="replay this fraction of each retained person's training images (default 1.0)")
    p.add_argument("--images", nargs="+", default=None, help="images of the person to unlearn from (one person)")
    p.add_argument("--steps", type=positive_int, default=None, help="exactly this many unlearning steps (default: 120, or 24 per forgotten person when that is more)")
    p.add_argument("--seed", type=int, default=0, help="seed for the replay sample and LoRA init (default 0)")
    p.add_argument("--ledger", action="store_true", help="show the forget ledger instead of forgetting")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a GS-LoRA setting (forgetting.gslora.GSLoRAConfig), e.g. keep_weight=4; repeatable")
    _add_face_options(p)
    _add_common(p)
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("eval", help="evaluate the workspace's model: verification, identification")
    evals = p.add_subparsers(dest="eval_command", metavar="PROTOCOL", required=True)
    q = evals.add_parser("verification", help="LFW 10-fold accuracy, TAR at FAR 1e-3/1e-2, ROC (pairs.txt or .bin)")
    q.add_argument("--pairs", default=None, help="pairs file in LFW pairs.txt format")
    q.add_argument("--root", default=None, help="image root for --pairs")
    q.add_argument("--bin", default=None, help="an insightface .bin verification set (lfw.bin, cfp_fp.bin, ...)")
    q.add_argument("--folds", type=positive_int, default=10, help="cross-validation folds (default 10)")
    q.add_argument("--flip", action="store_true", help="add each face's mirror image's embedding")
    q.add_argument("--out", default=None, help="directory for roc.png")
    q.add_argument("--skip-unreadable", action="store_true",
                   help="leave out pairs whose image cannot be decoded (listed in the report) instead of failing")
    q.add_argument("--fold", type=fold_list, default=None, metavar="K[,K]",
                   help="only the pairs of these folds of the listing (1-10), split into --folds sub-folds: "
                        "--fold 1 is the person-disjoint test of a model trained without fold 1's people")
    _add_face_options(q)
    _add_common(q)
    q.set_defaults(func=cmd_eval_verification)
    q = evals.add_parser("identification", help="closed-set rank-1/5 and open-set TPIR at FPIR on a folder dataset")
    q.add_argument("root", metavar="ROOT", help="folder per person (or a .rec file); faces are already crops")
    q.add_argument("--gallery-per-person", type=positive_int, default=1, help="enrolled images per person (default 1)")
    q.add_argument("--fpir", type=float, default=0.01, help="false-positive identification rate (default 0.01)")
    q.add_argument("--max-people", type=positive_int, default=None, help="use at most this many mated people")
    q.add_argument("--pairs", default=None, help="a pairs listing (LFW pairs.txt) whose --fold names the people")
    q.add_argument("--fold", type=fold_list, default=None, metavar="K[,K]",
                   help="only the people of these folds of --pairs (mated and one-photo distractors alike)")
    q.add_argument("--exclude", action="append", default=[], metavar="NAME", help="leave this person out (repeatable)")
    q.add_argument("--detector", default="aligned",
                   help="aligned (default: images are crops), or a detector as in enroll: align each central face")
    q.add_argument("--recognizer", default=None, metavar="ONNX", help="embed with this ONNX model, as in enroll")
    _add_common(q)
    q.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    q.set_defaults(func=cmd_eval_identification)

    q = evals.add_parser("forgetting", help="forgetting beyond the head: verification TAR, membership inference, "
                                            "relearning (runs on copies; the workspace is untouched)")
    q.add_argument("names", nargs="+", metavar="NAME", help="the people a request would forget")
    q.add_argument("--method", default="gs-lora",
                   help="forgetting method(s) as in facerec forget, comma-separated; one retrained reference serves all")
    q.add_argument("--far", type=float, default=1e-2, help="FAR for the verification TAR (default 1e-2)")
    q.add_argument("--relearn-steps", type=positive_int, default=30, help="fine-tuning steps of the relearning probes")
    q.add_argument("--relearn-shots", type=positive_int, default=2,
                   help="forgotten person's images in the second relearning probe (default 2 each)")
    q.add_argument("--shots", type=positive_int, default=None, help="replay K images per retained person")
    q.add_argument("--no-retrain", action="store_true", help="skip the retrained-without-them reference (slow)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a GS-LoRA setting (forgetting.gslora.GSLoRAConfig), e.g. keep_weight=4; repeatable")
    q.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    _add_common(q)
    q.set_defaults(func=cmd_eval_forgetting)

    p = sub.add_parser("bench", help="benchmarks: forgetting protocols with several methods")
    benches = p.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    q = benches.add_parser("forgetting", help="single / continual / few-shot forgetting, methods side by side")
    q.add_argument("--data", default=None, help="folder dataset: fine-tune the shipped model on it and enroll its "
                                                "training images (kept in OUT/base)")
    q.add_argument("--from-scratch", action="store_true", help="with --data: train the base model from random weights")
    q.add_argument("--init-from", default=None, metavar="MODEL.safetensors",
                   help="with --data: fine-tune this face model file instead of the shipped model (e.g. a backbone "
                        "that left the benchmark's people out: the clean retrain reference)")
    q.add_argument("--strangers", default=None, help="folder of aligned crops of people neither the model nor the "
                                                     "gallery saw: their unknown rate is the forgotten people's bar")
    q.add_argument("--protocol", choices=["single", "continual", "few-shot"], default="single")
    q.add_argument("--draws", type=positive_int, default=1, help="repeat each setting with this many victim draws")
    q.add_argument("--shares", default=None, help="single: comma-separated percentages forgotten (default 5,10,50,90)")
    q.add_argument("--shots", type=positive_int, default=None, help="replay K images per retained person")
    q.add_argument("--without-data", action="store_true",
                   help="forget with the data root gone: from stored crops and the replay buffer only")
    q.add_argument("--beyond-head", action="store_true",
                   help="also measure every request beyond the head (TAR among the forgotten, loss-attack AUC, "
                        "relearning), as gaps to retrain when it is among the methods")
    q.add_argument("--methods", default=DEFAULT_BENCH_METHODS,
                   help=f"comma-separated (default {DEFAULT_BENCH_METHODS}; add retrain for the reference)")
    q.add_argument("--out", default="forgetting-bench", help="directory for the table, JSON and plots")
    q.add_argument("--per-task", type=positive_int, default=None, help="continual: people per request (default 20 %%)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a GS-LoRA setting (forgetting.gslora.GSLoRAConfig), e.g. keep_weight=4; repeatable")
    q.add_argument("--epochs", type=positive_int, default=None, help="base model training epochs (default: train's)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    _add_common(q)
    q.set_defaults(func=cmd_bench_forgetting)

    q = benches.add_parser("lfw100", help="build LFW-100: the forgetting benchmark's CASIA-100-style split of LFW")
    q.add_argument("--lfw", required=True, help="LFW folder holding images/ and pairs.txt")
    q.add_argument("--out", required=True, help="new folder for the split (people/, strangers/, split.json)")
    q.add_argument("--detector", default="haar", help="face detector for alignment (yunet:PATH recommended)")
    q.add_argument("--people", type=positive_int, default=100, help="identities (default 100)")
    q.add_argument("--cap", type=positive_int, default=30, help="photos per person at most (default 30)")
    q.add_argument("--seed", type=int, default=0)
    _add_common(q, workspace=False)
    q.set_defaults(func=cmd_bench_lfw100)

    add_service_parsers(sub, _add_common, _emit)

    p = sub.add_parser("models", help="list the model names")
    _add_common(p, workspace=False)
    p.set_defaults(func=cmd_models)
    return parser


def _add_face_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", default="haar",
                   help="haar (default, no files), a YuNet or insightface ONNX path, or yunet:PATH / scrfd:PATH")
    p.add_argument("--aligned", action="store_true", help="inputs are already face crops: skip detection")
    p.add_argument("--recognizer", default=None, metavar="ONNX",
                   help="embed with this ArcFace-layout ONNX model (facerec export --onnx, or insightface's) "
                        "instead of the workspace's model")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")


def _pipeline(args):
    from facerec.recognition.pipeline import FacePipeline
    from facerec.workspace.workspace import Workspace, resolve_workspace_path

    _settle(args)
    detector = "aligned" if getattr(args, "aligned", False) else getattr(args, "detector", "aligned")
    return FacePipeline(Workspace(resolve_workspace_path(args.workspace)), detector=detector,
                        device=getattr(args, "device", None), recognizer=getattr(args, "recognizer", None))


def _workspace(args):
    from facerec.workspace.workspace import Workspace, resolve_workspace_path

    _settle(args)
    return Workspace(resolve_workspace_path(args.workspace))


def _writing(args, create: bool = False, seed: bool = False, rebuilding: bool = False):
    """The workspace's writer lock (``facerec.service.writing``) for the workspace of ``args``."""
    from facerec.workspace.writer import writing
    from facerec.workspace.workspace import resolve_workspace_path

    return writing(resolve_workspace_path(args.workspace), create=create, seed=seed, rebuilding=rebuilding)


def _settle(args) -> None:
    from facerec.workspace.writer import settle
    from facerec.workspace.workspace import resolve_workspace_path

    settle(resolve_workspace_path(args.workspace))


def _emit(args, report: dict, human: str) -> None:
    if args.json:
        print(json.dumps(strict_json(report), indent=2, allow_nan=False))
    else:
        print("\n".join(_one_line(line) for line in human.split("\n")))


def cmd_train(args) -> None:
    from facerec.training.run import train_workspace
    from facerec.workspace.workspace import resolve_workspace_path

    if args.replay_shots < 0:
        raise FaceRecError(f"--replay-shots must be >= 0, got {args.replay_shots}")
    config = _train_config(args)  # a bad --init-from fails here, before the workspace is created
    with _writing(args, create=True):
        report = train_workspace(
            args.data_dir, resolve_workspace_path(args.workspace), model_name=args.model, config=config,
            from_scratch=args.from_scratch, init_from=args.init_from,
            min_images=args.min_images, max_images=args.max_images, test_per_identity=args.test_per_identity,
            replay_shots=args.replay_shots, device=args.device, restart=args.restart, show_progress=not args.quiet,
        )
    _emit(args, report, describe_training(report))


def cmd_demo(args) -> None:
    from facerec.training.run import fine_tunes
    from facerec.cli.demo import run_demo
    from facerec.workspace.workspace import resolve_workspace_path

    from forgetting.request import choose_people, forget_people

    workspace = resolve_workspace_path(args.workspace)
    if args.data and fine_tunes(args.model, args.from_scratch):
        return _face_demo(args, workspace)
    with _writing(args, create=True):
        report = run_demo(
            workspace, data_dir=args.data, identities=args.identities,
            images_per_identity=args.images_per_identity, model_name=args.model, config=_train_config(args),
            device=args.device, show_progress=not args.quiet,
        )
        # erase 10 % of the people: from the weights, the gallery, the crops and the demo's data
        forget = forget_people(workspace, choose_people(workspace, DEMO_FORGET_SHARE, args.seed),
                               device=args.device, show_progress=not args.quiet)
    report["forget"] = {k: forget[k] for k in ("forgotten", "acc_f", "acc_f_before", "acc_r", "acc_r_before",
                                               "acc_o", "h_mean", "h_ceiling", "seconds", "seconds_total",
                                               "zero_group_share", "trainable_ratio", "model_version", "request")}
    report["forget"]["gallery_check"] = forget["gallery"].get("check")
    _emit(args, report, describe_demo(report, forget))


def _face_demo(args, workspace) -> None:
    from facerec.cli.demo import run_face_demo

    if not 0 < args.far < 1:
        raise FaceRecError(f"--far must be between 0 and 1, got {args.far}")
    with _writing(args, create=True):
        r = run_face_demo(workspace, args.data, detector=args.detector, far=args.far, seed=args.seed,
                          device=args.device, show_progress=not args.quiet)
    _emit(args, r, describe_face_demo(r))


def cmd_enroll(args) -> None:
    from facerec.core.progress import progress_bar
    from facerec.core.names import validate_name
    from facerec.recognition.enrollment import enroll_people
    from facerec.recognition.pipeline import folder_people
    from facerec.recognition.enrollment import enroll_summary, nothing_enrolled

    rejected: list[str] = []
    if args.folder:
        if args.name or args.images:
            raise FaceRecError("give either NAME IMAGE... or --folder ROOT, not both")
        people = folder_people(args.folder, split_part=args.split, workspace=_workspace(args) if args.split else None,
                               rejected=rejected)
    else:
        if not args.name or not args.images:
            raise FaceRecError("usage: facerec enroll NAME IMAGE... or facerec enroll --folder ROOT")
        people = {validate_name(args.name): args.images}  # before anything is written
    with _writing(args, seed=True):
        pipe = _pipeline(args)
        total = sum(len(v) for v in people.values())
        with progress_bar(total, "enroll", enabled=not args.quiet, unit="img") as bar:
            reports = enroll_people(pipe, people, progress=bar.update, multi_face=args.multi_face)
    report, problems = enroll_summary(reports, rejected)
    _emit(args, report, describe_enroll(report, problems))
    if (error := nothing_enrolled(report)) is not None:
        raise error


def cmd_recognize(args) -> None:
    from facerec.core.progress import progress_bar
    from facerec.recognition.pipeline import recognize

    if args.folder:
        from facerec.recognition.pipeline import evaluate_recognition, folder_people

        if args.images:
            raise FaceRecError("give either IMAGE... or --folder ROOT, not both")
        people = folder_people(args.folder, split_part=args.split, workspace=_workspace(args) if args.split else None)
        pipe = _pipeline(args)
        with progress_bar(sum(map(len, people.values())), "recognize", enabled=not args.quiet, unit="img") as bar:
            r = evaluate_recognition(pipe, people, progress=bar.update)
        _emit(args, r, f"rank-1 {r['rank1']:.3f}, unknown {r['unknown_rate']:.3f} over {r['images']} images "
                       f"(threshold {r['threshold']:.3f}; {r['no_face']} without a face)")
        return
    if not args.images:
        raise FaceRecError("give IMAGE... or --folder ROOT")
    pipe = _pipeline(args)
    with progress_bar(len(args.images), "recognize", enabled=not args.quiet, unit="img") as bar:
        report = recognize(pipe, args.images, top_k=args.top_k, progress=bar.update)
    _emit(args, report, describe_recognition(report))


def cmd_verify(args) -> None:
    from facerec.recognition.pipeline import verify

    r = verify(_pipeline(args), args.image_a, args.image_b)
    _emit(args, r, f"{'same person' if r['same'] else 'different people'}: score {r['score']:.3f}, threshold {r['threshold']:.3f}")


def cmd_people(args) -> None:
    from facerec.workspace.writer import enrolled_people
    from facerec.workspace.workspace import Workspace, resolve_workspace_path

    root = resolve_workspace_path(args.workspace)
    Workspace(root).manifest()  # a missing or newer workspace is an error, not "no one"
    people = enrolled_people(root)  # which finishes an interrupted forget first
    _emit(args, {"people": people, "count": len(people)},
          "\n".join(f"{n}\t{c}" for n, c in people.items()) or "no one is enrolled")


def cmd_remove(args) -> None:
    from facerec.core.names import validate_name
    from facerec.recognition.enrollment import remove

    validate_name(args.name)
    with _writing(args):
        r = remove(_pipeline(args), args.name)
    human = f"removed {r['name']}: {r['vectors_removed']} vector(s), {r['crops_removed']} crop(s)"
    if r["still_in_model"]:
        human += (f"\nnote: the model was trained on {r['name']} and still knows them; to erase them from the "
                  f"weights too, run `facerec forget {r['name']}`")
    _emit(args, r, human)


def cmd_reindex(args) -> None:
    from facerec.recognition.enrollment import reindex

    with _writing(args, rebuilding=True):
        r = reindex(_pipeline(args), restore_quarantined=args.restore_quarantined)
    _emit(args, r, f"re-embedded {r['vectors']} stored crop(s) of {r['people']} people with model {r['model_version']}"
                   + (f"; {r['restored_from_quarantine']} restored from quarantine" if r["restored_from_quarantine"] else "")
                   + (f"; skipped {len(r['skipped'])} unreadable crop(s)" if r["skipped"] else "")
                   + (f"; {r['rows_without_crop']} gallery row(s) had no stored crop and could not be rebuilt"
                      if r["rows_without_crop"] else ""))


def cmd_calibrate(args) -> None:
    from facerec.core.progress import progress_bar
    from facerec.recognition.pipeline import calibrate

    if bool(args.pairs) != bool(args.root):
        raise FaceRecError("--pairs and --root go together")
    if args.pairs and args.strangers:
        raise FaceRecError("--strangers calibrates against the gallery; --pairs without one: choose one")
    with _writing(args, seed=True):
        with progress_bar(None, "calibrate", enabled=not args.quiet and bool(args.pairs or args.strangers),
                          unit="img") as bar:
            r = calibrate(_pipeline(args), far=args.far, pairs_file=args.pairs, root=args.root,
                          strangers=args.strangers, progress=bar.update)
    impostors = (f"{r['stranger_photos']} stranger photos searched against the gallery" if "stranger_photos" in r
                 else f"{r['impostor_pairs']} impostor pairs")
    human = (f"threshold {r['threshold']:.4f} at FAR {r['far']:.2e} (target {r['far_target']:g}); "
             + (f"TAR {r['tar']:.3f} over {r['genuine_pairs']} genuine pairs" if r["tar"] is not None
                else "no genuine pairs (one photo per person)") + f" / {impostors}")
    if "warning" in r:
        human += f"\nwarning: {r['warning']}"
    _emit(args, r, human)


def cmd_forget(args) -> None:
    from facerec.workspace.erasure import ledger

    if args.ledger:
        if args.names:
            raise FaceRecError("--ledger takes no names")
        entries = ledger(_workspace(args).root)
        _emit(args, {"ledger": entries}, "\n".join(
            f"{e['request']}  {e['time']}  {e['method']:10s} {len(e['people'])} people  "
            f"model {e['model_version_before']} -> {e['model_version_after']}" for e in entries) or "no forget requests")
        return
    if not args.names:
        raise FaceRecError("usage: facerec forget NAME... (or facerec forget --ledger)")
    if args.recognizer:
        raise FaceRecError("forget changes the workspace's own model; --recognizer is for enroll, recognize and eval")
    from forgetting.request import forget_people, request_config  # torch and the model: not for the ledger

    config = request_config(args.set, steps=args.steps, seed=args.seed)
    detector = "aligned" if args.aligned or not args.images else args.detector
    with _writing(args, seed=True):
        r = forget_people(_workspace(args).root, args.names, method=args.method, shots=args.shots,
                          replay_fraction=args.replay, images=args.images, detector=detector, config=config,
                          device=args.device, show_progress=not args.quiet)
    _emit(args, r, describe_forget(r))


def cmd_eval_verification(args) -> None:
    from facerec.evaluation.runs import run_verification
    from facerec.core.progress import progress_bar

    with progress_bar(None, "embed", enabled=not args.quiet, unit="img") as bar:
        r = run_verification(_pipeline(args), pairs_file=args.pairs, root=args.root, bin_path=args.bin, flip=args.flip,
                             folds=args.folds, out=args.out, skip_unreadable=args.skip_unreadable,
                             only_folds=args.fold, progress=bar.update)
    tar = r["tar_at_far"]
    human = (f"{r['pairs']} pairs, {r['folds']}-fold accuracy {r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f}; "
             f"TAR {tar['0.001']['tar']:.4f} at FAR 1e-3, {tar['0.01']['tar']:.4f} at FAR 1e-2"
             + (f"; ROC: {r['roc_png']}" if "roc_png" in r else ""))
    _emit(args, r, human)


def cmd_eval_identification(args) -> None:
    from facerec.evaluation.runs import run_identification, select_people
    from facerec.core.progress import progress_bar

    if not 0 < args.fpir < 1:
        raise FaceRecError(f"--fpir must be between 0 and 1, got {args.fpir}")
    aligned = args.detector == "aligned"
    def chosen(listing):
        return select_people(listing, pairs_file=args.pairs, pairs_root=args.root, only_folds=args.fold,
                             exclude=args.exclude)

    people = chosen if args.fold or args.exclude else None
    with progress_bar(None, "embed", enabled=not args.quiet, unit="img") as bar:
        r = run_identification(_pipeline(args), args.root, gallery_per_person=args.gallery_per_person, fpir=args.fpir,
                               max_people=args.max_people, aligned=aligned, people=people, progress=bar.update)
    human = (f"{r['people']} people, {r['mated_probes']} mated probes: rank-1 {r['rank1']:.4f}, rank-5 {r['rank5']:.4f}"
             + (f"; {r['distractors']} distractors: TPIR {r['tpir']:.4f} at FPIR {r['fpir']:.4f}" if "tpir" in r else ""))
    _emit(args, r, human)


def cmd_eval_forgetting(args) -> None:
    from forgetting.evaluate import evaluate_forgetting
    from forgetting.request import METHODS, request_config

    if not 0 < args.far < 1:
        raise FaceRecError(f"--far must be between 0 and 1, got {args.far}")
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise FaceRecError(f"unknown forgetting method(s) {', '.join(unknown) or args.method!r}; "
                           f"choose from {', '.join(METHODS)}")
    r = evaluate_forgetting(_workspace(args).root, args.names, method=methods, far=args.far,
                            relearn_steps=args.relearn_steps, relearn_shots=args.relearn_shots,
                            retrain=not args.no_retrain, shots=args.shots, config=request_config(args.set),
                            device=args.device, show_progress=not args.quiet)
    _emit(args, r, describe_forgetting_eval(r, args.far))


def cmd_bench_forgetting(args) -> None:
    from pathlib import Path

    from forgetting.bench import SINGLE_SHARES, run_bench, write_outputs
    from forgetting.request import request_config

    from facerec.data.folder import read_folder_images
    from facerec.workspace.workspace import Workspace

    out = Path(args.out)
    base = _bench_base(args, out / "base") if args.data else _workspace(args).root
    Workspace(base).manifest()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    shares = SINGLE_SHARES if args.shares is None else tuple(_percentages(args.shares))
    strangers = read_folder_images(args.strangers, "--strangers") if args.strangers else None
    try:
        bench = run_bench(base, args.protocol, methods, seed=args.seed, draws=args.draws, per_task=args.per_task,
                          shares=shares, shots=args.shots, strangers=strangers, without_data=args.without_data,
                          beyond=args.beyond_head, config=request_config(args.set) if args.set else None,
                          device=args.device, show_progress=not args.quiet)
    except ValueError as err:
        raise FaceRecError(str(err)) from None
    bench["outputs"] = write_outputs(bench, out)
    _emit(args, bench, Path(bench["outputs"]["markdown"]).read_text() + "\n" + "\n".join(
        f"{k}: {v}" for k, v in bench["outputs"].items()))


def cmd_bench_lfw100(args) -> None:
    from pathlib import Path

    from facerec.data.lfw100 import build_lfw100
    from facerec.core.progress import progress_bar

    lfw = Path(args.lfw)
    with progress_bar(None, "align", enabled=not args.quiet, unit="img") as bar:
        r = build_lfw100(lfw / "images" if (lfw / "images").is_dir() else lfw, lfw / "pairs.txt", args.out,
                         detector=args.detector, people=args.people, cap=args.cap, seed=args.seed, progress=bar.update)
    _emit(args, r, f"{r['name']}: {len(r['people'])} people, {r['photos']} photos in {args.out}/people; "
                   f"{r['strangers']['photos']} photos of {r['strangers']['people']} fold-1 strangers in "
                   f"{args.out}/strangers; {len(r['skipped'])} skipped (no face or unreadable)")


def _bench_base(args, base):
    """The bench's base workspace for ``--data`` (``api.build_bench_base``), reused while the data
    and the start are the same."""
    from facerec.evaluation.bench_base import bench_base_current, build_bench_base

    if not bench_base_current(base, args.data, from_scratch=args.from_scratch, init_from=args.init_from):
        with _writing(argparse.Namespace(workspace=str(base)), create=True):
            build_bench_base(base, args.data, from_scratch=args.from_scratch, init_from=args.init_from,
                             epochs=args.epochs, seed=args.seed, device=args.device, show_progress=not args.quiet)
    return base


def _percentages(text: str) -> list[float]:
    try:
        values = [float(v) / 100 for v in text.split(",") if v.strip()]
    except ValueError:
        raise FaceRecError(f"--shares takes comma-separated percentages, got {text!r}") from None
    if not values or not all(0 < v < 1 for v in values):
        raise FaceRecError(f"--shares: every percentage must be between 0 and 100, got {text!r}")
    return values


def cmd_models(args) -> None:
    from facerec.models import list_models

    models = list_models()
    _emit(args, {"models": models}, "\n".join(f"{name:18s} {text}" for name, text in models.items()))


def main(argv: list[str] | None = None) -> int:
    from gallery import GalleryCorrupt, GalleryError

    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints escaped, never raises
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    _show_notes()
    try:
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
    except (FaceRecError, GalleryError) as err:
        hint = "; rebuild it from the stored crops with `facerec reindex`" if isinstance(err, GalleryCorrupt) else ""
        print(f"error: {_one_line(str(err))}{hint}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        print("interrupted; a training run resumes from its last epoch when run again", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `facerec people | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more reaches the pipe
        return 0
    except Exception as err:  # the disk, not the input: one line, exit 2; anything else is a bug
        if (reason := storage_problem(err)) is not None:
            print(f"error: {_one_line(reason)}; whatever the command had not committed was undone", file=sys.stderr)
            return 2
        if os.environ.get("FACEREC_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {_one_line(str(err))} (set FACEREC_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
    return 0


def _show_notes() -> None:
    """The library's notes (``logging`` at WARNING on the ``facerec`` logger: crops moved to
    quarantine, say) as one ``note: ...`` line each on stderr."""
    import logging

    class Notes(logging.Handler):
        def emit(self, record):
            print(f"note: {_one_line(record.getMessage())}", file=sys.stderr)  # today's sys.stderr

    logger = logging.getLogger("facerec")
    if not any(type(h).__name__ == "Notes" for h in logger.handlers):
        logger.addHandler(Notes(logging.WARNING))


def _one_line(text: str) -> str:
    """``text`` with control characters (newlines, escapes, bidi overrides) shown escaped; a tab
    stays a tab (``people`` separates its columns with one)."""
    return "".join(c if c.isprintable() or c in " \t" else ascii(c)[1:-1] for c in text)


if __name__ == "__main__":
    sys.exit(main())
