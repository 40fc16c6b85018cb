"""The fuzzing campaign: thousands of mutated inputs per parser, each parser in a child process.

Usage::

    python tools/fuzz.py [--cases 3000] [--targets image,bin,...] [--seed 0] [--hang-seconds 20] [--json]

Per target (``facerec.fuzzing.TARGETS``: image files, ``pairs.txt``, ``.bin``, ``.rec``, ``.idx``,
``workspace.json``, the gallery's ``meta.sqlite`` and FAISS index), a forked child runs the cases
and reports each one's outcome, time and the child's peak resident memory. A case may end
``ok`` (parsed) or ``refused`` (a one-line user error naming the file); anything else is counted
as ``crash`` (another exception), ``hang`` (over ``--hang-seconds``) or ``segfault`` (the child
died on a signal; the campaign restarts after that case). Exit status 1 if any case was bad.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facerec.testing.fuzzing import TARGETS, cases, run_case  # noqa: E402


def _child(name: str, count: int, seed: int, start: int, hang: int, out) -> None:
    def alarm(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, alarm)
    target = TARGETS[name]
    with tempfile.TemporaryDirectory() as scratch:
        for i, data in cases(target, Path(scratch), count, seed):
            if i < start:
                continue
            t0 = time.perf_counter()
            signal.alarm(hang)
            try:
                outcome, detail = run_case(target, Path(scratch), data), ""
            except TimeoutError:
                outcome, detail = "hang", ""
            except Exception as err:  # the finding itself: any exception that is not a user error
                outcome, detail = "crash", f"{type(err).__name__}: {err}"[:300]
            finally:
                signal.alarm(0)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            out.write(json.dumps({"i": i, "outcome": outcome, "s": time.perf_counter() - t0, "rss": rss,
                                  "size": len(data), "detail": detail}) + "\n")
            out.flush()


def run_target(name: str, count: int, seed: int, hang: int) -> dict:
    outcomes, details, start = Counter(), Counter(), 0
    slowest = peak = 0.0
    while start < count:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)  # decoder chatter
            with os.fdopen(write, "w") as out:
                try:
                    _child(name, count, seed, start, hang, out)
                except BaseException:
                    os._exit(3)
            os._exit(0)
        os.close(write)
        last = start - 1
        with os.fdopen(read) as lines:
            for line in lines:
                case = json.loads(line)
                last = case["i"]
                outcomes[case["outcome"]] += 1
                slowest, peak = max(slowest, case["s"]), max(peak, case["rss"])
                if case["detail"]:
                    details[case["detail"]] += 1
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            outcomes["segfault" if os.WTERMSIG(status) == signal.SIGSEGV else f"signal {os.WTERMSIG(status)}"] += 1
            last += 1  # the case that killed the child
        elif os.WEXITSTATUS(status) != 0:
            outcomes["child error"] += 1
            break
        start = last + 1
    return {"cases": count, **dict(outcomes), "slowest_case_s": round(slowest, 3), "peak_rss_mb": round(peak),
            "crash_details": dict(details.most_common(10))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000, help="cases per target (default 3000)")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang-seconds", type=int, default=20, help="a case running longer is a hang")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        print(f"error: unknown targets {unknown}; choose from {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    report = {}
    for name in names:
        t0 = time.perf_counter()
        report[name] = run_target(name, args.cases, args.seed, args.hang_seconds)
        report[name]["seconds"] = round(time.perf_counter() - t0, 1)
        if not args.json:
            r = report[name]
            bad = {k: v for k, v in r.items() if k not in ("cases", "ok", "refused", "slowest_case_s", "peak_rss_mb",
                                                            "crash_details", "seconds")}
            print(f"{name:14s} {r['cases']:6d} cases: {r.get('ok', 0):5d} ok, {r.get('refused', 0):5d} refused, "
                  f"bad {bad or 0}; slowest {r['slowest_case_s']:.2f} s, peak {r['peak_rss_mb']} MB, {r['seconds']} s",
                  flush=True)
            for detail, n in r["crash_details"].items():
                print(f"    {n} x {detail}")
    if args.json:
        print(json.dumps(report, indent=2))
    good = {"cases", "ok", "refused", "slowest_case_s", "peak_rss_mb", "crash_details", "seconds"}
    return 1 if any(set(r) - good for r in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
