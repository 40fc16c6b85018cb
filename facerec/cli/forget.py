"""``facerec forget``: one erasure request (``forgetting.request``), or the ledger."""

from __future__ import annotations

from facerec.cli.args import positive_int
from facerec.cli.options import add_common, add_face_options, command_session, command_workspace, emit
from facerec.cli.reports import describe_forget
from facerec.core.errors import FaceRecError


def add_parsers(sub) -> None:
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
    add_face_options(p)
    add_common(p)
    p.set_defaults(func=cmd_forget)


def cmd_forget(args) -> None:
    from facerec.workspace.erasure import ledger

    if args.ledger:
        if args.names:
            raise FaceRecError("--ledger takes no names")
        entries = ledger(command_workspace(args).root)
        emit(args, {"ledger": entries}, "\n".join(
            f"{e['request']}  {e['time']}  {e['method']:10s} {len(e['people'])} people  "
            f"model {e['model_version_before']} -> {e['model_version_after']}" for e in entries) or "no forget requests")
        return
    if not args.names:
        raise FaceRecError("usage: facerec forget NAME... (or facerec forget --ledger)")
    if args.recognizer:
        raise FaceRecError("forget changes the workspace's own model; --recognizer is for enroll, recognize and eval")
    r = command_session(args).forget(forget_request(args), show_progress=not args.quiet)
    emit(args, r, describe_forget(r))


def forget_request(args):
    """The request ``facerec forget``'s options ask for (``forgetting.request.ForgetRequest``), checked."""
    from forgetting.request import ForgetRequest

    return ForgetRequest.build(args.names, method=args.method, settings=args.set, steps=args.steps, seed=args.seed,
                               shots=args.shots, replay_fraction=args.replay, images=args.images or (),
                               detector="aligned" if args.aligned or not args.images else args.detector)
