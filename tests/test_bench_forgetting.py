"""`facerec bench forgetting` and `facerec eval forgetting` on the tiny workspace."""

import json
import shutil

import numpy as np

import pytest

from facerec.cli.main import main
from forgetting.bench import plan


def test_protocol_plans_follow_the_papers():
    people = [f"p{i:03d}" for i in range(100)]
    single = plan(people, "single", 0, None)
    assert [s for s, _, _ in single] == ["100-5", "100-10", "100-50", "100-90"] and len(single[3][1][0]) == 90
    (setting, tasks, shots), = plan(people, "continual", 0, None)
    assert len(tasks) == 4 and all(len(t) == 20 for t in tasks) and len({p for t in tasks for p in t}) == 80
    few = plan(people, "few-shot", 0, None)
    assert [s for s, _, _ in few][-1] == "continual, 4-shot" and {k for _, _, k in few} == {4}
    assert plan(people, "single", 0, None) == plan(people, "single", 0, None)  # seeded
    assert plan(people, "single", 1, None) != plan(people, "single", 0, None)  # another draw, other victims
    assert [s for s, _, _ in plan(people[:6], "single", 0, None, shares=(0.1, 0.05))] == ["6-1"]  # one each
    with pytest.raises(ValueError):
        plan(people[:6], "continual", 0, 2)


def test_bench_writes_table_json_and_plots(tiny_trained, tmp_path, capsys):
    from facerec.data.synthetic import generate_dataset

    data, source = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(source, ws)
    assert main(["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    assert main(["calibrate", "-w", str(ws), "-q"]) == 0
    capsys.readouterr()
    strangers = generate_dataset(tmp_path / "strangers", identities=2, images_per_identity=3, seed=99)
    out = tmp_path / "bench"
    code = main(["bench", "forgetting", "-w", str(ws), "--shares", "20", "--draws", "2", "--shots", "2",
                 "--methods", "gs-lora,finetune", "--strangers", str(strangers), "--out", str(out),
                 "--set", "steps=40", "--json", "-q"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["method"], r["draw"]) for r in report["results"]] == [("gs-lora", 0), ("finetune", 0),
                                                                       ("gs-lora", 1), ("finetune", 1)]
    task = report["results"][0]["tasks"][0]
    assert 0 <= task["unknown_strangers"] <= 1 and report["strangers"] == 6
    assert report["gslora_options"] == {"steps": 40}
    table = (out / "forgetting-single.md").read_text()
    assert "GS-LoRA settings: steps=40." in table
    assert "| gs-lora |" in table and "| finetune |" in table and "H / Acc_r / Acc_f" in table
    assert "unknown forgotten / strangers" in table
    strict = json.loads((out / "forgetting-single.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"{c} in the bench JSON"))  # RFC 8259: null, never NaN
    assert strict["format_version"] == 2
    assert (out / "forgetting-single-h.png").is_file() and (out / "forgetting-single-group-norms.png").is_file()
    assert json.loads((ws / "workspace.json").read_text())["identities"][0] is not None  # base untouched


def test_bench_refuses_an_unknown_method(tiny_trained, tmp_path, capsys):
    code = main(["bench", "forgetting", "-w", str(tiny_trained[1]), "--methods", "gs-lora,magic",
                 "--out", str(tmp_path), "-q"])
    assert code == 2 and "magic" in capsys.readouterr().err


def test_eval_forgetting_reports_beyond_the_head_against_a_retrained_reference(tiny_trained, capsys):
    data, ws = tiny_trained
    before = (ws / "workspace.json").read_bytes()
    code = main(["eval", "forgetting", "synth-0001", "-w", str(ws), "--method", "gs-lora,gs-lora-paper",
                 "--relearn-steps", "2", "--json", "-q"])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert sorted(r["results"]) == ["gs-lora", "gs-lora-paper"] and "retrained" in r
    for v in [r["before"], r["retrained"], *r["results"].values()]:
        assert 0 <= v["verification"]["tar_forgotten"] <= 1 and v["verification"]["forgotten_pairs"] == 15
        assert 0 <= v["mia_loss"]["auc"] <= 1 and 0 <= v["mia_loss"]["tpr_at_fpr_0.01"] <= 1
        assert 0 <= v["mia_efficacy"] <= 1
    for v in r["results"].values():
        assert 0 <= v["relearning"]["retained_only"] <= 1 and 0 <= v["relearning"]["with_forget_shots"] <= 1
        gap = v["gap_to_retrained"]
        assert gap["acc_f"] == round(v["acc_f"] - r["retrained"]["acc_f"], 4) and gap["mia_auc"] is not None
    assert (ws / "workspace.json").read_bytes() == before  # it ran on copies


def test_auc_is_the_probability_a_member_scores_higher():
    from forgetting.evaluate import auc

    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    assert auc(np.array([1.0]), np.array([2.0, 3.0])) == 0.0


def test_bench_trains_its_base_model_from_a_folder(tiny_trained, tmp_path, capsys):
    data, _ = tiny_trained
    out = tmp_path / "bench"
    argv = ["bench", "forgetting", "--data", str(data), "--epochs", "1", "--shares", "20", "--from-scratch",
            "--methods", "gs-lora", "--out", str(out), "--json", "-q"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert (out / "base" / "workspace.json").is_file() and first["people"] == 6
    assert (out / "base" / "gallery").is_dir() and (out / "base" / "replay").is_dir()  # enrolled, replay kept
    version = json.loads((out / "base" / "workspace.json").read_text())["model"]["version"]
    assert main(argv) == 0  # the base model is reused, not retrained
    assert json.loads((out / "base" / "workspace.json").read_text())["model"]["version"] == version


def test_bench_measures_beyond_the_head_as_gaps_to_retrain(tiny_trained, tmp_path, capsys):
    data, ws = tiny_trained
    out = tmp_path / "bench"
    code = main(["bench", "forgetting", "-w", str(ws), "--shares", "20", "--methods", "retrain,gs-lora",
                 "--beyond-head", "--out", str(out), "--json", "-q"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    retrain, gs = (r["tasks"][0] for r in report["results"])
    for task in (retrain, gs):
        assert 0 <= task["tar_forgotten"] <= 1 and 0 <= task["mia_auc"] <= 1
        assert 0 <= task["relearned_acc_f"] <= 1 and 0 <= task["relearned_acc_f_with_shots"] <= 1
    assert "gap_to_retrain" not in retrain
    assert gs["gap_to_retrain"]["mia_auc"] == round(gs["mia_auc"] - retrain["mia_auc"], 4)
    assert set(gs["gap_to_retrain"]) == {"tar_forgotten", "mia_auc", "relearned_acc_f", "relearned_acc_f_with_shots"}
    table = (out / "forgetting-single.md").read_text()
    assert "beyond the head" in table and "| gs-lora | " in table.split("beyond the head")[1]
