"""A forgetting benchmark campaign: a declared matrix of cells run one at a time, each finished
cell kept as one JSON line, so the paper's tables accumulate over interrupted runs, days and
machines (issue 29).

A campaign is a folder holding ``matrix.json`` (the base workspace and its model version, the
stranger photos, the seed, the cells in the order they run) and ``results.jsonl`` (one line per
finished cell: its numbers per request, seconds, machine, commit and settings). Both are small
text, meant to be committed. :func:`run_campaign` runs the cells that have no line yet; each line
is written by rewriting the file beside itself and renaming it over (``atomic_write_bytes``), so a
run killed at any moment loses at most the cell in progress, and ``budget`` stops before a cell
that would not finish in time. A cell is one method through one setting of one draw: a single
request (100-5 ... 100-90) or the four requests of the continual protocol, on a fresh copy of
the base, measured beyond the head as well (:func:`forgetting.bench.run_tasks`).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from facerec.core.atomic import atomic_write_bytes, atomic_write_json, strict_json
from facerec.core.errors import FaceRecError
from facerec.workspace.workspace import Workspace

FORMAT_VERSION = 1
MATRIX, RESULTS = "matrix.json", "results.jsonl"
# The matrix of issue 29: settings and methods, most informative first.
SETTINGS = (("single", 0.1, None), ("single", 0.5, None), ("continual", None, None), ("single", 0.05, None),
            ("single", 0.9, None), ("single", 0.1, 4), ("continual", None, 4))
BAR_SETTINGS = 3  # 100-10, 100-50, continual: where the bars are
REFERENCE = ("gs-lora", "retrain")  # the method under test and the model that never saw the people
THREE_DRAWS = ("gs-lora", "retrain", "gs-lora++", "salun", "scrub", "lwf")
ONE_DRAW = ("gs-lora-paper", "l2", "random-label", "ewc", "finetune")


@dataclass(frozen=True)
class Cell:
    """One method through one setting of one draw of victims."""

    protocol: str  # "single" or "continual"
    share: float | None  # single: the share of the people forgotten
    shots: int | None  # replay images per retained person (the few-shot protocol), or all
    method: str
    draw: int
    options: tuple[str, ...] = ()  # GS-LoRA settings (``--set``), for variants of the defaults

    @property
    def setting(self) -> str:
        what = f"single {self.share:g}" if self.protocol == "single" else "continual"
        return what + (f", {self.shots}-shot" if self.shots else "")

    @property
    def key(self) -> str:
        return " | ".join([self.setting, self.method, f"draw {self.draw}", *([",".join(self.options)] if self.options else [])])

    def to_dict(self) -> dict:
        return {**asdict(self), "options": list(self.options)}

    @classmethod
    def parse(cls, key: str) -> "Cell":
        """The cell a :attr:`key` names ("single 0.1 | gs-lora | draw 0 | keep_weight=2")."""
        parts = [p.strip() for p in key.split("|")]
        match = re.fullmatch(r"(single ([0-9.]+)|continual)(?:, (\d+)-shot)?", parts[0]) if len(parts) in (3, 4) else None
        draw = re.fullmatch(r"draw (\d+)", parts[2]) if match else None
        if not draw:
            raise FaceRecError(f"not a cell: {key!r} (e.g. 'single 0.1 | gs-lora | draw 0 | keep_weight=2')")
        share = float(match.group(2)) if match.group(2) else None
        return cls.from_dict({"protocol": "single" if share is not None else "continual", "share": share,
                              "shots": int(match.group(3)) if match.group(3) else None, "method": parts[1],
                              "draw": int(draw.group(1)), "options": parts[3].split(",") if len(parts) == 4 else []})

    def settings(self) -> dict:
        """The method's full configuration for this cell (GS-LoRA's with the options, or the
        baselines'): a line measured under other settings (an older default) is not this cell's."""
        from .baselines import BaselineConfig
        from .request import GS_LORA_METHODS, request_config

        config = request_config(list(self.options))  # a baseline takes its seed from the options too
        return config.to_dict() if self.method in GS_LORA_METHODS else asdict(BaselineConfig(seed=config.seed))

    @classmethod
    def from_dict(cls, d: dict) -> "Cell":
        try:
            cell = cls(d["protocol"], d.get("share"), d.get("shots"), d["method"], int(d["draw"]), tuple(d.get("options", ())))
        except (KeyError, TypeError, ValueError) as err:
            raise FaceRecError(f"a campaign cell is malformed ({err!r}): {d}") from None
        if cell.protocol not in ("single", "continual") or (cell.protocol == "single") != (cell.share is not None):
            raise FaceRecError(f"a campaign cell needs protocol single with a share, or continual: {d}")
        return cell


def default_cells(draws: int = 3) -> list[Cell]:
    """Issue 29's matrix in running order: GS-LoRA and its retrained reference on the bars'
    settings first (every draw), then one draw of every method everywhere, then the other draws."""
    methods = list(REFERENCE) + [m for m in THREE_DRAWS + ONE_DRAW if m not in REFERENCE]
    cells = [Cell(p, s, k, m, d) for (p, s, k) in SETTINGS for m in methods
             for d in range(draws if m in THREE_DRAWS else 1)]

    def order(c: Cell) -> tuple:
        rank = SETTINGS.index((c.protocol, c.share, c.shots))
        tier = 0 if c.method in REFERENCE and rank < BAR_SETTINGS else 1 if c.draw == 0 else 2
        return tier, rank, c.draw, methods.index(c.method)

    return sorted(cells, key=order)


def init_campaign(folder, base, strangers: str | None, *, seed: int = 0, draws: int = 3,
                  cells: list[Cell] | None = None) -> dict:
    """Write ``folder/matrix.json`` for ``base`` (refused when one is there)."""
    folder, ws = Path(folder), Workspace(base)
    if (folder / MATRIX).exists():
        raise FaceRecError(f"{folder / MATRIX} exists: a campaign is declared there already")
    manifest = ws.manifest()
    if "threshold" not in manifest.get("recognition", {}):
        raise FaceRecError(f"{base}: the base must be enrolled and calibrated (facerec enroll, facerec calibrate)")
    matrix = {"format_version": FORMAT_VERSION, "base": str(ws.root.resolve()),
              "base_version": manifest["model"]["version"], "base_model": manifest["model"]["name"],
              "strangers": str(Path(strangers).resolve()) if strangers else None, "seed": seed,
              "people": sum(p is not None for p in manifest["identities"]),
              "trained_with": {**{k: manifest.get("training", {}).get(k)
                                  for k in ("seconds", "initialised_from", "initialised_from_file")},
                               "epochs": manifest.get("training", {}).get("config", {}).get("epochs")},
              "from_scratch_seconds": _from_scratch_seconds(manifest),
              "cells": [c.to_dict() for c in (cells if cells is not None else default_cells(draws))]}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / ".gitignore", b".lock\n.work/\n")  # a run's lock and scratch copies
    atomic_write_json(folder / MATRIX, matrix)
    return matrix


def _from_scratch_seconds(manifest: dict) -> float | None:
    """A from-scratch retrain's seconds: the base's fine-tune plus the training of the backbone it
    started from, when that model file's record (``model.json`` beside it) says how long it took."""
    training = manifest.get("training", {})
    start = training.get("initialised_from_file")
    try:
        record = json.loads(Path(start).with_suffix(".json").read_text()) if start else None
        backbone = record["training"]["training_seconds"]
        return round(float(backbone) + float(training["seconds"]), 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_matrix(folder) -> tuple[dict, list[Cell]]:
    path = Path(folder) / MATRIX
    try:
        matrix = json.loads(path.read_text())
    except FileNotFoundError:
        raise FaceRecError(f"{path} does not exist: declare the campaign first (--base WS)") from None
    except (OSError, ValueError) as err:
        raise FaceRecError(f"{path} is not a campaign matrix ({err})") from None
    if not isinstance(matrix, dict) or matrix.get("format_version") != FORMAT_VERSION:
        raise FaceRecError(f"{path}: campaign format {matrix.get('format_version') if isinstance(matrix, dict) else '?'}, "
                           f"expected {FORMAT_VERSION}")
    return matrix, [Cell.from_dict(c) for c in matrix.get("cells", [])]


def add_cells(folder, cells: list[Cell]) -> list[Cell]:
    """Declare more cells (variants to try, more draws) at the end of the matrix; returns the new ones."""
    from .request import METHODS

    matrix, known = read_matrix(folder)
    for cell in cells:
        if cell.method not in METHODS:
            raise FaceRecError(f"unknown method {cell.method!r} in {cell.key!r}")
        cell.settings()  # a bad option is refused now, not when the cell runs
    new = [c for c in dict.fromkeys(cells) if c not in known]
    matrix["cells"] += [c.to_dict() for c in new]
    atomic_write_json(Path(folder) / MATRIX, matrix)
    return new


def current_lines(cells: list[Cell], lines: list[dict]) -> dict[str, dict]:
    """``{cell key: line}`` of the lines measured under their cell's present settings (the last
    such line of a cell); lines of an older default stay in the file as history."""
    settings = {c.key: c.settings() for c in cells}
    return {line["cell"]: line for line in lines
            if line["cell"] in settings and same_settings(line.get("settings"), settings[line["cell"]], line["spec"])}


def same_settings(recorded: dict | None, present: dict, spec: dict) -> bool:
    """Whether a line was measured under ``present``: a setting the line does not record (added to
    the code after it ran) counts as its default, which is what the code did before it existed."""
    if not isinstance(recorded, dict):
        return False
    defaults = Cell.from_dict({**spec, "options": []}).settings()
    return all(recorded.get(k, defaults[k]) == v for k, v in present.items())


def read_results(folder) -> list[dict]:
    """The finished cells' lines; a line that does not parse (a file edited by hand) is an error."""
    path = Path(folder) / RESULTS
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise FaceRecError(f"{path}:{number} is not a JSON line; fix or remove it") from None
    return out


def append_result(folder, line: dict) -> None:
    """Add one cell's line: the whole file rewritten beside itself and renamed over."""
    path = Path(folder) / RESULTS
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write_bytes(path, old + (json.dumps(strict_json(line), sort_keys=True, allow_nan=False) + "\n").encode())


def machine() -> dict:
    """Where a cell ran: CPU model, cores, OS, torch."""
    import torch

    model = platform.processor()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "system": platform.platform(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def commit() -> str | None:
    """The code's commit (``+`` when the tree has changes), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+" if dirty else "")
