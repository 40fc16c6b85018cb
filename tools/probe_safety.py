"""Probe a workspace the way issue 24's independent probes did: links planted inside it, records
that give permission to delete made by hand (journal entries, a pending forget, the demo's marker,
a data root, a hard-linked database), random SQL edits of its gallery metadata, and fuzzed API-key
files, each followed by the commands a user runs.

Usage::

    python tools/probe_safety.py --data DATA_DIR --out SCRATCH [--edits 150] [--keys 300] [--seed 0] [--json]

``DATA_DIR`` is a folder-per-person dataset of aligned crops (the first 5 people are enrolled into a
fresh workspace on the shipped model, as the probe did with ORL). Outcomes counted, per case:

- *unexpected*: a command exits with anything but 0 or 2, or prints more than one ``error:`` line;
- *deleted*: a file outside the workspace changed or vanished (links), or a stored crop is in
  neither ``crops/`` nor ``quarantine/`` (metadata edits);
- *not repaired*: after ``reindex`` the gallery does not hold everyone again (metadata edits).

Commands run in-process through ``facerec.cli.main`` (a crash would show as an exception, counted
as unexpected), so a campaign of a few thousand commands takes minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from facerec.cli.main import main as cli_main  # noqa: E402
from facerec.testing.fuzzing import mutate  # noqa: E402


def run(argv: list[str]) -> tuple[int, list[str]]:
    """``(exit code, error lines)`` of one command; an exception escaping main is exit 99."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main([*argv, "-q"])
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else 2
        except BaseException as error:  # noqa: BLE001 -- a probe counts every escape
            code = 99
            print(f"error: escaped {type(error).__name__}: {error}", file=err)
    return code, [line for line in err.getvalue().splitlines() if line.startswith("error")]


