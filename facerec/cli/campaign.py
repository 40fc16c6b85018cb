"""``facerec bench campaign``: declare, run (resumable, within a budget), plan and report a
forgetting benchmark campaign (``forgetting.campaign``)."""

from __future__ import annotations

from facerec.cli.args import duration, positive_int
from facerec.cli.options import add_common, emit
from facerec.core.errors import FaceRecError


def add_parser(benches) -> None:
    q = benches.add_parser("campaign", help="the forgetting matrix as a resumable campaign whose results are committed")
    q.add_argument("folder", metavar="DIR", help="the campaign: matrix.json and results.jsonl")
    q.add_argument("--declare", action="store_true", help="write DIR/matrix.json for --base (issue 29's matrix)")
    q.add_argument("--base", default=None, help="the base workspace (trained, enrolled, calibrated); when running, "
                                                "stands in for the matrix's path (same model version)")
    q.add_argument("--strangers", default=None, help="aligned crops of people nobody saw (the unknown-rate bar)")
    q.add_argument("--draws", type=positive_int, default=3, help="--declare: draws of the main methods (default 3)")
    q.add_argument("--seed", type=int, default=0, help="--declare: victims are drawn from seed + draw")
    q.add_argument("--budget", type=duration, default=None, metavar="150m",
                   help="stop before a cell that would not finish within this time")
    q.add_argument("--max-cells", type=positive_int, default=None, help="run at most this many cells")
    q.add_argument("--only", default=None, metavar="TEXT", help="run only the cells whose name contains TEXT")
    q.add_argument("--add", action="append", default=[], metavar="CELL",
                   help="declare another cell, e.g. 'single 0.1 | gs-lora | draw 0 | keep_weight=2' (repeatable)")
    q.add_argument("--plan", action="store_true", help="list the cells, finished or not, with estimated CPU time")
    q.add_argument("--report", nargs="?", const="-", default=None, metavar="FILE",
                   help="print the tables (or write them into FILE, between the campaign's markers when it has them)")
    q.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    add_common(q, workspace=False)
    q.set_defaults(func=cmd_bench_campaign)


def cmd_bench_campaign(args) -> None:
    from forgetting.campaign import init_campaign
    from forgetting.campaign_report import report, write_report
    from forgetting.campaign_run import run_campaign

    if args.declare:
        if not args.base:
            raise FaceRecError("--declare needs --base WORKSPACE")
        matrix = init_campaign(args.folder, args.base, args.strangers, seed=args.seed, draws=args.draws)
        emit(args, matrix, f"{args.folder}/matrix.json: {len(matrix['cells'])} cells on {matrix['base_model']} "
                           f"{matrix['base_version']}; run: facerec bench campaign {args.folder} --budget 150m")
    elif args.add:
        from forgetting.campaign import Cell, add_cells

        new = add_cells(args.folder, [Cell.parse(k) for k in args.add])
        emit(args, {"added": [c.key for c in new]}, "\n".join(f"declared: {c.key}" for c in new) or "nothing new")
    elif args.plan:
        r = plan(args.folder)
        emit(args, r, "\n".join(f"{'done' if c['done'] else 'todo'} {c['seconds'] / 60:6.1f} min  {c['cell']}"
                                for c in r["cells"])
             + f"\n{r['done']} of {len(r['cells'])} done; left: ~{r['hours_left']:.1f} CPU-hours (estimated)")
    elif args.report:
        if args.report == "-":
            text = report(args.folder)
            emit(args, {"markdown": text}, text)
        else:
            write_report(args.folder, args.report)
            emit(args, {"written": args.report}, f"campaign tables written to {args.report}")
    else:
        r = run_campaign(args.folder, budget_s=args.budget, max_cells=args.max_cells, only=args.only, base=args.base,
                         strangers=args.strangers, device=args.device, show_progress=not args.quiet)
        emit(args, r, f"{len(r['ran'])} cell(s) run; {r['done']} of {r['cells']} done, {r['left']} left"
                      + (f"; {len(r['over_budget'])} did not fit the budget" if r["over_budget"] else ""))


def plan(folder) -> dict:
    """Every cell, finished or not, with its seconds (measured, else estimated)."""
    from forgetting.campaign import current_lines, read_matrix, read_results
    from forgetting.campaign_run import estimate

    matrix, cells = read_matrix(folder)
    results = read_results(folder)
    done = current_lines(cells, results)
    rows = [{"cell": c.key, "done": c.key in done,
             "seconds": done[c.key]["seconds"] if c.key in done else estimate(c, results, matrix["people"])}
            for c in cells]
    return {"cells": rows, "done": sum(r["done"] for r in rows),
            "hours_left": sum(r["seconds"] for r in rows if not r["done"]) / 3600,
            "hours_done": sum(r["seconds"] for r in rows if r["done"]) / 3600}
