"""The forgetting benchmark: the GS-LoRA papers' protocols, any methods, one folder dataset.

Protocols (on a model trained on the dataset, each method starting from a fresh copy of it):

- ``single``: one request forgetting 5 %, 10 %, 50 % and 90 % of the people, separately (the
  papers' 100-5, 100-10, 100-50 and 100-90 on CASIA-100);
- ``continual``: 4 successive requests of ``per_task`` people (default 20 %), the papers' T1..T4;
- ``few-shot``: both of the above with 4 replay images per retained person (GS-LoRA++).

People are a seeded shuffle of the identities; ``draws`` repeats every setting with the next
seeds (other victims), so a bar can be checked on the worst draw. Every request goes through the
real ``facerec forget`` transaction, so the numbers include the whole erasure, and each request
ends with the gallery check: the forgotten people's held-out photos, and photos of ``strangers``
(people neither the model nor the gallery saw) searched against the remaining gallery at the
workspace's calibrated threshold; a forgotten face should be answered ``unknown`` as often as a
stranger's. With ``beyond`` each request is also measured beyond the identity head (TAR among the
forgotten people's own photos, the loss attack's AUC, Acc_f after relearning: see
:mod:`forgetting.evaluate`), and, when ``retrain`` is among the methods, each as a gap to the
retrained model of the same draw and task. Outputs: a Markdown table shaped like the paper's (H,
Acc_r, Acc_f, Acc_o per task; trainable ratio; seconds; the beyond-the-head numbers), the JSON
behind it, H per task per method (PNG) and GS-LoRA's per-block group norms (heatmap PNG).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from facerec.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_with
from facerec.core.progress import progress_bar
from facerec.recognition.pipeline import FacePipeline
from facerec.workspace.galleries import scratch_copy
from facerec.workspace.workspace import Workspace, without_onnx_copies

from .evaluate import gaps, loss_attack, relearning, task_sets, verification_forgetting
from .gslora import GSLoRAConfig
from .metrics import h_ceiling, h_mean
from .request import METHODS, ForgetRequest, gallery_check, run_request
from .request_data import people_images

PROTOCOLS = ("single", "continual", "few-shot")
SINGLE_SHARES = (0.05, 0.1, 0.5, 0.9)
FEW_SHOTS = 4
BEYOND_HEAD = ("tar_forgotten", "mia_auc", "relearned_acc_f", "relearned_acc_f_with_shots")
# issue 29's bar (the first three), then the unknown rate of the forgotten people's training photos: the
# photos an unlearnt model was trained on, ~10 x the sample of the held-out ones (4 per person)
EQUIVALENCE = ("unknown_forgotten", "tar_forgotten_at_threshold", "mia_auc", "relearned_acc_f",
               "unknown_forgotten_train")
BEYOND_FAR = 1e-2  # verification's FAR, set on the retained people's impostor pairs (as eval forgetting)
RELEARN_STEPS, RELEARN_SHOTS = 30, 2
TASK_KEYS = ("acc_f_before", "acc_f", "acc_r_before", "acc_r", "acc_o", "h_mean", "h_ceiling", "trainable_ratio",
             "seconds", "seconds_total", "group_norms", "zero_group_share")


def plan(people: list[str], protocol: str, seed: int, per_task: int | None = None,
         shares: tuple[float, ...] = SINGLE_SHARES, shots: int | None = None) -> list[tuple[str, list[list[str]], int | None]]:
    """``[(setting, [people per task], shots)]`` for a protocol over ``people``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if protocol == "few-shot":
        shots = shots or FEW_SHOTS
        return plan(people, "single", seed, per_task, shares, shots) + plan(people, "continual", seed, per_task,
                                                                              shares, shots)
    order = [str(p) for p in np.random.default_rng(seed).permutation(people)]
    suffix = f", {shots}-shot" if shots else ""
    if protocol == "single":
        counts = dict.fromkeys(min(len(order) - 1, max(1, round(share * len(order)))) for share in shares)
        return [(f"{len(order)}-{k}{suffix}", [order[:k]], shots) for k in counts]
    k = per_task or max(1, round(0.2 * len(order)))
    if 4 * k >= len(order):
        raise ValueError(f"4 tasks of {k} people need more than {len(order)} people")
    return [(f"continual{suffix}", [order[t * k:(t + 1) * k] for t in range(4)], shots)]


def _threshold(ws: Workspace) -> float | None:
    """The workspace's calibrated recognition threshold (None before ``facerec calibrate``)."""
    return ws.manifest().get("recognition", {}).get("threshold")