def fingerprint(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root``, links not followed."""
    found = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = Path(dirpath) / f
            if not path.is_symlink():
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def crop_hashes(ws: Path) -> set[str]:
    found = set()
    for folder in ("crops", "quarantine"):
        found |= {h for p, h in fingerprint(ws / folder).items() if p.endswith(".png")} if (ws / folder).is_dir() else set()
    return found


def commands(ws: Path, image: str, person: str) -> list[list[str]]:
    w = ["-w", str(ws)]
    return [["people", *w], ["recognize", image, "--aligned", *w], ["enroll", "Newcomer", image, "--aligned", *w],
            ["remove", "Newcomer", *w], ["calibrate", *w], ["forget", person, "--steps", "2", *w],
            ["keys", "list", *w], ["reindex", *w], ["people", *w]]


class Tally:
    def __init__(self):
        self.cases = self.commands = self.unexpected = self.deleted = self.unrepaired = 0
        self.exits: dict[int, int] = {}
        self.findings: list[str] = []

    def command(self, case: str, argv: list[str]) -> int:
        code, errors = run(argv)
        self.commands += 1
        self.exits[code] = self.exits.get(code, 0) + 1
        if code not in (0, 2) or len(errors) != (code == 2):
            self.unexpected += 1
            self.findings.append(f"{case}: {argv[0]} exit {code}: {errors[:2]}")
        return code


LINKS = {  # where a link is planted: (path inside the workspace, what it replaces)
    "person folder": "crops/{person}", "crop file": "crops/{person}/{crop}", "crops folder": "crops",
    "models folder": "models", "gallery folder": "gallery", "gallery metadata": "gallery/meta.sqlite",
    "journal folder": "journal", "manifest": "workspace.json", "lock file": ".lock", "key file": "api-keys.json",
}


def probe_links(base: Path, out: Path, image: str, person: str, tally: Tally) -> None:
    for case, template in LINKS.items():
        ws, outside = out / "links" / case.replace(" ", "-"), out / "outside" / case.replace(" ", "-")
        shutil.copytree(base, ws)
        outside.mkdir(parents=True)
        (outside / "precious.txt").write_text("keep")
        (outside / ".precious.txt.abcd1234.tmp").write_text("named like a leftover")
        (outside / "0123456789abcdef.safetensors").write_text("named like weights")
        crop = sorted(os.listdir(ws / "crops" / person))[0]
        link = ws / template.format(person=person, crop=crop)
        if link.is_dir():
            shutil.copytree(link, outside / "moved", dirs_exist_ok=True)
            shutil.rmtree(link)
        elif link.exists():
            shutil.copy(link, outside / "moved")
            link.unlink()
        link.symlink_to(outside / ("moved" if (outside / "moved").exists() else "precious.txt"))
        before = fingerprint(outside)
        tally.cases += 1
        for argv in commands(ws, image, sorted(os.listdir(base / "crops"))[1]):
            tally.command(f"link {case}", argv)
            if fingerprint(outside) != before:
                tally.deleted += 1
                tally.findings.append(f"link {case}: {argv[0]} changed files outside the workspace")
                before = fingerprint(outside)


_VALUES = ["NULL", "0", "-1", "1", "2", "999999", "x'ff'", "x''", "''", "'Ann'", "'0123456789abcdef'",
           "'../x'", "'zz'", "1.5", "'{}'".format("a" * 64)]
_TARGETS = {"people": ["person_id", "name"],
            "vectors": ["vector_id", "person_id", "image_sha256", "source", "model_version", "added"],
            "settings": ["key", "value"]}


def random_edit(rng: random.Random) -> str:
    table = rng.choice(list(_TARGETS))
    kind = rng.choice(["update", "update", "update", "delete", "insert", "delete all"])
    pick = rng.randrange(1000)  # seeded: SQLite's random() is not
    row = f"rowid = (SELECT rowid FROM {table} ORDER BY rowid LIMIT 1 OFFSET {pick} % max(1, (SELECT COUNT(*) FROM {table})))"
    if kind == "update":
        return f"UPDATE OR IGNORE {table} SET {rng.choice(_TARGETS[table])} = {rng.choice(_VALUES)} WHERE {row}"
    if kind == "delete":
        return f"DELETE FROM {table} WHERE {row}"
    if kind == "insert":
        columns = ", ".join(c for c in _TARGETS[table] if c not in ("person_id", "vector_id") or table != "people")
        return f"INSERT OR IGNORE INTO {table}({columns}) SELECT {columns} FROM {table} WHERE {row}"
    return f"DELETE FROM {table}"


def probe_edits(base: Path, out: Path, image: str, edits: int, rng: random.Random, tally: Tally) -> None:
    crops, people = crop_hashes(base), sorted(os.listdir(base / "crops"))
    for number in range(edits):
        ws = out / "edits" / f"{number:04d}"
        shutil.copytree(base, ws)
        sql = ";".join(random_edit(rng) for _ in range(rng.randint(1, 3)))
        with sqlite3.connect(ws / "gallery" / "meta.sqlite") as db:
            try:
                db.executescript(sql)
            except sqlite3.Error:
                pass  # a constraint refused it: the file is as the rest of the script left it
        tally.cases += 1
        for argv in commands(ws, image, people[1])[:4] + [["reindex", "-w", str(ws)]]:
            tally.command(f"edit {number} ({sql})", argv)
            if lost := crops - crop_hashes(ws):
                tally.deleted += len(lost)
                tally.findings.append(f"edit {number} ({sql}): {argv[0]} lost {len(lost)} crop(s)")
                break
        code, _ = run(["people", "-w", str(ws), "--json"])
        if code != 0:
            tally.unrepaired += 1
            tally.findings.append(f"edit {number} ({sql}): not repaired by reindex")
        shutil.rmtree(ws)


def _forge_entry(ws: Path, command: str, person: str, without_gallery: bool = False) -> None:
    folder = ws / "crops" / person
    crops = {f"crops/{person}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    (ws / "journal").mkdir(exist_ok=True)
    (ws / "journal" / "forged.json").write_text(json.dumps(
        {"format_version": 1, "command": command, "person": person, "crops": crops, "seal": "0" * 64}))
    if without_gallery:
        shutil.rmtree(ws / "gallery")


def _forge_pending(ws: Path, person: str) -> None:
    run(["forget", person, "--steps", "2", "-w", str(ws)])
    run(["enroll", person, *[str(p) for p in sorted((ws / "crops").iterdir())[0].iterdir()][:1], "--aligned",
         "-w", str(ws)])
    manifest = json.loads((ws / "workspace.json").read_text())
    manifest["erasure"]["pending"] = manifest["erasure"]["ledger"][-1]["request"]
    (ws / "workspace.json").write_text(json.dumps(manifest))


def _forge_data_root(ws: Path) -> None:
    """data.root pointed at the workspace, and someone named "crops" enrolled (forgotten below)."""
    crop = next(next((ws / "crops").iterdir()).iterdir())
    run(["enroll", "crops", str(crop), "--aligned", "-w", str(ws)])
    manifest = json.loads((ws / "workspace.json").read_text())
    (ws / "workspace.json").write_text(json.dumps({**manifest, "data": {**manifest.get("data", {}), "root": str(ws)}}))


FORGERIES = {  # records that give permission to delete, made by hand (the second probe's N, J, W and D cases)
    "enroll entry": lambda ws, p: _forge_entry(ws, "enroll", p),
    "remove entry": lambda ws, p: _forge_entry(ws, "remove", p),
    "enroll entry, no gallery": lambda ws, p: _forge_entry(ws, "enroll", p, True),
    "remove entry, no gallery": lambda ws, p: _forge_entry(ws, "remove", p, True),
    "pending forget": _forge_pending,
    "demo marker": lambda ws, p: (ws / ".demo").write_text(""),
    "data root = workspace": lambda ws, p: _forge_data_root(ws),
    "hard-linked metadata": lambda ws, p: os.link(ws / "gallery" / "meta.sqlite", ws.parent / f"{ws.name}.sqlite"),
}


def probe_forgeries(base: Path, out: Path, image: str, tally: Tally) -> None:
    person = sorted(os.listdir(base / "crops"))[1]
    for case, forge in FORGERIES.items():
        ws = out / "forged" / case.replace(" ", "-").replace(",", "").replace("=", "is")
        shutil.copytree(base, ws)
        forge(ws, person)
        crops = crop_hashes(ws)
        tally.cases += 1
        for argv in commands(ws, image, "crops")[:5] + [["demo", "--identities", "2", "--images-per-identity", "3",
                                                           "--epochs", "1", "-w", str(ws)], ["reindex", "-w", str(ws)]]:
            tally.command(f"forged {case}", argv)
            if lost := crops - crop_hashes(ws):
                tally.deleted += len(lost)
                tally.findings.append(f"forged {case}: {argv[0]} lost {len(lost)} crop(s)")
                break


def probe_keys(base: Path, out: Path, cases: int, rng: random.Random, tally: Tally) -> None:
    ws = out / "keys"
    shutil.copytree(base, ws)
    run(["keys", "add", "app", "-w", str(ws)])
    run(["keys", "add", "viewer", "--read-only", "-w", str(ws)])
    good = (ws / "api-keys.json").read_bytes()
    for number in range(cases):
        (ws / "api-keys.json").write_bytes(mutate(good, rng))
        tally.cases += 1
        for argv in (["keys", "list", "-w", str(ws)], ["keys", "revoke", "viewer", "-w", str(ws)]):
            tally.command(f"keys {number}", argv)


def build_base(data: Path, out: Path) -> Path:
    base = out / "base"
    for person in sorted(p for p in os.listdir(data) if (data / p).is_dir())[:5]:
        images = [str(p) for p in sorted((data / person).iterdir())[:3]]
        code, errors = run(["enroll", person, *images, "--aligned", "-w", str(base)])
        if code != 0:
            raise SystemExit(f"could not build the base workspace: {errors}")
    return base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder-per-person aligned crops (ORL, say)")
    parser.add_argument("--out", required=True, help="scratch folder (replaced)")
    parser.add_argument("--edits", type=int, default=150, help="random SQL edits of meta.sqlite")
    parser.add_argument("--keys", type=int, default=300, help="fuzzed api-keys.json files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not (out / ".probe_safety").is_file():
        raise SystemExit(f"{out} is not empty and not a scratch folder of this tool; name a new one")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / ".probe_safety").write_text("scratch folder of tools/probe_safety.py, replaced on every run\n")
    rng, tally, t0 = random.Random(args.seed), Tally(), time.perf_counter()
    base = build_base(Path(args.data), out)
    person = sorted(os.listdir(base / "crops"))[0]
    image = str(sorted((Path(args.data) / person).iterdir())[-1])
    seconds = {}
    for name, step in (("links", lambda: probe_links(base, out, image, person, tally)),
                       ("forgeries", lambda: probe_forgeries(base, out, image, tally)),
                       ("edits", lambda: probe_edits(base, out, image, args.edits, rng, tally)),
                       ("keys", lambda: probe_keys(base, out, args.keys, rng, tally))):
        start = time.perf_counter()
        step()
        seconds[name] = round(time.perf_counter() - start, 1)
    report = {"cases": tally.cases, "commands": tally.commands, "exits": dict(sorted(tally.exits.items())),
              "unexpected": tally.unexpected, "deleted": tally.deleted, "not_repaired": tally.unrepaired,
              "findings": tally.findings[:50], "seconds": seconds, "total_seconds": round(time.perf_counter() - t0, 1),
              "seed": args.seed}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{tally.cases} cases, {tally.commands} commands (exits {report['exits']}): {tally.unexpected} unexpected, "
              f"{tally.deleted} deletions, {tally.unrepaired} not repaired by reindex; {report['total_seconds']} s")
        for finding in tally.findings[:50]:
            print("  " + finding)
    return 0 if not (tally.unexpected or tally.deleted or tally.unrepaired) else 1


if __name__ == "__main__":
    sys.exit(main())
