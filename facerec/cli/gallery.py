"""``facerec gallery``: where the workspace's gallery lives (its folder, or PostgreSQL) and moving it."""

from __future__ import annotations

from facerec.cli.options import add_common, emit, writing


def add_parsers(sub) -> None:
    p = sub.add_parser("gallery", help="where the gallery lives: the workspace folder or PostgreSQL")
    galleries = p.add_subparsers(dest="gallery_command", metavar="ACTION", required=True)
    q = galleries.add_parser("use", help="move the gallery (no re-embedding): `use postgresql://USER@HOST/DB` or "
                                         "`use embedded`")
    q.add_argument("where", metavar="URL|embedded",
                   help="a postgresql:// URL without a password (PGPASSWORD, ~/.pgpass or PGSERVICE give it), or "
                        "'embedded' for the FAISS gallery inside the workspace")
    add_common(q)
    q.set_defaults(func=cmd_gallery_use)
    q = galleries.add_parser("info", help="the gallery's backend, location, model and size")
    add_common(q)
    q.set_defaults(func=cmd_gallery_info)


def cmd_gallery_use(args) -> None:
    from facerec.workspace.galleries import check_url, use_embedded, use_postgresql

    if args.where != "embedded":
        from gallery.postgres import connect

        check_url(args.where)  # before the lock: a password in the URL is refused, nothing written
        connect(args.where).close()  # and an unreachable server, a refused login or no pgvector
    with writing(args, seed=True) as ws:
        r = use_embedded(ws) if args.where == "embedded" else use_postgresql(ws, args.where)
    emit(args, r, f"the gallery is now {r['gallery']} ({r['vectors']} vectors moved, none re-embedded)")


def cmd_gallery_info(args) -> None:
    from facerec.cli.options import command_workspace
    from facerec.workspace.galleries import store

    ws = command_workspace(args)
    galleries = store(ws.root, ws.manifest())
    r = {"backend": galleries.backend, "gallery": str(galleries.describe()), "exists": galleries.exists()}
    if r["exists"]:
        with galleries.open(read_only=True) as g:
            r.update(model_version=g.model_version, dimension=g.dim, vectors=len(g), people=len(g.people()))
    emit(args, r, f"{r['backend']} gallery at {r['gallery']}: "
                  + (f"{r['people']} people, {r['vectors']} vectors of model {r['model_version']}" if r["exists"]
                     else "empty (no one enrolled)"))