def strangers_unknown_rate(workspace: Path, photos: list[np.ndarray], device: str | None) -> float | None:
    """Share of stranger photos the workspace's gallery answers ``unknown`` at its threshold."""
    if not photos:
        return None
    ws = Workspace(workspace)
    threshold = _threshold(ws)
    if threshold is None:
        return None
    check = gallery_check(FacePipeline(ws, detector="aligned", device=device), "gallery", photos, [],
                          threshold)
    return check.get("unknown_rate")


def _retained(rows: dict[str, int], people: list[str], earlier: list[str]) -> list[str]:
    """The people a task keeps: neither forgotten now nor by an earlier task."""
    return [p for p in rows if p not in people and p not in earlier]


def measure(workspace: Path, root: Path, split, rows: dict[str, int], people: list[str], earlier: list[str],
            device: str | None) -> dict:
    """Acc_f / Acc_r / Acc_o of the workspace's model on held-out images read from ``root`` with
    the base's ``split``, and the gallery check of ``people``'s held-out photos: what the bench
    measures itself when the requests run without the data root."""
    from facerec.training.trainer import top1_accuracy

    ws = Workspace(workspace)
    pipe = FacePipeline(ws, detector="aligned", device=device)

    sets = {k: people_images(root, split.test, rows, names)
            for k, names in (("acc_f", people), ("acc_r", _retained(rows, people, earlier)), ("acc_o", earlier))}
    out = {k: top1_accuracy(pipe.model, d.images, d.labels, pipe.device) for k, d in sets.items()}
    threshold = _threshold(ws)
    if threshold is not None:
        out["unknown_forgotten"] = gallery_check(pipe, "gallery", list(sets["acc_f"].images), people,
                                                 threshold).get("unknown_rate")
    return out


def _request(copy: Path, names: list[str], earlier: list[str], method: str, shots: int | None, device,
             without_data: tuple | None, config) -> dict:
    """One forget request on ``copy``: the task's row of the table."""
    if without_data is None:
        r = run_request(copy, ForgetRequest(tuple(names), method, config, shots=shots), device=device, show_progress=False)
        return {**{k: r.get(k) for k in TASK_KEYS},
                "unknown_forgotten": (r["gallery"].get("check") or {}).get("unknown_rate"),
                "data": r.get("images", {}).get("source")}
    root, split, rows = without_data
    before = measure(copy, root, split, rows, names, earlier, device)
    r = run_request(copy, ForgetRequest(tuple(names), method, config, shots=shots), device=device, show_progress=False)
    after = measure(copy, root, split, rows, names, earlier, device)
    return {**{k: r.get(k) for k in TASK_KEYS}, "acc_f_before": before["acc_f"], "acc_r_before": before["acc_r"],
            "acc_f": after["acc_f"], "acc_r": after["acc_r"], "acc_o": after["acc_o"],
            "h_mean": h_mean(after["acc_r"], after["acc_f"], before["acc_f"]),
            "h_ceiling": h_ceiling(before["acc_r"], before["acc_f"]),
            "unknown_forgotten": after.get("unknown_forgotten"), "data": r.get("images", {}).get("source")}


def beyond_head(copy: Path, source: tuple, names: list[str], earlier: list[str], device: str | None) -> dict:
    """One request's numbers beyond the head, on held-out and training images read from the base's
    data root: TAR among the forgotten people at FAR 1e-2 and at the workspace's threshold, the
    share of their training photos the gallery answers ``unknown``, the loss attack's AUC, and
    Acc_f after relearning on retained data (and with 2 images of each forgotten person)."""
    root, split, rows = source
    sets = task_sets(root, split, rows, names, _retained(rows, names, earlier))
    ws = Workspace(copy)
    pipe = FacePipeline(ws, detector="aligned", device=device)  # the model, and the gallery's search
    model, dev = pipe.model, pipe.device
    relearned = relearning(copy, sets, RELEARN_STEPS, RELEARN_SHOTS, dev, False)
    threshold = _threshold(ws)
    verified = verification_forgetting(model, sets, BEYOND_FAR, dev, threshold)
    trained_on = (gallery_check(pipe, "gallery", list(sets["forget_train"].images), names, threshold)
                  if threshold is not None else {})
    return {"tar_forgotten": verified["tar_forgotten"], "tar_forgotten_at_threshold": verified.get("tar_forgotten_at"),
            "unknown_forgotten_train": trained_on.get("unknown_rate"),
            "mia_auc": loss_attack(model, sets, dev)["auc"], "relearned_acc_f": relearned["retained_only"],
            "relearned_acc_f_with_shots": relearned["with_forget_shots"]}


