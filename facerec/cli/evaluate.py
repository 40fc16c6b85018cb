"""``facerec eval`` (verification, identification, forgetting) and ``bench`` (forgetting, lfw100, casia100;
campaign in ``campaign.py``)."""

from __future__ import annotations

import argparse

from facerec.cli import campaign
from facerec.cli.args import fold_list, positive_int
from facerec.cli.options import add_common, add_face_options, command_pipeline, command_workspace, emit, writing
from facerec.cli.reports import describe_forgetting_eval
from facerec.core.errors import FaceRecError

DEFAULT_BENCH_METHODS = "gs-lora,gs-lora-paper,gs-lora++,finetune,grad-ascent,random-label,salun,scrub,lwf,l2,ewc"


def add_parsers(sub) -> None:
    p = sub.add_parser("eval", help="evaluate the workspace's model: verification, identification")
    evals = p.add_subparsers(dest="eval_command", metavar="PROTOCOL", required=True)
    _eval_verification_parser(evals)
    _eval_identification_parser(evals)
    _eval_forgetting_parser(evals)

    p = sub.add_parser("bench", help="benchmarks: forgetting protocols with several methods")
    benches = p.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    _bench_forgetting_parser(benches)
    _bench_lfw100_parser(benches)
    _bench_casia100_parser(benches)
    campaign.add_parser(benches)


def _eval_verification_parser(evals) -> None:
    """``facerec eval verification``."""
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
    add_face_options(q)
    add_common(q)
    q.set_defaults(func=cmd_eval_verification)


def _eval_identification_parser(evals) -> None:
    """``facerec eval identification``."""
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
    add_common(q)
    q.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    q.set_defaults(func=cmd_eval_identification)


def _eval_forgetting_parser(evals) -> None:
    """``facerec eval forgetting``."""
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
    add_common(q)
    q.set_defaults(func=cmd_eval_forgetting)


def _bench_forgetting_parser(benches) -> None:
    """``facerec bench forgetting``."""
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
    add_common(q)
    q.set_defaults(func=cmd_bench_forgetting)


def _bench_lfw100_parser(benches) -> None:
    """``facerec bench lfw100``."""
    q = benches.add_parser("lfw100", help="build LFW-100: the forgetting benchmark's CASIA-100-style split of LFW")
    q.add_argument("--lfw", required=True, help="LFW folder holding images/ and pairs.txt")
    q.add_argument("--out", required=True, help="new folder for the split (people/, strangers/, split.json)")
    q.add_argument("--detector", default="haar", help="face detector for alignment (yunet:PATH recommended)")
    q.add_argument("--people", type=positive_int, default=100, help="identities (default 100)")
    q.add_argument("--cap", type=positive_int, default=30, help="photos per person at most (default 30)")
    q.add_argument("--seed", type=int, default=0)
    add_common(q, workspace=False)
    q.set_defaults(func=cmd_bench_lfw100)

def _bench_casia100_parser(benches) -> None:
    """``facerec bench casia100``."""
    q = benches.add_parser("casia100", help="build CASIA-100, the GS-LoRA papers' face split, from CASIA-WebFace's "
                                            "train.rec")
    q.add_argument("--rec", required=True, help="insightface's faces_webface_112x112/train.rec (train.idx beside it)")
    q.add_argument("--out", required=True, help="new folder for the split (people/, strangers/, split.json)")
    q.add_argument("--people", type=positive_int, default=100, help="identities: the most photographed (default 100)")
    q.add_argument("--cap", type=positive_int, default=None, help="records per person at most (default: all)")
    q.add_argument("--strangers", type=int, default=100, help="other people kept as strangers (default 100)")
    q.add_argument("--seed", type=int, default=0)
    add_common(q, workspace=False)
    q.set_defaults(func=cmd_bench_casia100)


