"""``facerec train``, ``demo`` and ``models``: training a workspace, the demo, the model names."""

from __future__ import annotations

import contextlib
import dataclasses

from facerec.cli.args import positive_int
from facerec.cli.options import add_common, add_training, emit, train_config, writing
from facerec.cli.reports import describe_demo, describe_face_demo, describe_training
from facerec.core.errors import FaceRecError

# The demo's synthetic set: 40 people x 12 images (10 to train, 2 held out). Synthetic faces vary
# more per image than ORL's, so the demo trains longer than `train`'s default.
DEMO_IDENTITIES, DEMO_IMAGES, DEMO_EPOCHS = 40, 12, 90
DEMO_FORGET_SHARE = 0.1  # the demo then forgets 10 % of the people (GS-LoRA)


def add_parsers(sub) -> None:
    """``train`` and ``demo``."""
    p = sub.add_parser("train", help="train a face model on a folder-per-identity dataset")
    p.add_argument("data_dir", metavar="DATA_DIR", help="one subfolder per person, with that person's images")
    p.add_argument("--min-images", type=positive_int, default=None, help="leave out people with fewer images")
    p.add_argument("--max-images", type=positive_int, default=None, help="use at most this many images per person")
    p.add_argument("--test-per-identity", type=positive_int, default=2, help="held-out images per person (default 2)")
    p.add_argument("--replay-shots", type=int, default=4, metavar="K",
                   help="keep K training crops per person in the workspace, so forget works without the data "
                        "(default 4; 0 keeps none)")
    p.add_argument("--restart", action="store_true", help="ignore an unfinished run's checkpoint and start over")
    p.add_argument("--stream", action="store_true",
                   help="decode images when training draws them instead of all at once (the default above 50,000 "
                        "images: memory holds the index, not the images)")
    p.add_argument("--sharded-head", choices=["auto", "on", "off"], default="auto",
                   help="under torchrun, split the identity head across the processes (Partial FC); auto: from "
                        "50,000 people")
    p.add_argument("--head-sample-rate", type=float, default=1.0, metavar="R",
                   help="with the sharded head, the share of other people's centres in each step's softmax "
                        "(Partial FC's sampling; default 1.0: all, the exact loss)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="data loader processes decoding and augmenting images (default 0: in the training process)")
    p.add_argument("--init-from", default=None, metavar="MODEL.safetensors",
                   help="fine-tune this face model file (tools/train_face_model.py's model.safetensors with its "
                        "model.json) instead of the shipped model; forget --method retrain starts from it again")
    add_training(p)
    add_common(p)
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
    add_training(p, epochs=DEMO_EPOCHS)
    add_common(p)
    p.set_defaults(func=cmd_demo)


def add_models_parser(sub) -> None:
    p = sub.add_parser("models", help="list the model names")
    add_common(p, workspace=False)
    p.set_defaults(func=cmd_models)


def cmd_train(args) -> None:
    from facerec.training.run import train_workspace
    from facerec.workspace.workspace import resolve_workspace_path

    if args.replay_shots < 0:
        raise FaceRecError(f"--replay-shots must be >= 0, got {args.replay_shots}")
    if not 0 <= args.workers <= 64:
        raise FaceRecError(f"--workers must be from 0 to 64, got {args.workers}")
    if not 0 < args.head_sample_rate <= 1:
        raise FaceRecError(f"--head-sample-rate must be in (0, 1], got {args.head_sample_rate}")
    if args.head_sample_rate < 1 and args.sharded_head != "on":
        raise FaceRecError("--head-sample-rate needs --sharded-head on")
    config = dataclasses.replace(train_config(args), sharded_head=args.sharded_head,  # a bad --init-from fails
                                 head_sample_rate=args.head_sample_rate)  # here, before the workspace is created
    rank = _launcher_rank()
    with writing(args, create=True) if rank == 0 else contextlib.nullcontext():  # torchrun: rank 0 writes
        report = train_workspace(
            args.data_dir, resolve_workspace_path(args.workspace), model_name=args.model, config=config,
            from_scratch=args.from_scratch, init_from=args.init_from,
            min_images=args.min_images, max_images=args.max_images, test_per_identity=args.test_per_identity,
            replay_shots=args.replay_shots, device=args.device, restart=args.restart, show_progress=not args.quiet,
            workers=args.workers, stream=True if args.stream else None,
        )
    if rank == 0:
        emit(args, report, describe_training(report))


def _launcher_rank() -> int:
    """This process's rank under torchrun (``RANK``), 0 without a launcher."""
    import os

    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        raise FaceRecError("RANK must be a whole number (torchrun sets it)") from None


def cmd_demo(args) -> None:
    from facerec.training.run import fine_tunes
    from facerec.cli.demo import run_demo
    from facerec.workspace.workspace import resolve_workspace_path

    from forgetting.request import ForgetRequest, choose_people, run_request

    workspace = resolve_workspace_path(args.workspace)
    if args.data and fine_tunes(args.model, args.from_scratch):
        return _face_demo(args, workspace)
    with writing(args, create=True):
        report = run_demo(
            workspace, data_dir=args.data, identities=args.identities,
            images_per_identity=args.images_per_identity, model_name=args.model, config=train_config(args),
            device=args.device, show_progress=not args.quiet,
        )
        # erase 10 % of the people: from the weights, the gallery, the crops and the demo's data
        request = ForgetRequest(tuple(choose_people(workspace, DEMO_FORGET_SHARE, args.seed)))
        forget = run_request(workspace, request, device=args.device, show_progress=not args.quiet)
    report["forget"] = {k: forget[k] for k in ("forgotten", "acc_f", "acc_f_before", "acc_r", "acc_r_before",
                                               "acc_o", "h_mean", "h_ceiling", "seconds", "seconds_total",
                                               "zero_group_share", "trainable_ratio", "model_version", "request")}
    report["forget"]["gallery_check"] = forget["gallery"].get("check")
    emit(args, report, describe_demo(report, forget))


def _face_demo(args, workspace) -> None:
    from facerec.cli.demo import run_face_demo

    if not 0 < args.far < 1:
        raise FaceRecError(f"--far must be between 0 and 1, got {args.far}")
    with writing(args, create=True):
        r = run_face_demo(workspace, args.data, detector=args.detector, far=args.far, seed=args.seed,
                          device=args.device, show_progress=not args.quiet)
    emit(args, r, describe_face_demo(r))


def cmd_models(args) -> None:
    from facerec.models import list_models

    models = list_models()
    emit(args, {"models": models}, "\n".join(f"{name:18s} {text}" for name, text in models.items()))