def gaps_to_retrain(results: list[dict]) -> None:
    """Add ``gap_to_retrain`` (method − retrain, same draw, setting and task) to every task that has
    the beyond-the-head numbers, when ``retrain`` ran."""
    refs = {(r["draw"], r["setting"]): r for r in results if r["method"] == "retrain"}
    for r in results:
        ref = refs.get((r["draw"], r["setting"]))
        if ref is None or ref is r:
            continue
        for task, ref_task in zip(r["tasks"], ref["tasks"]):
            task["gap_to_retrain"] = {k: v for k, v in gaps(task, ref_task, BEYOND_HEAD).items() if v is not None}


def _hide_data_root(copy: Path) -> None:
    """Point the copy's manifest at a data root that does not exist (the deployment case)."""
    Workspace(copy).update_manifest(lambda m: m["data"].update(root=str(copy / "data-root-is-gone")))


def data_source(manifest: dict, base: str | Path) -> tuple:
    """Where the bench reads images itself: ``(data root, split, head rows)`` of the base."""
    return (Path(manifest["data"]["root"]), Workspace(base).split(),
            {n: i for i, n in enumerate(manifest["identities"]) if n is not None})


def run_tasks(base: str | Path, copy: Path, method: str, tasks: list[list[str]], shots: int | None, *,
              strangers: list[np.ndarray] | None = None, without_data: bool = False, beyond: bool = False,
              config=None, device: str | None = None, on_task=None) -> list[dict]:
    """One method through one setting's requests (``tasks``, in order) on a fresh ``copy`` of
    ``base`` (removed at the end): a row per request, as :func:`run_bench` reports them."""
    manifest = Workspace(base).manifest()
    people = [p for p in manifest["identities"] if p is not None]
    source = data_source(manifest, base) if without_data or beyond else None
    scratch_copy(base, copy)
    try:
        if without_data:
            _hide_data_root(copy)
        rows = []
        for t, names in enumerate(tasks):
            earlier = [p for task in tasks[:t] for p in task]
            row = _request(copy, names, earlier, method, shots, device, source if without_data else None, config)
            if beyond:
                row.update(beyond_head(copy, source, names, earlier, device))
            rows.append({"task": t + 1, "known_before": len(people) - len(earlier), "forgotten": len(names),
                         **row, "unknown_strangers": strangers_unknown_rate(copy, strangers or [], device)})
            if on_task:
                on_task(t + 1)
        return rows
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def run_bench(base: str | Path, protocol: str, methods: list[str], *, seed: int = 0, draws: int = 1,
              per_task: int | None = None, shares: tuple[float, ...] = SINGLE_SHARES, shots: int | None = None,
              strangers: list[np.ndarray] | None = None, without_data: bool = False, beyond: bool = False,
              config=None, device: str | None = None, show_progress: bool = True) -> dict:
    """Run ``methods`` under ``protocol`` on copies of the trained workspace ``base``.

    ``without_data``: every request runs with the copy's data root gone, so it unlearns from the
    workspace's crops and replay buffer only; the bench measures held-out accuracy itself.
    ``beyond``: measure every request beyond the head too (:func:`beyond_head`). ``config``: the
    GS-LoRA methods' :class:`~forgetting.gslora.GSLoRAConfig` (default: its defaults), recorded."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    manifest = Workspace(base).manifest()
    people = [p for p in manifest["identities"] if p is not None]
    if without_data and not manifest.get("replay", {}).get("images"):
        raise ValueError("--without-data needs a workspace with a replay buffer (train keeps one)")
    settings = [(draw, *s) for draw in range(draws)
                for s in plan(people, protocol, seed + draw, per_task, shares, shots)]
    total = sum(len(tasks) for _, _, tasks, _ in settings) * len(methods)
    results = []
    with tempfile.TemporaryDirectory() as tmp, without_onnx_copies(), \
            progress_bar(total, f"bench {protocol}", enabled=show_progress, unit="request") as bar:
        for draw, setting, tasks, k_shots in settings:
            for method in methods:
                def done(task: int) -> None:
                    bar.set_postfix(method=method, task=task, refresh=False)
                    bar.update(1)

                rows = run_tasks(base, Path(tmp) / f"{method}-{len(results)}", method, tasks, k_shots,
                                 strangers=strangers, without_data=without_data, beyond=beyond, config=config,
                                 device=device, on_task=done)
                results.append({"setting": setting, "method": method, "shots": k_shots, "draw": draw,
                                "seed": seed + draw, "tasks": rows})
    if beyond:
        gaps_to_retrain(results)
    return {"protocol": protocol, "seed": seed, "draws": draws, "people": len(people), "without_data": without_data,
            "model": manifest["model"]["name"], "train_seconds": manifest.get("training", {}).get("seconds"),
            "base_top1": manifest.get("training", {}).get("top1"), "strangers": len(strangers or []),
            "gslora_options": _options(config), "results": results}


def _options(config) -> dict:
    """The GS-LoRA settings that differ from the defaults (the method still picks the objective)."""
    defaults = GSLoRAConfig().to_dict()
    return {k: v for k, v in (config.to_dict() if config else {}).items() if defaults[k] != v}


def _pct(v) -> str:
    return "–" if v is None or v != v else f"{100 * v:.2f}"


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and v == v]
    return float(np.mean(values)) if values else None


def worst_draw(runs: list[dict]) -> dict:
    """Over every task of every draw: the highest Acc_f and Acc_o, the lowest H / ceiling and
    Acc_r − before, and the largest shortfall of forgotten faces' unknown rate under strangers'."""
    tasks = [t for r in runs for t in r["tasks"]]
    gaps = [t["unknown_strangers"] - t["unknown_forgotten"] for t in tasks
            if t.get("unknown_strangers") is not None and t.get("unknown_forgotten") is not None]
    return {"acc_f": max(t["acc_f"] for t in tasks),
            "acc_o": max((t["acc_o"] for t in tasks if t["task"] > 1 and t["acc_o"] == t["acc_o"]), default=None),
            "h_share": min(t["h_mean"] / t["h_ceiling"] if t["h_ceiling"] else 0.0 for t in tasks),
            "acc_r_drop": max(t["acc_r_before"] - t["acc_r"] for t in tasks),
            "unknown_gap": max(gaps) if gaps else None}


def markdown(bench: dict) -> str:
    """Tables like the GS-LoRA paper's: one per setting, a row per method, H / Acc_r / Acc_f (/ Acc_o)
    per task (means over the draws), the gallery check, and the worst draw."""
    draws = bench.get("draws", 1)
    out = [f"Protocol `{bench['protocol']}` on {bench['people']} people, model `{bench['model']}` "
           f"(base top-1 {_pct(bench.get('base_top1'))} %, trained in {bench['train_seconds']} s), "
           f"{draws} draw(s) of victims from seed {bench['seed']}, means over draws. Accuracies in %, H = harmonic "
           f"mean of Acc_r and the drop in Acc_f; (s) = unlearning seconds of that request, s = all requests. "
           f"unknown = share of the forgotten people's held-out photos / of {bench.get('strangers', 0)} strangers' "
           f"photos the remaining gallery answers `unknown` after the last request. worst = over draws and tasks: "
           f"max Acc_f, min H / ceiling, max (strangers' − forgotten unknown rate)."
           + "".join(f" GS-LoRA settings: {', '.join(f'{k}={v}' for k, v in options.items())}."
                     for options in [bench.get("gslora_options")] if options)]
    for setting in dict.fromkeys(r["setting"] for r in bench["results"]):
        rows = [r for r in bench["results"] if r["setting"] == setting]
        tasks = rows[0]["tasks"]
        head = ["method", "trainable"] + [f"{t['known_before']}-{t['forgotten']} H / Acc_r / Acc_f"
                                          + (" / Acc_o" if t["task"] > 1 else "") for t in tasks]
        head += ["unknown forgotten / strangers", "worst Acc_f / H÷ceil / gap", "s"]
        out += ["", f"**{setting}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        first = [r for r in rows if r["method"] == rows[0]["method"]]
        before = [f"– / {_pct(_mean(r['tasks'][i]['acc_r_before'] for r in first))} / "
                  f"{_pct(_mean(r['tasks'][i]['acc_f_before'] for r in first))}" + (" / –" if i else "")
                  for i in range(len(tasks))]
        out.append("| before | – | " + " | ".join(before) + " | – | – | – |")
        for method in dict.fromkeys(r["method"] for r in rows):
            runs = [r for r in rows if r["method"] == method]
            cells = []
            for i in range(len(tasks)):
                m = {k: _mean(r["tasks"][i][k] for r in runs) for k in ("h_mean", "acc_r", "acc_f", "acc_o", "seconds")}
                cells.append(f"{_pct(m['h_mean'])} / {_pct(m['acc_r'])} / {_pct(m['acc_f'])}"
                             + (f" / {_pct(m['acc_o'])}" if i else "") + f" ({m['seconds']:.1f} s)")
            last = [r["tasks"][-1] for r in runs]
            worst = worst_draw(runs)
            seconds = _mean(sum(t["seconds"] for t in r["tasks"]) for r in runs)
            out.append(f"| {method} | {100 * runs[0]['tasks'][0]['trainable_ratio']:.2f} % | " + " | ".join(cells)
                       + f" | {_pct(_mean(t['unknown_forgotten'] for t in last))} / "
                         f"{_pct(_mean(t['unknown_strangers'] for t in last))}"
                       + f" | {_pct(worst['acc_f'])} / {worst['h_share']:.3f} / {_pct(worst['unknown_gap'])}"
                       + f" | {seconds:.1f} |")
        out += _beyond_table(rows)
    return "\n".join(out) + "\n"


def _beyond_table(rows: list[dict]) -> list[str]:
    """One setting's beyond-the-head lines: the last task's numbers (means over draws) and the
    largest gap to retrain over draws and tasks; nothing when the bench ran without them."""
    if "tar_forgotten" not in rows[0]["tasks"][-1]:
        return []
    out = ["", f"beyond the head, after the last request (means over draws): TAR among the forgotten at FAR "
               f"{BEYOND_FAR:g}, loss-attack AUC (0.5 = no signal), Acc_f after {RELEARN_STEPS} relearning steps on "
               f"retained data / plus {RELEARN_SHOTS} images per forgotten person; worst gap = largest |method − "
               "retrain| over draws and tasks, in points", "",
           "| method | TAR forgotten | MIA AUC | relearned Acc_f | worst gap TAR / AUC / relearned / +shots |",
           "|---|---|---|---|---|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        runs = [r for r in rows if r["method"] == method]
        last = [r["tasks"][-1] for r in runs]
        found = [t["gap_to_retrain"] for r in runs for t in r["tasks"] if "gap_to_retrain" in t]
        worst = [max((abs(g[k]) for g in found if k in g), default=None) for k in BEYOND_HEAD]
        out.append(f"| {method} | {_pct(_mean(t['tar_forgotten'] for t in last))} | "
                   f"{_mean(t['mia_auc'] for t in last):.3f} | {_pct(_mean(t['relearned_acc_f'] for t in last))} / "
                   f"{_pct(_mean(t['relearned_acc_f_with_shots'] for t in last))} | "
                   + (" / ".join(_pct(w) for w in worst) if found else "–") + " |")
    return out


def plot_h_per_task(bench: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for r in bench["results"]:
        if r.get("draw", 0):
            continue  # one line per method and setting: the first draw
        ax.plot([t["task"] for t in r["tasks"]], [100 * t["h_mean"] for t in r["tasks"]], marker="o",
                label=f"{r['method']} ({r['setting']})")
    ax.set_xlabel("task")
    ax.set_ylabel("H-mean (%)")
    ax.set_title(f"H per task — {bench['protocol']}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def plot_group_norms(bench: dict, path: Path) -> bool:
    """Heatmap of GS-LoRA's per-block group norms (rows: requests); False when no GS-LoRA ran."""
    rows, labels = [], []
    for r in bench["results"]:
        for t in r["tasks"] if not r.get("draw", 0) else []:
            if t.get("group_norms"):
                rows.append(t["group_norms"])
                labels.append(f"{r['method']} {r['setting']} T{t['task']}")
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(rows[0]), 1 + 0.35 * len(rows)), dpi=120)
    image = ax.imshow(np.array(rows), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(rows[0])), [f"block {i}" for i in range(len(rows[0]))], fontsize=7)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    fig.colorbar(image, ax=ax, label="group L2 norm")
    ax.set_title("GS-LoRA group norms")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return True


def write_outputs(bench: dict, out: str | Path) -> dict:
    """Markdown, JSON and plots into ``out``; returns their paths."""
    out = Path(out)
    stem = f"forgetting-{bench['protocol']}"
    paths = {"markdown": out / f"{stem}.md", "json": out / f"{stem}.json", "h_plot": out / f"{stem}-h.png"}
    atomic_write_bytes(paths["markdown"], markdown(bench).encode())
    atomic_write_json(paths["json"], {"format_version": 2, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                      **bench}, strict=True)
    plot_h_per_task(bench, paths["h_plot"])
    if plot_group_norms(bench, out / f"{stem}-group-norms.png"):
        paths["group_norm_plot"] = out / f"{stem}-group-norms.png"
    return {k: str(v) for k, v in paths.items()}
