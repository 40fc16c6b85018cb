"""The tables of a campaign (``campaign.py``), regenerated from its committed lines: per setting a
row per method with the draws found, mean ± std and worst; the equivalence to the retrained
reference (issue 29: the gap of every method to ``retrain`` of the same draw and request); the
bars; the time beside a re-fine-tune and a from-scratch retrain. Cells of the matrix without a
line are marked missing, never left out silently."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from facerec.core.atomic import atomic_write_bytes

from .bench import EQUIVALENCE, worst_draw
from .campaign import SETTINGS, Cell, current_lines, read_matrix, read_results

EQUIVALENCE_BAR = 0.05  # within 5 points of the retrained model
NAMES = {"unknown_forgotten": "unknown", "tar_forgotten_at_threshold": "TAR@thr", "mia_auc": "AUC",
         "relearned_acc_f": "relearn", "unknown_forgotten_train": "unknown (trained photos)"}


def equivalence_gaps(line: dict, reference: dict | None) -> list[dict]:
    """Per request, ``method − retrain`` of :data:`~forgetting.bench.EQUIVALENCE` (None where a side is
    missing); ``reference`` is the ``retrain`` line of the same setting and draw."""
    if reference is None:
        return [dict.fromkeys(EQUIVALENCE) for _ in line["tasks"]]
    out = []
    for task, ref in zip(line["tasks"], reference["tasks"]):
        out.append({k: None if _num(task.get(k)) is None or _num(ref.get(k)) is None else task[k] - ref[k]
                    for k in EQUIVALENCE})
    return out


def _num(v):
    return v if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else None


def _stats(values, scale: float = 100.0, worst=max, digits: int = 1) -> str:
    values = [v for v in values if _num(v) is not None]
    if not values:
        return "–"
    a = scale * np.asarray(values, float)
    spread = f" ± {a.std(ddof=1):.{digits}f}" if len(a) > 1 else ""
    return f"{a.mean():.{digits}f}{spread} ({worst(a):.{digits}f})"


def summarise(line: dict, reference: dict | None) -> dict:
    """One finished cell's numbers for the tables."""
    worst = worst_draw([line])
    gaps = equivalence_gaps(line, reference)
    last = line["tasks"][-1]
    return {"acc_f": last["acc_f"], "acc_f_worst": worst["acc_f"], "acc_o_worst": worst["acc_o"],
            "acc_r_drop": last["acc_r_before"] - last["acc_r"], "acc_r_drop_worst": worst["acc_r_drop"],
            "h_share": last["h_mean"] / last["h_ceiling"] if last["h_ceiling"] else 0.0, "h_share_worst": worst["h_share"],
            "gaps_last": gaps[-1], "gaps_worst": {k: max((abs(g[k]) for g in gaps if g[k] is not None), default=None)
                                                  for k in EQUIVALENCE},
            "seconds_per_request": float(np.mean([t["seconds"] for t in line["tasks"]])), "wall": line["seconds"],
            "raw_last": {k: last.get(k) for k in EQUIVALENCE}}


def collect(folder) -> tuple[dict, list[Cell], dict[str, dict]]:
    """``(matrix, cells, {cell key: line})``: the lines of the matrix's cells under their present settings."""
    matrix, cells = read_matrix(folder)
    return matrix, cells, current_lines(cells, read_results(folder))


def variant(cell: Cell) -> str:
    """A table row's name: the method, with its settings when they are not the defaults."""
    return cell.method + (f" ({', '.join(cell.options)})" if cell.options else "")


def references(cells: list[Cell], lines: dict[str, dict]) -> dict[int, dict]:
    """The default ``retrain`` line of each draw among ``cells`` (one setting's)."""
    return {c.draw: lines[c.key] for c in cells if c.method == "retrain" and not c.options and c.key in lines}


def _setting_table(cells: list[Cell], lines: dict[str, dict], label: str) -> list[str]:
    out = [f"**{label}**", "", "| method | draws | Acc_f % | Acc_f worst | Acc_r drop (pts) | H ÷ ceiling | "
           + " | ".join(f"Δ{NAMES[k]}" for k in EQUIVALENCE) + " | s / request |", "|" + "---|" * (7 + len(EQUIVALENCE))]
    refs = references(cells, lines)
    for name in dict.fromkeys(variant(c) for c in cells):
        mine = [c for c in cells if variant(c) == name]
        found = [lines[c.key] for c in mine if c.key in lines]
        if not found:
            out.append(f"| {name} | **missing** 0 of {len(mine)} |" + " – |" * (5 + len(EQUIVALENCE)))
            continue
        rows = [summarise(line, refs.get(line["spec"]["draw"])) for line in found]
        draws = f"{len(found)} of {len(mine)}" + (" **missing**" if len(found) < len(mine) else "")
        if name == "retrain":
            gap_cells = [f"ref {_stats([r['raw_last'][k] for r in rows])}" for k in EQUIVALENCE]
        else:
            gap_cells = [_stats([r["gaps_last"][k] for r in rows], 100, lambda a: a[np.argmax(abs(a))])
                         for k in EQUIVALENCE]
        out.append(f"| {name} | {draws} | {_stats([r['acc_f'] for r in rows])} | "
                   f"{100 * max(r['acc_f_worst'] for r in rows):.1f} | {_stats([r['acc_r_drop'] for r in rows])} | "
                   f"{_stats([r['h_share'] for r in rows], 1, min, 3)} | " + " | ".join(gap_cells)
                   + f" | {np.mean([r['seconds_per_request'] for r in rows]):.0f} |")
    return out


