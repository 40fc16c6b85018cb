"""Running a campaign's cells (``campaign.py``): the ones without a line yet, in the matrix's order,
each on a fresh copy of the base, within an optional time budget."""

from __future__ import annotations

import fcntl
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from facerec.core.errors import FaceRecError
from facerec.workspace.workspace import Workspace, without_onnx_copies

from .campaign import FORMAT_VERSION, Cell, append_result, commit, current_lines, machine, read_matrix, read_results

BEYOND_SECONDS = 150  # measuring one request beyond the head on LFW-100 (relearning twice, the attack, TAR)


def estimate(cell: Cell, results: list[dict], people: int) -> float:
    """Seconds the cell should take: the mean of the finished cells of the same setting, method and
    options, else a rough figure from the LFW-100 hybrid base on 2 cores (docs/BENCHMARKS.md)."""
    same = [r["seconds"] for r in results if {**r["spec"], "draw": cell.draw} == cell.to_dict()]
    if same:
        return sum(same) / len(same)
    requests = 1 if cell.protocol == "single" else 4
    forgotten = round((cell.share or 0.2) * people)
    if cell.method.startswith("gs-lora"):
        per_request = 30 + 16 * forgotten
    elif cell.method == "retrain":
        per_request = 450
    else:
        per_request = 60 + max(60, 6 * forgotten)
    return requests * (per_request + BEYOND_SECONDS)


def run_cell(matrix: dict, cell: Cell, *, strangers=None, device: str | None = None, base=None, work=None) -> dict:
    """One cell through :func:`forgetting.bench.run_tasks` (its copy of the base under ``work``),
    measured beyond the head; its line."""
    from .bench import plan, run_tasks
    from .request import request_config

    base = Path(base or matrix["base"])
    people = [p for p in Workspace(base).manifest()["identities"] if p is not None]
    try:
        (setting, tasks, shots), = plan(people, cell.protocol, matrix["seed"] + cell.draw, None,
                                        (cell.share,) if cell.share is not None else (), cell.shots)
    except ValueError as err:
        raise FaceRecError(f"cell {cell.key}: {err}") from None
    config = request_config(list(cell.options))
    settings = cell.settings()
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cell-", dir=work) as tmp, without_onnx_copies():
        rows = run_tasks(base, Path(tmp) / "copy", cell.method, tasks, shots, strangers=strangers, beyond=True,
                         config=config, device=device)
    return {"format_version": FORMAT_VERSION, "cell": cell.key, "spec": cell.to_dict(), "setting": setting,
            "victims": tasks, "tasks": rows, "seconds": round(time.perf_counter() - t0, 1),
            "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "base_version": matrix["base_version"], "machine": machine(), "commit": commit(), "settings": settings}


def _strangers(matrix: dict, override):
    from facerec.data.folder import read_folder_images

    folder = override or matrix.get("strangers")
    return read_folder_images(folder, "the campaign's strangers") if folder else None


@contextmanager
def _running(folder: Path):
    """One run of a campaign at a time (``DIR/.lock``); its scratch folder ``DIR/.work``, emptied
    first (what a killed run left) and at the end."""
    work = folder / ".work"
    with open(folder / ".lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FaceRecError(f"{folder}: another run of this campaign is in progress") from None
        if work.is_symlink() or (work.exists() and not work.is_dir()):
            raise FaceRecError(f"{work} is not a folder facerec made; move it away")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)


def run_campaign(folder, *, budget_s: float | None = None, max_cells: int | None = None, only: str | None = None,
                 base=None, strangers=None, device: str | None = None, show_progress: bool = True,
                 run=run_cell) -> dict:
    """Run the cells of ``folder``'s matrix that have no line under their present settings yet
    (``campaign.current_lines``), in order, those whose key contains ``only`` when given; stop after
    ``max_cells``, and leave out a cell whose :func:`estimate` does not fit in what is left of
    ``budget_s``. ``base`` / ``strangers`` stand in for the matrix's paths (another machine); the
    base must hold the model version the campaign was declared on."""
    matrix, cells = read_matrix(folder)
    base = Path(base or matrix["base"])
    if not Workspace(base).exists():
        raise FaceRecError(f"the campaign's base workspace {base} is not there; rebuild it, or pass --base")
    version = Workspace(base).manifest()["model"]["version"]
    if version != matrix["base_version"]:
        raise FaceRecError(f"{base} holds model {version}; the campaign was declared on {matrix['base_version']}: "
                           "its results would not be comparable (declare a new campaign for this base)")
    results = read_results(folder)
    done = set(current_lines(cells, results))
    pending = [c for c in cells if c.key not in done and (only is None or only in c.key)]
    deadline = None if budget_s is None else time.monotonic() + budget_s
    with _running(Path(folder)) as work:
        ran, over_budget = _run_pending(folder, matrix, pending, results, base, work, deadline, max_cells,
                                        strangers, device, show_progress, run, len(cells))
    return {"ran": ran, "done": len(done) + len(ran), "cells": len(cells),
            "left": len(cells) - len(done) - len(ran), "over_budget": over_budget}


def _run_pending(folder, matrix, pending, results, base, work, deadline, max_cells, strangers, device,
                 show_progress, run, total) -> tuple[list[str], list[str]]:
    photos, ran, over_budget = None, [], []
    for cell in pending:
        if max_cells is not None and len(ran) >= max_cells:
            break
        if deadline is not None and estimate(cell, results, matrix["people"]) > deadline - time.monotonic():
            over_budget.append(cell.key)
            continue
        if photos is None:
            photos = _strangers(matrix, strangers) or []
        if show_progress:
            print(f"campaign: {cell.key} ({len(results) + 1} of {total})", file=sys.stderr, flush=True)
        line = run(matrix, cell, strangers=photos, device=device, base=base, work=work)
        append_result(folder, line)
        results.append(line)
        ran.append(cell.key)
        if show_progress:
            print(f"campaign: {cell.key} done in {line['seconds']:.0f} s", file=sys.stderr, flush=True)
    return ran, over_budget
