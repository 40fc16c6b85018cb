"""`facerec bench forgetting` and `facerec eval forgetting` on the tiny workspace."""

import json

import pytest

from facerec.cli import main
from forgetting.bench import plan


def test_protocol_plans_follow_the_papers():
    people = [f"p{i:02d}" for i in range(40)]
    single = plan(people, "single", 0, None)
    assert [s for s, _, _ in single] == ["40-4", "40-20"] and len(single[1][1][0]) == 20
    (setting, tasks, shots), = plan(people, "continual", 0, None)
    assert len(tasks) == 4 and all(len(t) == 4 for t in tasks) and len({p for t in tasks for p in t}) == 16
    assert plan(people, "few-shot", 0, None)[0][2] == 4
    assert plan(people, "single", 0, None) == plan(people, "single", 0, None)  # seeded
    with pytest.raises(ValueError):
        plan(people[:6], "continual", 0, 2)


def test_bench_writes_table_json_and_plots(tiny_trained, tmp_path, capsys):
    data, ws = tiny_trained
    out = tmp_path / "bench"
    code = main(["bench", "forgetting", "-w", str(ws), "--protocol", "few-shot", "--methods", "gs-lora,finetune",
                 "--out", str(out), "--json", "-q"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in report["results"]] == ["gs-lora", "finetune"]
    table = (out / "forgetting-few-shot.md").read_text()
    assert "| gs-lora |" in table and "| finetune |" in table and "H / Acc_r / Acc_f" in table
    assert json.loads((out / "forgetting-few-shot.json").read_text())["format_version"] == 1
    assert (out / "forgetting-few-shot-h.png").is_file() and (out / "forgetting-few-shot-group-norms.png").is_file()
    assert json.loads((ws / "workspace.json").read_text())["identities"][0] is not None  # base untouched


def test_bench_refuses_an_unknown_method(tiny_trained, tmp_path, capsys):
    code = main(["bench", "forgetting", "-w", str(tiny_trained[1]), "--methods", "gs-lora,magic",
                 "--out", str(tmp_path), "-q"])
    assert code == 2 and "magic" in capsys.readouterr().err


def test_eval_forgetting_reports_beyond_the_head(tiny_trained, capsys):
    data, ws = tiny_trained
    before = (ws / "workspace.json").read_bytes()
    code = main(["eval", "forgetting", "synth-0001", "-w", str(ws), "--no-retrain", "--relearn-steps", "2",
                 "--json", "-q"])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    for model in ("before", "after"):
        v = r[model]["verification"]
        assert 0 <= v["tar_forgotten"] <= 1 and 0 <= v["tar_retained"] <= 1 and v["forgotten_pairs"] == 15
        assert 0 <= r[model]["mia_efficacy"] <= 1
    assert 0 <= r["after_relearning"]["acc_f"] <= 1 and "retrained" not in r
    assert (ws / "workspace.json").read_bytes() == before  # it ran on copies


def test_bench_trains_its_base_model_from_a_folder(tiny_trained, tmp_path, capsys):
    data, _ = tiny_trained
    out = tmp_path / "bench"
    argv = ["bench", "forgetting", "--data", str(data), "--epochs", "1", "--protocol", "few-shot",
            "--methods", "gs-lora", "--out", str(out), "--json", "-q"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert (out / "base" / "workspace.json").is_file() and first["people"] == 6
    version = json.loads((out / "base" / "workspace.json").read_text())["model"]["version"]
    assert main(argv) == 0  # the base model is reused, not retrained
    assert json.loads((out / "base" / "workspace.json").read_text())["model"]["version"] == version
