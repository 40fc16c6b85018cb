"""The CLI's commands for facerec as a service and among other tools: ``serve``, ``keys``, ``export``,
``import-checkpoint``.

Parsers and handlers only; the work is in :mod:`facerec.server`, :mod:`facerec.server.apikeys`,
:mod:`facerec.models.onnx` and :mod:`facerec.training.convert`.
"""

from __future__ import annotations

from facerec.cli.args import port, positive_float, positive_int
from facerec.core.errors import FaceRecError


def add_parsers(sub, add_common, emit) -> None:
    """Add ``serve``, ``keys``, ``export`` and ``import-checkpoint`` to the CLI's subcommands; ``emit(args, report, human)`` prints."""
    p = sub.add_parser("serve", help="serve the workspace over HTTP (enroll, recognize, verify, forget, ...)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port, default=8000)
    p.add_argument("--detector", default="haar",
                   help="haar (default, no files), a YuNet or insightface ONNX path, or yunet:PATH / scrfd:PATH")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    p.add_argument("--keyless-reads", action="store_true",
                   help="let recognize, verify and the listings through without a key (changes always need one)")
    p.add_argument("--max-upload-mb", type=positive_float, default=16.0, help="largest request body (default 16)")
    p.add_argument("--max-images", type=positive_int, default=32, help="images per request at most (default 32)")
    p.add_argument("--max-megapixels", type=positive_float, default=40.0,
                   help="largest image, read from its header before decoding (default 40, the most facerec reads)")
    p.add_argument("--recognizer", default=None, metavar="ONNX",
                   help="embed with this ArcFace-layout ONNX model instead of the workspace's (forget still "
                        "changes the workspace's own model)")
    add_common(p)
    p.set_defaults(func=lambda args: cmd_serve(args))

    p = sub.add_parser("keys", help="API keys for `facerec serve` (stored hashed in the workspace)")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    q = keys.add_parser("add", help="create a key; it is printed once and cannot be shown again")
    q.add_argument("name", metavar="NAME", help="what the key is for (letters, digits, '.', '_', '-')")
    q.add_argument("--read-only", action="store_true", help="the key may recognize, verify and list, not change")
    add_common(q)
    q.set_defaults(func=lambda args: cmd_keys_add(args, emit))
    q = keys.add_parser("list", help="the workspace's keys (names, ids, scopes; never the keys)")
    add_common(q)
    q.set_defaults(func=lambda args: cmd_keys_list(args, emit))
    q = keys.add_parser("revoke", help="remove a key; requests with it are refused at once")
    q.add_argument("name", metavar="NAME")
    add_common(q)
    q.set_defaults(func=lambda args: cmd_keys_revoke(args, emit))


    p = sub.add_parser("export", help="the workspace's face model as ONNX (onnxruntime, insightface's model zoo)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    add_common(p)
    p.set_defaults(func=lambda args: cmd_export(args, emit))


    p = sub.add_parser("import-checkpoint",
                       help="a workspace from a face ViT checkpoint: the GS-LoRA authors' Face Transformer (ViT_face) "
                            "or an insightface arcface_torch ViT (LVFace, TransFace)")
    p.add_argument("checkpoint", metavar="CKPT", help="their state dict (.pth, read with weights_only; or .safetensors)")
    p.add_argument("--data", required=True, help="the folder-per-person data it was trained on (head rows = sorted folders)")
    p.add_argument("--test-per-identity", type=int, default=2, help="held-out images per person (default 2)")
    p.add_argument("--lora-alpha", type=float, default=1.0, help="loralib's lora_alpha, if the FFN has LoRA factors")
    p.add_argument("--heads", type=positive_int, default=None,
                   help="attention heads of an arcface_torch ViT (not in its weights; default 8, as all of theirs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    add_common(p)
    p.set_defaults(func=lambda args: cmd_import(args, emit))


def _root(args):
    from facerec.workspace.workspace import resolve_workspace_path

    return resolve_workspace_path(args.workspace)


def cmd_serve(args) -> None:
    from facerec.server import serve

    serve(_root(args), args.host, args.port, detector=args.detector, device=args.device,
          keyless_reads=args.keyless_reads, upload_mb=args.max_upload_mb, max_images=args.max_images,
          max_megapixels=min(args.max_megapixels, 40.0),
          recognizer=args.recognizer, quiet=args.quiet)


def cmd_keys_add(args, emit) -> None:
    from facerec.server.apikeys import add_key

    key, record = add_key(_root(args), args.name, "read" if args.read_only else "write")
    emit(args, {"key": key, **record},
         f"{key}\n(key {record['name']!r}, id {record['id']}, scope {record['scope']}: shown once, store it now)")


def cmd_keys_list(args, emit) -> None:
    from facerec.server.apikeys import list_keys

    keys = list_keys(_root(args))
    emit(args, {"keys": keys}, "\n".join(f"{k['name']}\t{k['id']}\t{k['scope']}\t{k['created']}" for k in keys)
         or "no keys")


def cmd_keys_revoke(args, emit) -> None:
    from facerec.server.apikeys import revoke_key

    record = revoke_key(_root(args), args.name)
    emit(args, record, f"revoked key {record['name']!r} (id {record['id']})")


def cmd_export(args, emit) -> None:
    """The workspace's model (the shipped one while the workspace has none of its own)."""
    from facerec import pretrained
    from facerec.workspace.shipped import shipped_manifest
    from facerec.models.onnx import OPSET, export_onnx
    from facerec.workspace.writer import settle
    from facerec.workspace.workspace import Workspace

    ws = Workspace(_root(args))
    settle(ws.root)
    if ws.exists():
        manifest, model = ws.manifest(), ws.load_model()
    elif pretrained.available():
        manifest, model = shipped_manifest(), pretrained.load_model("cpu")
    else:
        raise FaceRecError(f"workspace {ws.root} has no model; train one first")
    r = export_onnx(model, args.onnx, model_version=manifest["model"]["version"], model_name=manifest["model"]["name"],
                    opset=args.opset or OPSET)
    emit(args, r, f"wrote {r['onnx']} ({r['bytes'] / 1e6:.1f} MB): {r['model']} model {r['model_version']}, "
                  f"{r['embedding_dim']}-d embedding; onnxruntime agrees with facerec to cosine {r['check_min_cosine']:.6f}")


def cmd_import(args, emit) -> None:
    from facerec.training.convert import import_checkpoint
    from facerec.workspace.writer import writing

    root = _root(args)
    with writing(root, create=True):
        r = import_checkpoint(args.checkpoint, root, args.data, test_per_identity=args.test_per_identity,
                              seed=args.seed, lora_alpha=args.lora_alpha, heads=args.heads, device=args.device)
    emit(args, r, f"imported {r['model']} ({r['identities']} people) as model {r['model_version']} into "
                  f"{r['workspace']}; held-out top-1 {r['top1']:.3f} over {r['test_images']} images")
