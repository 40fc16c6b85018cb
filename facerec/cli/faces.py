"""``facerec enroll``, ``recognize``, ``verify``, ``people``, ``remove``, ``reindex``, ``calibrate``: the gallery."""

from __future__ import annotations

from facerec.cli.args import positive_int
from facerec.cli.options import add_common, add_face_options, command_session, command_workspace, emit
from facerec.cli.reports import describe_enroll, describe_recognition
from facerec.core.errors import FaceRecError


def add_parsers(sub) -> None:
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
    add_face_options(p)
    add_common(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("recognize", help="identify every face in images against the gallery")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--folder", default=None,
                   help="labelled folder tree instead of images: report rank-1 and unknown rate against the names")
    p.add_argument("--split", choices=["train", "test"], default=None, help="with --folder: only this split part")
    p.add_argument("--top-k", type=positive_int, default=1, help="candidates per face (default 1)")
    add_face_options(p)
    add_common(p)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("verify", help="are the faces in two images the same person?")
    p.add_argument("image_a", metavar="IMAGE_A")
    p.add_argument("image_b", metavar="IMAGE_B")
    add_face_options(p)
    add_common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("people", help="enrolled people with their image counts")
    add_common(p)
    p.set_defaults(func=cmd_people)

    p = sub.add_parser("remove", help="remove a person from the gallery and stored crops")
    p.add_argument("name", metavar="NAME")
    add_common(p)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("reindex", help="rebuild the gallery from the stored face crops (after damage, or to re-embed)")
    p.add_argument("--restore-quarantined", action="store_true",
                   help="first move quarantined crops (crops no gallery row referred to) back, to enroll them again")
    add_common(p)
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("calibrate", help="set the open-set threshold at a target false-accept rate")
    p.add_argument("--far", type=float, default=1e-3, help="target false-accept rate (default 1e-3)")
    p.add_argument("--pairs", default=None, help="a pairs file (LFW pairs.txt format) instead of enrolled data")
    p.add_argument("--root", default=None, help="image root for --pairs (the folder of person folders, or its parent)")
    p.add_argument("--strangers", default=None, metavar="DIR",
                   help="a folder per person of photos of people who are NOT enrolled (nor, ideally, trained on): "
                        "each is searched against the gallery, so --far is the rate a stranger is accepted as anyone")
    add_face_options(p)
    add_common(p)
    p.set_defaults(func=cmd_calibrate)


def cmd_enroll(args) -> None:
    from facerec.core.progress import progress_bar
    from facerec.core.names import validate_name
    from facerec.public import to_dict
    from facerec.recognition.pipeline import folder_people
    from facerec.recognition.enrollment import nothing_enrolled

    rejected: list[str] = []
    if args.folder:
        if args.name or args.images:
            raise FaceRecError("give either NAME IMAGE... or --folder ROOT, not both")
        people = folder_people(args.folder, split_part=args.split, workspace=command_workspace(args) if args.split else None,
                               rejected=rejected)
    else:
        if not args.name or not args.images:
            raise FaceRecError("usage: facerec enroll NAME IMAGE... or facerec enroll --folder ROOT")
        people = {validate_name(args.name): args.images}
    with progress_bar(sum(len(v) for v in people.values()), "enroll", enabled=not args.quiet, unit="img") as bar:
        report = to_dict(command_session(args).enroll(people, multi_face=args.multi_face, progress=bar.update,
                                                      rejected=rejected))
    emit(args, report, describe_enroll(report))
    if (error := nothing_enrolled(report)) is not None:
        raise error


def cmd_recognize(args) -> None:
    from facerec.core.progress import progress_bar
    from facerec.public import to_dict

    if args.folder:
        from facerec.recognition.pipeline import folder_people

        if args.images:
            raise FaceRecError("give either IMAGE... or --folder ROOT, not both")
        people = folder_people(args.folder, split_part=args.split, workspace=command_workspace(args) if args.split else None)
        with progress_bar(sum(map(len, people.values())), "recognize", enabled=not args.quiet, unit="img") as bar:
            r = command_session(args).evaluate(people, progress=bar.update)
        emit(args, r, f"rank-1 {r['rank1']:.3f}, unknown {r['unknown_rate']:.3f} over {r['images']} images "
                       f"(threshold {r['threshold']:.3f}; {r['no_face']} without a face)")
        return
    if not args.images:
        raise FaceRecError("give IMAGE... or --folder ROOT")
    with progress_bar(len(args.images), "recognize", enabled=not args.quiet, unit="img") as bar:
        report = to_dict(command_session(args).recognize(args.images, top_k=args.top_k, progress=bar.update))
    emit(args, report, describe_recognition(report))


def cmd_verify(args) -> None:
    from facerec.public import to_dict

    r = to_dict(command_session(args).verify(args.image_a, args.image_b))
    emit(args, r, f"{'same person' if r['same'] else 'different people'}: score {r['score']:.3f}, threshold {r['threshold']:.3f}")


def cmd_people(args) -> None:
    people = command_session(args).people()
    emit(args, {"people": people, "count": len(people)},
          "\n".join(f"{n}\t{c}" for n, c in people.items()) or "no one is enrolled")


def cmd_remove(args) -> None:
    r = command_session(args).remove(args.name)
    human = f"removed {r['name']}: {r['vectors_removed']} vector(s), {r['crops_removed']} crop(s)"
    if r["still_in_model"]:
        human += (f"\nnote: the model was trained on {r['name']} and still knows them; to erase them from the "
                  f"weights too, run `facerec forget {r['name']}`")
    if "database" in r:
        from facerec.cli.reports import describe_database_erasure

        human += "\n" + describe_database_erasure(r["database"])
    emit(args, r, human)


def cmd_reindex(args) -> None:
    r = command_session(args).reindex(restore_quarantined=args.restore_quarantined)
    emit(args, r, f"re-embedded {r['vectors']} stored crop(s) of {r['people']} people with model {r['model_version']}"
                   + (f"; {r['restored_from_quarantine']} restored from quarantine" if r["restored_from_quarantine"] else "")
                   + (f"; skipped {len(r['skipped'])} unreadable crop(s)" if r["skipped"] else "")
                   + (f"; {r['rows_without_crop']} gallery row(s) had no stored crop and could not be rebuilt"
                      if r["rows_without_crop"] else ""))


def cmd_calibrate(args) -> None:
    from facerec.core.progress import progress_bar

    if bool(args.pairs) != bool(args.root):
        raise FaceRecError("--pairs and --root go together")
    if args.pairs and args.strangers:
        raise FaceRecError("--strangers calibrates against the gallery; --pairs without one: choose one")
    with progress_bar(None, "calibrate", enabled=not args.quiet and bool(args.pairs or args.strangers),
                      unit="img") as bar:
        r = command_session(args).calibrate(args.far, pairs=args.pairs, root=args.root, strangers=args.strangers,
                                            progress=bar.update)
    impostors = (f"{r['stranger_photos']} stranger photos searched against the gallery" if "stranger_photos" in r
                 else f"{r['impostor_pairs']} impostor pairs")
    human = (f"threshold {r['threshold']:.4f} at FAR {r['far']:.2e} (target {r['far_target']:g}); "
             + (f"TAR {r['tar']:.3f} over {r['genuine_pairs']} genuine pairs" if r["tar"] is not None
                else "no genuine pairs (one photo per person)") + f" / {impostors}")
    if "warning" in r:
        human += f"\nwarning: {r['warning']}"
    emit(args, r, human)
