"""Kill enroll / remove / forget / train with SIGKILL at many points and check the workspace after each.

Usage::

    python tools/crash_inject.py --data DATA_DIR --workspace TRAINED_WS --out SCRATCH [--points N] [--json]
                                 [--postgresql URL] [--writers enroll,remove,forget,train]

``DATA_DIR`` is a folder-per-person dataset of aligned crops and ``TRAINED_WS`` a workspace
trained on it (neither is changed: every run works on a copy). For each writer, one run without a
kill counts its *steps* — calls of os.replace, os.rename, os.unlink, shutil.rmtree, os.fsync and
the gallery's SQLite commit point — then, for each chosen step k, a forked child runs the command
and SIGKILLs itself at step k. The parent (which never runs torch itself, so forking is safe) then
checks the workspace, runs the next command in another child (the same command again, as a user
would), and checks again:

- enroll: no person's images are doubled or lost, and crops and gallery rows match one to one;
- remove: the person is in the gallery with all their crops, or (after the next writer) gone
  from both;
- forget: the person is either wholly present (model, gallery, crops) or wholly gone with one
  ledger entry — never half-forgotten;
- train: the workspace either has no manifest yet or a complete, loadable model;
- always, after the next command: no temporary files, staging folders, unreferenced weights, journal
  entries or quarantined crops (a killed command's crops are settled by its journal, never taken
  for damage).

``--points 0`` kills at every step (the full campaign); CI runs a sample. ``--postgresql URL``
moves each run's workspace gallery into that database first (a gallery of its own per run, dropped
afterwards); the gallery's commits, swaps and drops there are kill points too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facerec.cli.main import main as cli_main  # noqa: E402

# Imported once here so that each forked child starts warm; importing runs no torch kernels, so
# no thread pool exists yet to be broken by fork().
import facerec.training.run  # noqa: E402,F401
import facerec.recognition.pipeline  # noqa: E402,F401
import forgetting.request  # noqa: E402,F401


def _run_child(argv: list[str], kill_at: int | None, counter_file: Path | None = None) -> tuple[str, int]:
    """Run ``facerec argv`` in a forked child; ``("killed"|"exit", code)``."""
    pid = os.fork()
    if pid == 0:  # the child
        try:
            _install_kill_points(kill_at, counter_file)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = cli_main(argv + ["-q"])
        except BaseException:
            code = 99
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return ("killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal {os.WTERMSIG(status)}"), -1
    return "exit", os.WEXITSTATUS(status)


def _install_kill_points(kill_at: int | None, counter_file: Path | None) -> None:
    import gallery.store as store

    count = [0]

    def step():
        count[0] += 1
        if counter_file is not None:
            counter_file.write_text(str(count[0]))
        if kill_at is not None and count[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner, name):
        real = getattr(owner, name)

        def patched(*args, **kwargs):
            step()
            return real(*args, **kwargs)
        setattr(owner, name, patched)

    for owner, name in ((os, "replace"), (os, "rename"), (os, "unlink"), (os, "fsync"), (shutil, "rmtree"),
                        (store, "set_setting")):  # Path.rename and Path.unlink call os.rename / os.unlink
        wrap(owner, name)
    try:
        import gallery.postgres as pg
    except ImportError:
        return
    for owner, name in ((pg.PostgresGallery, "save"), (pg, "swap"), (pg, "drop")):  # a database gallery's commits
        wrap(owner, name)


def _in_child(check) -> list[str]:
    """Run ``check()`` in a forked child (it may run torch, which must not start threads here)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            problems = check()
        except BaseException as err:  # the check itself failing is a finding, not a crash of the tool
            problems = [f"check failed: {type(err).__name__}: {err}"]
        os.write(write, json.dumps(problems).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return json.loads(text) if text else ["the check crashed"]


def _leftovers(ws: Path) -> list[str]:
    found = [p.name for p in ws.glob("gallery.*")]
    for folder in [ws, ws / "models", ws / "gallery", *(ws / "crops").glob("*")]:
        if folder.is_dir():
            found += [str(p.relative_to(ws)) for p in folder.iterdir() if p.name.endswith(".tmp")]
    manifest = json.loads((ws / "workspace.json").read_text()) if (ws / "workspace.json").is_file() else None
    if manifest:
        found += [str(p.relative_to(ws)) for p in (ws / "models").glob("*.safetensors")
                  if p.relative_to(ws).as_posix() != manifest["model"]["weights"]]
        if (manifest.get("erasure") or {}).get("pending"):
            found.append("erasure.pending")
    # a killed enroll or remove is settled by its journal entry: nothing is left for quarantine
    found += [str(p.relative_to(ws)) for folder in ("journal", "quarantine") for p in (ws / folder).glob("*")]
    if manifest and (manifest.get("gallery") or {}).get("backend") == "postgresql":
        from facerec.workspace.galleries import ROLES, store

        galleries = store(ws, manifest)
        found += [galleries.describe(role) for role in ROLES if role != "gallery" and galleries.exists(role)]
        found += ["gallery folder beside a database gallery"] if (ws / "gallery").exists() else []
    return found


def _drop_database_gallery(ws: Path) -> None:
    manifest = json.loads((ws / "workspace.json").read_text()) if (ws / "workspace.json").is_file() else {}
    record = manifest.get("gallery") or {}
    if record.get("backend") == "postgresql":
        from gallery.postgres import drop

        for suffix in ("", "_staging", "_rebuild", "_old"):
            drop(record["url"], record["name"] + suffix)


def _gallery_state(ws: Path) -> dict[str, list[str]]:
    """``{person: sorted image-hash prefixes}`` from the gallery (folder or database), opened read-only."""
    from facerec.workspace.galleries import store

    galleries = store(ws)
    if not galleries.exists():
        return {}
    g = galleries.open(read_only=True)
    try:
        return {p: sorted(h[:16] for h in g.image_hashes(p)) for p in g.people()}
    finally:
        g.close()


def _crops_state(ws: Path) -> dict[str, list[str]]:
    root = ws / "crops"
    return {p.name: sorted(f.name.split("-")[0] for f in p.glob("*.png")) for p in sorted(root.iterdir())
            if p.is_dir() and any(p.glob("*.png"))} if root.is_dir() else {}


def _check_enroll(ws: Path, person: str, expected: int, final: bool) -> list[str]:
    gallery, problems = _gallery_state(ws), []
    hashes = gallery.get(person, [])
    if len(hashes) != len(set(hashes)):
        problems.append(f"{person}'s images are doubled in the gallery")
    if final and len(hashes) != expected:
        problems.append(f"{person} has {len(hashes)} gallery images after the re-run, expected {expected}")
    if final and _crops_state(ws) != gallery:
        problems.append("stored crops and gallery rows differ")
    return problems


def _check_remove(ws: Path, person: str, final: bool) -> list[str]:
    gallery, crops = _gallery_state(ws), _crops_state(ws)
    if person in gallery and gallery[person] != crops.get(person):
        return [f"{person} is in the gallery without all their crops"]
    if final and (person in gallery or person in crops):
        return [f"{person} is still enrolled after the remove was finished: {person in gallery}, {person in crops}"]
    return []


def _check_forget(ws: Path, person: str, final: bool) -> list[str]:
    manifest = json.loads((ws / "workspace.json").read_text())
    in_model = person in manifest["identities"]
    present = {"model": in_model, "gallery": person in _gallery_state(ws), "crops": (ws / "crops" / person).exists()}
    ledger = (manifest.get("erasure") or {}).get("ledger", [])
    pending = (manifest.get("erasure") or {}).get("pending")
    if in_model and any(present.values()) != all(present.values()):
        return [f"{person} half-forgotten before the commit: {present}"]
    if not in_model and (pending is None or final) and any(present.values()):
        return [f"{person} half-forgotten after the commit: {present}"]
    if not in_model and len(ledger) != 1:
        return [f"the ledger holds {len(ledger)} entries after one forget"]
    if final and in_model:
        return [f"{person} is still in the model after the forget was re-run"]
    return []


def _check_train(ws: Path, final: bool) -> list[str]:
    if not (ws / "workspace.json").is_file():
        return ["no model after the re-run"] if final else []

    def load() -> list[str]:
        from facerec.workspace.workspace import Workspace

        Workspace(ws).load_model()
        return []
    return _in_child(load)


def _forgotten(ws: Path, person: str) -> bool:
    return person not in json.loads((ws / "workspace.json").read_text())["identities"]


def campaign(data: Path, trained: Path, out: Path, points: int, postgresql: str | None = None,
             only: list[str] | None = None) -> dict:
    person = sorted(p.name for p in data.iterdir() if p.is_dir())[0]
    images = sorted(str(f) for f in (data / person).iterdir())
    enroll_others = ["enroll", "--folder", str(data), "--aligned"]
    forget = ["forget", person, "--steps", "3"]
    writers = {  # name: (command, the next command a user would run after the kill, check)
        "enroll": (["enroll", person, *images, "--aligned"], None,
                   lambda ws, final: _check_enroll(ws, person, len(images), final)),
        "remove": (["remove", person], lambda ws: ["calibrate"] if person not in _gallery_state(ws) else ["remove", person],
                   lambda ws, final: _check_remove(ws, person, final)),
        "forget": (forget, lambda ws: ["calibrate"] if _forgotten(ws, person) else forget,
                   lambda ws, final: _check_forget(ws, person, final)),
        "train": (["train", str(data), "--model", "vit-face-test", "--epochs", "2", "--batch-size", "8"], None,
                  lambda ws, final: _check_train(ws, final)),
    }
    base = out / "base"
    if not base.exists():  # a workspace with everyone enrolled, for forget; enroll starts from it minus one person
        shutil.copytree(trained, base)
        assert _run_child(enroll_others + ["-w", str(base)], None) == ("exit", 0)
    report = {}

    def fresh_copy(source: Path, dest: Path) -> None:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(source, dest)
        if postgresql and (dest / "workspace.json").is_file():  # each copy's gallery is a database gallery of its own
            assert _run_child(["gallery", "use", postgresql, "-w", str(dest)], None) == ("exit", 0)

    for name, (argv, after, check) in writers.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        start = out / f"{name}-start"
        shutil.rmtree(start, ignore_errors=True)
        if name == "train":
            start.mkdir(parents=True)
        else:
            shutil.copytree(base, start)
            if name == "enroll":
                assert _run_child(["remove", person, "-w", str(start)], None) == ("exit", 0)
        counter = out / f"{name}.steps"
        probe = out / f"{name}-probe"
        fresh_copy(start, probe)
        assert _run_child(argv + ["-w", str(probe)], None, counter) == ("exit", 0), f"{name} fails without a kill"
        steps = int(counter.read_text())
        _drop_database_gallery(probe)
        chosen = list(range(1, steps + 1)) if points <= 0 else \
            sorted({max(1, round(1 + i * (steps - 1) / max(points - 1, 1))) for i in range(points)})
        runs = []
        for k in chosen:
            ws = out / f"{name}-{k}"
            fresh_copy(start, ws)
            outcome, _ = _run_child(argv + ["-w", str(ws)], k)
            problems = check(ws, False) if (ws / "workspace.json").is_file() or name == "train" else []
            rerun = _run_child((after(ws) if after and (ws / "workspace.json").is_file() else argv) + ["-w", str(ws)], None)
            problems += check(ws, True) + [f"leftover {p}" for p in _leftovers(ws)]
            if rerun != ("exit", 0):
                problems.append(f"the re-run ended {rerun}")
            runs.append({"step": k, "outcome": outcome, "problems": problems})
            _drop_database_gallery(ws)
            shutil.rmtree(ws, ignore_errors=True)
        report[name] = {"steps": steps, "kills": sum(r["outcome"] == "killed" for r in runs), "runs": runs,
                        "problems": sum(len(r["problems"]) for r in runs), "seconds": round(time.perf_counter() - t0, 1)}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder-per-person aligned crops")
    parser.add_argument("--workspace", required=True, help="a workspace trained on --data (copied, not changed)")
    parser.add_argument("--out", required=True, help="scratch folder")
    parser.add_argument("--points", type=int, default=0, help="kill points per writer (0: every step)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--postgresql", default=None, metavar="URL",
                        help="run every writer on a workspace whose gallery is in this database")
    parser.add_argument("--writers", default=None, help="comma-separated subset of enroll,remove,forget,train")
    args = parser.parse_args()
    report = campaign(Path(args.data), Path(args.workspace), Path(args.out), args.points, args.postgresql,
                      args.writers.split(",") if args.writers else None)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, r in report.items():
            print(f"{name}: {r['steps']} steps, {r['kills']} kills, {r['problems']} problems, {r['seconds']} s")
            for run in r["runs"]:
                for problem in run["problems"]:
                    print(f"  step {run['step']}: {problem}")
    return 1 if any(r["problems"] for r in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