def cmd_eval_verification(args) -> None:
    from facerec.evaluation.runs import run_verification
    from facerec.core.progress import progress_bar

    with progress_bar(None, "embed", enabled=not args.quiet, unit="img") as bar:
        r = run_verification(command_pipeline(args), pairs_file=args.pairs, root=args.root, bin_path=args.bin, flip=args.flip,
                             folds=args.folds, out=args.out, skip_unreadable=args.skip_unreadable,
                             only_folds=args.fold, progress=bar.update)
    tar = r["tar_at_far"]
    human = (f"{r['pairs']} pairs, {r['folds']}-fold accuracy {r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f}; "
             f"TAR {tar['0.001']['tar']:.4f} at FAR 1e-3, {tar['0.01']['tar']:.4f} at FAR 1e-2"
             + (f"; ROC: {r['roc_png']}" if "roc_png" in r else ""))
    emit(args, r, human)


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
        r = run_identification(command_pipeline(args), args.root, gallery_per_person=args.gallery_per_person, fpir=args.fpir,
                               max_people=args.max_people, aligned=aligned, people=people, progress=bar.update)
    human = (f"{r['people']} people, {r['mated_probes']} mated probes: rank-1 {r['rank1']:.4f}, rank-5 {r['rank5']:.4f}"
             + (f"; {r['distractors']} distractors: TPIR {r['tpir']:.4f} at FPIR {r['fpir']:.4f}" if "tpir" in r else ""))
    emit(args, r, human)


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
    r = evaluate_forgetting(command_workspace(args).root, args.names, method=methods, far=args.far,
                            relearn_steps=args.relearn_steps, relearn_shots=args.relearn_shots,
                            retrain=not args.no_retrain, shots=args.shots, config=request_config(args.set),
                            device=args.device, show_progress=not args.quiet)
    emit(args, r, describe_forgetting_eval(r, args.far))


def cmd_bench_forgetting(args) -> None:
    from pathlib import Path

    from forgetting.bench import SINGLE_SHARES, run_bench, write_outputs
    from forgetting.request import request_config

    from facerec.data.folder import read_folder_images
    from facerec.workspace.workspace import Workspace

    out = Path(args.out)
    base = _bench_base(args, out / "base") if args.data else command_workspace(args).root
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
    emit(args, bench, Path(bench["outputs"]["markdown"]).read_text() + "\n" + "\n".join(
        f"{k}: {v}" for k, v in bench["outputs"].items()))


def cmd_bench_lfw100(args) -> None:
    from pathlib import Path

    from facerec.data.lfw100 import build_lfw100
    from facerec.core.progress import progress_bar

    lfw = Path(args.lfw)
    with progress_bar(None, "align", enabled=not args.quiet, unit="img") as bar:
        r = build_lfw100(lfw / "images" if (lfw / "images").is_dir() else lfw, lfw / "pairs.txt", args.out,
                         detector=args.detector, people=args.people, cap=args.cap, seed=args.seed, progress=bar.update)
    emit(args, r, f"{r['name']}: {len(r['people'])} people, {r['photos']} photos in {args.out}/people; "
                   f"{r['strangers']['photos']} photos of {r['strangers']['people']} fold-1 strangers in "
                   f"{args.out}/strangers; {len(r['skipped'])} skipped (no face or unreadable)")


def cmd_bench_casia100(args) -> None:
    from facerec.data.casia100 import build_casia100
    from facerec.core.progress import progress_bar

    if args.strangers < 0:
        raise FaceRecError(f"--strangers must be >= 0, got {args.strangers}")
    with progress_bar(None, "copy", enabled=not args.quiet, unit="img") as bar:
        r = build_casia100(args.rec, args.out, people=args.people, cap=args.cap, strangers=args.strangers,
                           seed=args.seed, progress=bar.update)
    emit(args, r, f"{r['name']}: {len(r['people'])} people, {r['photos']} photos in {args.out}/people; "
                   f"{r['strangers']['photos']} photos of {r['strangers']['people']} strangers in {args.out}/strangers; "
                   f"{len(r['skipped'])} skipped (unreadable); then: facerec bench forgetting --data {args.out}/people "
                   f"--strangers {args.out}/strangers")


def _bench_base(args, base):
    """The bench's base workspace for ``--data`` (``api.build_bench_base``), reused while the data
    and the start are the same."""
    from facerec.evaluation.bench_base import bench_base_current, build_bench_base

    if not bench_base_current(base, args.data, from_scratch=args.from_scratch, init_from=args.init_from):
        with writing(argparse.Namespace(workspace=str(base)), create=True):
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