def bars(cells: list[Cell], lines: dict[str, dict]) -> list[dict]:
    """Issue 29's bars for GS-LoRA (default settings), each ``pass``, ``fail`` or ``missing``."""
    def gs(setting: str) -> tuple[list[dict], bool]:
        mine = [c for c in cells if c.method == "gs-lora" and not c.options and c.setting == setting]
        found = [lines[c.key] for c in mine if c.key in lines]
        return found, len(mine) >= 3 and len(found) == len(mine)

    out = []
    for setting in ("single 0.1", "single 0.5"):
        found, complete = gs(setting)
        refs = references([c for c in cells if c.setting == setting], lines)
        rows = [summarise(line, refs.get(line["spec"]["draw"])) for line in found]
        checks = {"Acc_f <= 1 %": [r["acc_f_worst"] <= 0.01 for r in rows],
                  "Acc_r >= before - 1 pt": [r["acc_r_drop_worst"] <= 0.01 for r in rows]}
        for k in EQUIVALENCE[:3]:
            checks[f"Δ{NAMES[k]} within ±5 pts"] = [None if r["gaps_worst"][k] is None else r["gaps_worst"][k] <= EQUIVALENCE_BAR
                                                 for r in rows]
        out += [{"setting": setting, "bar": k, "verdict": _verdict(v, complete)} for k, v in checks.items()]
    found, complete = gs("continual")
    rows = [worst_draw([line]) for line in found]
    for name, ok in (("Acc_f, Acc_o <= 1 % every task", [r["acc_f"] <= 0.01 and (r["acc_o"] or 0) <= 0.01 for r in rows]),
                     ("H >= 0.98 ceiling every task", [r["h_share"] >= 0.98 for r in rows])):
        out.append({"setting": "continual", "bar": name, "verdict": _verdict(ok, complete)})
    return out


def _verdict(checks: list, complete: bool) -> str:
    if any(c is False for c in checks):
        return "fail"
    return "pass" if complete and checks and all(c is True for c in checks) else "missing"


def report(folder) -> str:
    """The campaign's Markdown: status, bars, one table per setting, time."""
    matrix, cells, lines = collect(folder)
    missing = [c.key for c in cells if c.key not in lines]
    machines = sorted({line["machine"]["cpu"] for line in lines.values()})
    hours = sum(line["seconds"] for line in lines.values()) / 3600
    out = [f"Campaign `{Path(folder).as_posix()}`: {len(lines)} of {len(cells)} cells finished ({hours:.1f} CPU-hours"
           f" on {', '.join(machines) or '–'}), {len(missing)} **missing**. Base `{matrix['base_model']}` version "
           f"{matrix['base_version']} ({matrix['people']} people), victims drawn from seed {matrix['seed']} + draw. "
           "Per setting, mean ± std over draws of the last request (worst over draws and requests in brackets); "
           "Δ = method − retrain of the same draw (points; AUC × 100), worst = largest |Δ|; the retrain row gives "
           "its own values (unknown rate, TAR and relearned Acc_f in %, AUC × 100).", "",
           "| setting | bar (GS-LoRA default, every draw) | verdict |", "|---|---|---|"]
    out += [f"| {b['setting']} | {b['bar']} | {b['verdict']} |" for b in bars(cells, lines)]
    for protocol, share, shots in SETTINGS + tuple(sorted({(c.protocol, c.share, c.shots) for c in cells} - set(SETTINGS),
                                                          key=str)):
        mine = [c for c in cells if (c.protocol, c.share, c.shots) == (protocol, share, shots)]
        if mine:
            labels = {lines[c.key]["setting"] for c in mine if c.key in lines}
            out += [""] + _setting_table(mine, lines, f"{mine[0].setting}" + (f" ({', '.join(sorted(labels))})" if labels else ""))
    out += [""] + time_table(matrix, cells, lines)
    return "\n".join(out) + "\n"


def time_table(matrix: dict, cells: list[Cell], lines: dict[str, dict]) -> list[str]:
    """Seconds of unlearning per request by method, beside retraining."""
    trained = matrix.get("trained_with", {})
    scratch = matrix.get("from_scratch_seconds")
    out = [f"Time per request (unlearning only, mean over finished cells), beside a re-fine-tune retrain (the `retrain` "
           f"method) and a from-scratch retrain (the backbone's distillation + the fine-tune: "
           f"{'–' if scratch is None else f'{scratch:,.0f} s'}; the base's fine-tune took "
           f"{trained.get('seconds') or '–'} s).", "", "| method | s / request | ÷ retrain | ÷ from scratch |", "|---|---|---|---|"]
    per = {}
    for line in lines.values():
        per.setdefault(variant(Cell.from_dict(line["spec"])), []).extend(t["seconds"] for t in line["tasks"])
    retrain = np.mean(per["retrain"]) if per.get("retrain") else None
    for method in dict.fromkeys(variant(c) for c in cells):
        if method in per:
            s = float(np.mean(per[method]))
            out.append(f"| {method} | {s:.0f} | {'–' if retrain is None else f'{s / retrain:.2f}'} | "
                       f"{'–' if scratch is None else f'{s / scratch:.3f}'} |")
        else:
            out.append(f"| {method} | missing | – | – |")
    return out


def write_report(folder, target) -> None:
    """Put the report into ``target``: between ``<!-- campaign FOLDER begin -->`` and ``<!-- campaign
    end -->`` when the file has them (the rest of the file untouched), else as the whole file."""
    target, text = Path(target), report(folder)
    begin = f"<!-- campaign {Path(folder).as_posix()} begin -->"
    old = target.read_text() if target.exists() else ""
    pattern = re.compile(re.escape(begin) + r".*?<!-- campaign end -->", re.S)
    new = pattern.sub(lambda _: f"{begin}\n{text}<!-- campaign end -->", old) if pattern.search(old) else text
    atomic_write_bytes(target, new.encode())
