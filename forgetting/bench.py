"""The forgetting benchmark: the GS-LoRA papers' protocols, any methods, one folder dataset.

Protocols (on a model trained on the dataset, each method starting from a fresh copy of it):

- ``single``: one request forgetting 10 %, and separately one forgetting 50 %, of the people;
- ``continual``: 4 successive requests of ``per_task`` people (default 10 %), the paper's T1..T4;
- ``few-shot``: one request of 10 % with 4 replay images per retained person.

People are a seeded shuffle of the identities. Every request goes through the real
``facerec forget`` transaction, so the numbers include the whole erasure. Outputs: a Markdown
table shaped like the paper's (H, Acc_r, Acc_f, Acc_o per task; trainable ratio; seconds), the
JSON behind it, H per task per method (PNG) and GS-LoRA's per-block group norms (heatmap PNG).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from facerec.io import atomic_write_bytes, atomic_write_json, atomic_write_with
from facerec.progress import progress_bar
from facerec.workspace import Workspace

from .request import METHODS, forget_people

PROTOCOLS = ("single", "continual", "few-shot")


def plan(people: list[str], protocol: str, seed: int, per_task: int | None) -> list[tuple[str, list[list[str]], int | None]]:
    """``[(setting, [people per task], shots)]`` for a protocol over ``people``."""
    order = [str(p) for p in np.random.default_rng(seed).permutation(people)]
    tenth = per_task or max(1, round(0.1 * len(order)))
    if protocol == "single":
        return [(f"{len(order)}-{n}", [order[:n]], None) for n in (tenth, max(1, round(0.5 * len(order))))]
    if protocol == "continual":
        k = tenth
        if 4 * k >= len(order):
            raise ValueError(f"4 tasks of {k} people need more than {len(order)} people")
        return [("continual", [order[t * k:(t + 1) * k] for t in range(4)], None)]
    if protocol == "few-shot":
        return [(f"{len(order)}-{tenth}, 4-shot", [order[:tenth]], 4)]
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def run_bench(base: str | Path, protocol: str, methods: list[str], *, seed: int = 0, per_task: int | None = None,
              device: str | None = None, show_progress: bool = True) -> dict:
    """Run ``methods`` under ``protocol`` on copies of the trained workspace ``base``."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    manifest = Workspace(base).manifest()
    people = [p for p in manifest["identities"] if p is not None]
    settings = plan(people, protocol, seed, per_task)
    total = sum(len(tasks) for _, tasks, _ in settings) * len(methods)
    results = []
    with tempfile.TemporaryDirectory() as tmp, progress_bar(total, f"bench {protocol}", enabled=show_progress,
                                                             unit="request") as bar:
        for setting, tasks, shots in settings:
            for method in methods:
                copy = Path(tmp) / f"{method}-{len(results)}"
                shutil.copytree(base, copy, ignore=shutil.ignore_patterns(".lock", "train-state.pt"))
                rows = []
                for t, names in enumerate(tasks):
                    r = forget_people(copy, names, method=method, shots=shots, device=device, show_progress=False)
                    rows.append({"task": t + 1, "known_before": len(people) - sum(map(len, tasks[:t])),
                                 "forgotten": len(names),
                                 **{k: r.get(k) for k in ("acc_f_before", "acc_f", "acc_r_before", "acc_r", "acc_o",
                                                          "h_mean", "h_ceiling", "trainable_ratio", "seconds",
                                                          "seconds_total", "group_norms", "zero_group_share")}})
                    bar.set_postfix(method=method, task=t + 1, refresh=False)
                    bar.update(1)
                results.append({"setting": setting, "method": method, "shots": shots, "tasks": rows})
                shutil.rmtree(copy, ignore_errors=True)
    return {"protocol": protocol, "seed": seed, "people": len(people), "model": manifest["model"]["name"],
            "train_seconds": manifest.get("training", {}).get("seconds"), "results": results}


def _pct(v) -> str:
    return "–" if v is None or v != v else f"{100 * v:.2f}"


def markdown(bench: dict) -> str:
    """Tables like the GS-LoRA paper's: one per setting, a row per method, H / Acc_r / Acc_f (/ Acc_o) per task."""
    out = [f"Protocol `{bench['protocol']}` on {bench['people']} people, model `{bench['model']}` "
           f"(trained in {bench['train_seconds']} s). Accuracies in %, H = harmonic mean of Acc_r and the drop "
           f"in Acc_f; (s) = unlearning seconds of that request, s = all requests."]
    for setting in dict.fromkeys(r["setting"] for r in bench["results"]):
        rows = [r for r in bench["results"] if r["setting"] == setting]
        tasks = rows[0]["tasks"]
        head = ["method", "trainable"] + [f"{t['known_before']}-{t['forgotten']} H / Acc_r / Acc_f"
                                          + (" / Acc_o" if t["task"] > 1 else "") for t in tasks] + ["s"]
        out += ["", f"**{setting}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out.append("| before | – | " + " | ".join(f"– / {_pct(t['acc_r_before'])} / {_pct(t['acc_f_before'])}"
                                                   + (" / –" if t["task"] > 1 else "") for t in tasks) + " | – |")
        for r in rows:
            cells = [f"{_pct(t['h_mean'])} / {_pct(t['acc_r'])} / {_pct(t['acc_f'])}"
                     + (f" / {_pct(t['acc_o'])}" if t["task"] > 1 else "") + f" ({t['seconds']:.1f} s)"
                     for t in r["tasks"]]
            seconds = sum(t["seconds"] for t in r["tasks"])
            out.append(f"| {r['method']} | {100 * r['tasks'][0]['trainable_ratio']:.2f} % | " + " | ".join(cells)
                       + f" | {seconds:.1f} |")
    return "\n".join(out) + "\n"


def plot_h_per_task(bench: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for r in bench["results"]:
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
        for t in r["tasks"]:
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
    atomic_write_json(paths["json"], {"format_version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                      **bench})
    plot_h_per_task(bench, paths["h_plot"])
    if plot_group_norms(bench, out / f"{stem}-group-norms.png"):
        paths["group_norm_plot"] = out / f"{stem}-group-norms.png"
    return {k: str(v) for k, v in paths.items()}
