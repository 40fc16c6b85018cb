"""The forgetting campaign (issue 29): issue 29's matrix, resuming after a kill without redoing or
losing a cell, the report's missing cells and gaps to the retrained reference, and the
equivalence numbers of real cells on the tiny workspace."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facerec.cli.main import main
from facerec.core.errors import FaceRecError
from forgetting.campaign import Cell, default_cells, init_campaign, read_results
from forgetting.campaign_report import bars, equivalence_gaps, report, write_report
from forgetting.campaign_run import run_campaign

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_matrix_is_issue_29s_with_the_bars_first():
    cells = default_cells()
    assert len({c.key for c in cells}) == len(cells) == 7 * (6 * 3 + 5)
    assert {c.setting for c in cells} == {"single 0.05", "single 0.1", "single 0.5", "single 0.9", "continual",
                                          "single 0.1, 4-shot", "continual, 4-shot"}
    first = cells[:18]
    assert {c.method for c in first} == {"gs-lora", "retrain"} and {c.setting for c in first} == {
        "single 0.1", "single 0.5", "continual"} and {c.draw for c in first} == {0, 1, 2}
    draws = {m: {c.draw for c in cells if c.method == m} for m in {c.method for c in cells}}
    assert all(draws[m] == {0, 1, 2} for m in ("gs-lora", "gs-lora++", "retrain", "salun", "scrub", "lwf"))
    assert all(draws[m] == {0} for m in ("gs-lora-paper", "l2", "random-label", "ewc", "finetune"))
    assert all(c.draw == 0 for c in cells[18:18 + 7 * 11 - 3 * 2])  # then one draw of everything
    assert Cell.from_dict(cells[5].to_dict()) == cells[5]
    with pytest.raises(FaceRecError):
        Cell.from_dict({"protocol": "single", "method": "gs-lora", "draw": 0})  # no share


@pytest.fixture(scope="module")
def base(tiny_trained, tmp_path_factory):
    """The tiny workspace, enrolled and calibrated: a campaign's base."""
    data, source = tiny_trained
    ws = tmp_path_factory.mktemp("campaign") / "ws"
    shutil.copytree(source, ws)
    assert main(["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    return ws


def _fake_line(matrix, cell, *, acc_f=0.0, unknown=0.5, seconds=1.0) -> dict:
    task = {"task": 1, "acc_f": acc_f, "acc_f_before": 1.0, "acc_r": 0.99, "acc_r_before": 1.0, "acc_o": None,
            "h_mean": 0.99, "h_ceiling": 1.0, "seconds": seconds, "unknown_forgotten": unknown,
            "tar_forgotten_at_threshold": 0.2, "mia_auc": 0.5, "relearned_acc_f": 0.1}
    return {"cell": cell.key, "spec": cell.to_dict(), "setting": "6-1", "tasks": [task], "seconds": seconds,
            "machine": {"cpu": "test"}, "base_version": matrix["base_version"], "settings": cell.settings()}


def test_a_campaign_interrupted_mid_cell_resumes_without_redoing_or_losing_cells(base, tmp_path, capsys):
    cells = [Cell("single", 0.1, None, m, d) for d in range(2) for m in ("gs-lora", "retrain")]
    init_campaign(tmp_path / "c", base, None, cells=cells)
    calls = []

    def crashing(matrix, cell, **_):
        calls.append(cell.key)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed in the middle of the third cell
        return _fake_line(matrix, cell, seconds=len(calls))

    with pytest.raises(KeyboardInterrupt):
        run_campaign(tmp_path / "c", run=crashing, show_progress=False)
    kept = read_results(tmp_path / "c")
    assert [r["cell"] for r in kept] == [c.key for c in cells[:2]]
    assert not (tmp_path / "c" / ".work").exists()
    calls.clear()
    r = run_campaign(tmp_path / "c", run=lambda m, c, **_: calls.append(c.key) or _fake_line(m, c), show_progress=False)
    assert calls == [c.key for c in cells[2:]] and r["done"] == 4 and r["left"] == 0
    assert read_results(tmp_path / "c")[:2] == kept  # the finished lines, untouched
    assert run_campaign(tmp_path / "c", run=crashing, show_progress=False)["ran"] == []  # nothing left to do
    with pytest.raises(FaceRecError, match="declared"):
        init_campaign(tmp_path / "c", base, None, cells=cells)


def test_variants_are_declared_by_name_and_a_changed_default_runs_again(base, tmp_path):
    from forgetting.campaign import add_cells, append_result

    cell = Cell("single", 0.1, None, "gs-lora", 0)
    matrix = init_campaign(tmp_path / "c", base, None, cells=[cell])
    variant = Cell.parse("single 0.1, 4-shot | gs-lora | draw 2 | keep_weight=2,rank=4")
    assert variant == Cell("single", 0.1, 4, "gs-lora", 2, ("keep_weight=2", "rank=4")) and Cell.parse(variant.key) == variant
    assert Cell.parse("continual | retrain | draw 1") == Cell("continual", None, None, "retrain", 1)
    for bad in ("single 0.1 | gs-lora", "single x | gs-lora | draw 0", "single 0.1 | magic | draw 0",
                "single 0.1 | gs-lora | draw 0 | no_such_setting=1"):
        with pytest.raises(FaceRecError):
            add_cells(tmp_path / "c", [Cell.parse(bad)])
    assert add_cells(tmp_path / "c", [variant, cell]) == [variant]
    old = {**_fake_line(matrix, cell), "settings": {**cell.settings(), "keep_weight": 4.0}}  # an older default
    append_result(tmp_path / "c", old)
    calls = []
    r = run_campaign(tmp_path / "c", only="draw 0", run=lambda m, c, **_: calls.append(c.key) or _fake_line(m, c),
                     show_progress=False)
    assert calls == [cell.key] and r["left"] == 1  # measured again under today's default; the variant not asked for
    assert len(read_results(tmp_path / "c")) == 2  # the old line stays as history


def test_a_budget_leaves_out_cells_that_would_not_finish(base, tmp_path):
    cells = [Cell("single", 0.1, None, "gs-lora", 0), Cell("continual", None, None, "retrain", 0)]
    init_campaign(tmp_path / "c", base, None, cells=cells)
    # estimates on 6 people: gs-lora ~3 min, continual retrain ~40 min
    r = run_campaign(tmp_path / "c", budget_s=600, run=lambda m, c, **_: _fake_line(m, c), show_progress=False)
    assert r["ran"] == [cells[0].key] and r["over_budget"] == [cells[1].key] and r["left"] == 1


def test_the_report_marks_missing_cells_and_measures_gaps_to_retrain(base, tmp_path):
    cells = [Cell("single", 0.1, None, m, d) for d in range(3) for m in ("gs-lora", "retrain")]
    cells.append(Cell("single", 0.1, None, "salun", 0))
    matrix = init_campaign(tmp_path / "c", base, None, cells=cells)
    values = {("gs-lora", 0): 0.70, ("retrain", 0): 0.40, ("gs-lora", 1): 0.45, ("retrain", 1): 0.50}
    from forgetting.campaign import append_result

    for (method, draw), unknown in values.items():
        cell = Cell("single", 0.1, None, method, draw)
        append_result(tmp_path / "c", _fake_line(matrix, cell, unknown=unknown))
    lines = {r["cell"]: r for r in read_results(tmp_path / "c")}
    gap = equivalence_gaps(lines[cells[0].key], lines[cells[1].key])[0]
    assert gap["unknown_forgotten"] == pytest.approx(0.30) and gap["mia_auc"] == 0 and gap["relearned_acc_f"] == 0
    assert equivalence_gaps(lines[cells[0].key], None)[0]["unknown_forgotten"] is None
    text = report(tmp_path / "c")
    assert "4 of 7 cells finished" in text and "3 **missing**" in text
    assert "| gs-lora | 2 of 3 **missing** |" in text and "| salun | **missing** 0 of 1 |" in text
    assert "12.5 ± 24.7 (30.0)" in text  # Δunknown over the two draws: +30 and -5 points, worst |Δ| 30
    verdicts = {(b["setting"], b["bar"]): b["verdict"] for b in bars(cells, lines)}
    assert verdicts[("single 0.1", "Δunknown within ±5 pts")] == "fail"  # 30 points off on draw 0
    assert verdicts[("single 0.1", "Acc_f <= 1 %")] == "missing"  # no failure yet, draw 2 not run
    assert verdicts[("single 0.5", "Acc_f <= 1 %")] == "missing"
    doc = tmp_path / "BENCH.md"
    begin = f"<!-- campaign {(tmp_path / 'c').as_posix()} begin -->"
    doc.write_text(f"# Before\n{begin}\nold\n<!-- campaign end -->\n# After\n")
    write_report(tmp_path / "c", doc)
    new = doc.read_text()
    assert new.startswith("# Before\n") and new.endswith("<!-- campaign end -->\n# After\n") and "old" not in new
    assert text in new


def test_real_cells_measure_equivalence_and_survive_kill_9(base, tmp_path, capsys):
    """Three real cells on the tiny workspace through the CLI, killed with SIGKILL during the second:
    the first line survives untouched, the rerun finishes the rest; retrain against itself is
    exactly equivalent, GS-LoRA's gaps are measured."""
    folder = tmp_path / "c"
    cells = [Cell("single", 0.2, None, "retrain", 0), Cell("single", 0.2, None, "gs-lora", 0, ("steps=30",)),
             Cell("continual", None, None, "gs-lora", 0, ("steps=10",))]
    init_campaign(folder, base, None, cells=cells)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "facerec", "bench", "campaign", str(folder), "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not read_results(folder) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # into the second cell
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = read_results(folder)
    assert [r["cell"] for r in first] == [cells[0].key], proc.stderr.read().decode()[-2000:]
    assert main(["bench", "campaign", str(folder), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["ran"] == [c.key for c in cells[1:]]
    lines = read_results(folder)
    assert lines[0] == first[0] and [r["cell"] for r in lines] == [c.key for c in cells]
    retrain, gs = lines[0], lines[1]
    assert all(v == 0 for v in equivalence_gaps(retrain, retrain)[0].values())
    for line in lines:
        for task in line["tasks"]:
            assert all(0 <= task[k] <= 1 for k in ("unknown_forgotten", "tar_forgotten_at_threshold", "mia_auc",
                                                   "relearned_acc_f", "unknown_forgotten_train"))
        assert line["machine"]["cores"] >= 1 and line["settings"] and line["seconds"] > 0
    assert gs["settings"]["steps"] == 30 and len(lines[2]["tasks"]) == 4
    assert all(v is not None for v in equivalence_gaps(gs, retrain)[0].values())
    assert main(["bench", "campaign", str(folder), "--report", "-q"]) == 0
    assert "3 of 3 cells finished" in capsys.readouterr().out


def test_a_setting_added_later_counts_as_its_default_in_older_lines():
    from forgetting.campaign import same_settings

    cell = Cell("single", 0.1, None, "gs-lora", 0)
    present = cell.settings()
    older = {k: v for k, v in present.items() if k != "rank"}  # the line ran before "rank" existed
    assert same_settings(older, present, cell.to_dict())
    variant = Cell("single", 0.1, None, "gs-lora", 0, ("rank=4",))
    assert not same_settings(older, variant.settings(), variant.to_dict())
    assert not same_settings({**present, "keep_weight": 4.0}, present, cell.to_dict()) and not same_settings(None, present, {})
