"""The human-readable reports of the CLI's commands: pure functions from a command's JSON report to text.

Every reporting command prints one of these, or the JSON itself with ``--json``; keeping the texts
here leaves the command modules to parse arguments and compose the library calls.
"""

from __future__ import annotations



def describe_training(r: dict) -> str:
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


def describe_forget(r: dict) -> str:
    lines = [f"forgot {r['forgotten']} people (request {r['request']}); model {r['model_version_before']} -> "
             f"{r['model_version']}"]
    if r.get("unlearned"):
        lines.append(f"{r['method']}: acc_f {fmt(r['acc_f_before'])} -> {fmt(r['acc_f'])}, acc_r "
                     f"{fmt(r['acc_r_before'])} -> {fmt(r['acc_r'])}, acc_o {fmt(r['acc_o'])}; H {fmt(r['h_mean'])} "
                     f"of ceiling {fmt(r['h_ceiling'])}")
        images = r.get("images", {})
        if images.get("source") == "workspace":
            lines.append(f"  data root gone: unlearnt from {images['forget']} stored crops, replayed {images['replay']} "
                         "replay-buffer crops; no held-out images to measure on (n/a)")
        lines.append(f"  {r['seconds']:.1f} s unlearning ({r['seconds_total']:.1f} s in all), trainable "
                     f"{100 * r['trainable_ratio']:.2f} %"
                     + (", group norms " + " ".join(f"{v:.2f}" for v in r["group_norms"])
                        + f", zero groups {r['zero_group_share']:.2f}" if r.get("group_norms") else ""))
    check = r["gallery"].get("check")
    if check and check.get("images"):
        lines.append(f"gallery: {r['gallery']['re_embedded']} vectors re-embedded; the forgotten people's "
                     f"{check['images']} held-out photos: {check['unknown']} unknown to the remaining gallery "
                     f"(as strangers before the forget: {fmt(check['unknown_rate_before_as_stranger'])})")
    if "database" in r:
        lines.append(describe_database_erasure(r["database"]))
    return "\n".join(lines)


def describe_database_erasure(d: dict) -> str:
    """The PostgreSQL part of an erasure (``gallery.pg_erasure``): what was reclaimed, checked, found."""
    lines = [f"database {d['gallery']}: " + (f"{len(d['reclaimed'])} table(s) rewritten (VACUUM FULL)" if d["reclaimed"]
                                              else "nothing to rewrite (no byte of them in the gallery's files)")
             + ("" if d["checkpoint"] else "; CHECKPOINT refused, so the files may lag the server's memory")]
    for part, what in (("relation_files", "table and index files"), ("wal", "WAL segments")):
        c = d[part]
        lines.append(f"  {what}: " + (f"not checked ({c['why']})" if not c["checked"] else
                                      f"{c.get('files', c.get('segments'))} file(s), {c['bytes'] / 1e6:.1f} MB read: "
                                      f"name found {c['name_hits']} time(s), vector bytes {c['vector_hits']} time(s)"
                                      + (f"; {len(c['unreadable'])} unreadable" if c["unreadable"] else "")))
    lines += [f"  beyond facerec's reach: {note}" for note in d["beyond_reach"]]
    return "\n".join(lines)


def fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def describe_forgetting_eval(r: dict, far: float) -> str:
    rows = [("before", r["before"])] + ([("retrained", r["retrained"])] if "retrained" in r else [])
    rows += list(r["results"].items())
    lines = [f"{'model':16s} acc_f  acc_r  TAR forgotten (FAR {far:g})  MIA AUC  TPR@FPR1%  SVC efficacy  "
             "relearned acc_f (retained / +shots)"]
    for name, v in rows:
        relearn = v.get("relearning")
        lines.append(f"{name:16s} {v['acc_f']:.3f}  {v['acc_r']:.3f}  {v['verification']['tar_forgotten']:.3f}"
                     f"                     {fmt(v['mia_loss']['auc'])}    {fmt(v['mia_loss']['tpr_at_fpr_0.01'])}"
                     f"      {fmt(v['mia_efficacy'])}         "
                     + (f"{fmt(relearn['retained_only'])} / {fmt(relearn['with_forget_shots'])}" if relearn else "–"))
    for name, v in r["results"].items():
        if "gap_to_retrained" in v:
            lines.append(f"{name}: gap to retrained " + ", ".join(
                f"{k} {'n/a' if g is None else f'{g:+.3f}'}" for k, g in v["gap_to_retrained"].items()))
    return "\n".join(lines)


def describe_demo(report: dict, forget: dict) -> str:
    data, rec = report["data"], report["recognize"]
    return (f"data: {data['source']} — {data['identities']} identities, {data['images']} images\n"
            + describe_training(report["train"])
            + f"\ngallery: enrolled the training images; held-out rank-1 {rec['rank1']:.3f}, "
              f"unknown {rec['unknown_rate']:.3f} at threshold {rec['threshold']:.3f} (FAR {rec['far']:.1e} on enrolled)\n"
            + describe_forget(forget))


def describe_face_demo(r: dict) -> str:
    cal, known, strangers, forget = r["calibration"], r["known"], r["strangers"], r["forget"]
    return (f"shipped model {r['model_version']} on {r['data']} (detector {r['detector']}), no training\n"
            f"enrolled {r['enrolled_people']} people the model never saw, {r['enrolled_images']} photos\n"
            f"threshold {cal['threshold']:.3f} at FAR {cal['far_target']:g} on the enrolled faces\n"
            f"their other {known['images']} photos: rank-1 {known['rank1']:.3f}, right and accepted "
            f"{known['open_set_accuracy']:.3f}, unknown {known['unknown_rate']:.3f}\n"
            f"{strangers['images']} strangers: falsely accepted {strangers['false_accept_rate']:.3f}\n"
            f"forgot {forget['person']} (request {forget['request']}): their {forget['photos']} photos now "
            f"unknown {forget['answered_unknown']:.3f}, "
            f"matched to someone else {forget['answered_as_someone_else']:.3f}\n"
            f"{r['seconds']:.1f} s")


def describe_enroll(report: dict) -> str:
    from facerec.recognition.enrollment import ALREADY_ENROLLED

    lines = [f"{r['name']}: {r['enrolled']} image(s) enrolled" for r in report["people"]]
    lines += [f"  {i['image']}: {i['status']}" for r in report["people"] for i in r["images"]
              if i["status"] not in ("ok", ALREADY_ENROLLED)]
    lines += [f"  skipped folder {f}" for f in report["rejected_folders"]]
    if report["already_enrolled"]:
        lines.append(f"{report['already_enrolled']} image(s) were already enrolled (same content) and were left "
                     "as they are")
    return "\n".join(lines)


def describe_recognition(report: dict) -> str:
    lines = []
    for r in report["results"]:
        if r["status"] != "ok":
            lines.append(f"{r['image']}: {r['status']}")
        for f in r["faces"]:
            score = "-" if f["score"] is None else f"{f['score']:.3f}"
            lines.append(f"{r['image']}: {f['identity']} (score {score}) at {f['box']}")
    return "\n".join(lines)
