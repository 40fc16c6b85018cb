"""The command line: bad input is one line on stderr and a non-zero exit, never a traceback."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from facerec.cli.main import main
from facerec.data.synthetic import generate_dataset

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, env=None, cwd=None):
    """Run the real console entry point in a subprocess, as a user would."""
    full_env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "facerec", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=300)


def _assert_one_line_error(proc, pattern):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert pattern in lines[0]


def test_missing_data_directory(tmp_path):
    _assert_one_line_error(_run("train", str(tmp_path / "nope"), "-w", str(tmp_path / "w"), "-q"), "does not exist")


def test_empty_data_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_one_line_error(_run("train", str(tmp_path / "empty"), "-w", str(tmp_path / "w"), "-q"), "holds no images")


def test_unknown_model_name(tmp_path):
    _assert_one_line_error(_run("train", str(tmp_path), "--model", "nope", "-w", str(tmp_path / "w"), "-q"),
                           "unknown model 'nope'")


def test_person_with_too_few_images(tmp_path):
    generate_dataset(tmp_path / "data", identities=2, images_per_identity=2, seed=0)
    _assert_one_line_error(_run("train", str(tmp_path / "data"), "-w", str(tmp_path / "w"), "-q"), "--min-images 3")


def test_workspace_from_a_newer_format(tmp_path):
    ws = tmp_path / "w"
    ws.mkdir()
    (ws / "workspace.json").write_text(json.dumps({"format_version": 999}))
    generate_dataset(tmp_path / "data", identities=2, images_per_identity=3, seed=0)
    _assert_one_line_error(_run("train", str(tmp_path / "data"), "-w", str(ws), "-q"), "newer")


def test_models_lists_the_registry_as_json(capsys):
    assert main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert {"vit-face-cpu", "face-transformer"} <= set(models)


def test_train_json_report_and_workspace(tmp_path, capsys):
    data = generate_dataset(tmp_path / "data", identities=4, images_per_identity=5, seed=0)
    (data / "synth-0000" / "corrupt.png").write_bytes(b"\x89PNG broken")
    ws = tmp_path / "ws"
    code = main(["train", str(data), "-w", str(ws), "--model", "vit-face-test", "--epochs", "2",
                 "--batch-size", "8", "--json", "-q"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert {"top1", "seconds", "identities", "images", "model"} <= set(report)
    assert report["identities"] == 4 and report["images"] == 20 and report["model"] == "vit-face-test"
    assert report["skipped_unreadable"] == 1 and 0.0 <= report["top1"] <= 1.0
    manifest = json.loads((ws / "workspace.json").read_text())
    assert manifest["identities"] == [f"synth-{i:04d}" for i in range(4)]
    assert (ws / manifest["model"]["weights"]).is_file() and not (ws / "train-state.pt").exists()
    assert sum(len(v) for v in manifest["split"]["test"].values()) == report["test_images"] == 8


def test_demo_json_on_synthetic_identities(tmp_path, capsys):
    ws = tmp_path / "ws"
    code = main(["demo", "-w", str(ws), "--identities", "4", "--images-per-identity", "4", "--model", "vit-face-test",
                 "--epochs", "1", "--batch-size", "4", "--json", "-q"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["source"] == "synthetic"
    assert report["data"]["identities"] == 4 and report["data"]["images"] == 16
    assert {"top1", "seconds"} <= set(report["train"])
    assert {"rank1", "unknown_rate"} <= set(report["recognize"]) and report["recognize"]["images"] == 8
    forget = report["forget"]
    assert forget["forgotten"] == 1 and {"acc_f", "acc_f_before", "acc_r", "acc_r_before", "h_mean", "h_ceiling",
                                         "seconds"} <= set(forget)
    # the forgotten person's images are erased from the demo's data inside the workspace too
    assert len(list((ws / "synthetic-data").glob("*/*.png"))) == 12


def test_the_demo_never_resets_a_workspace_it_did_not_make(tiny_trained, tmp_path, capsys):
    data, source = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(source, ws)
    assert main(["enroll", "--folder", str(data), "-w", str(ws), "--aligned", "-q"]) == 0
    before = sorted(p.relative_to(ws) for p in ws.rglob("*") if p.is_file())
    capsys.readouterr()
    code = main(["demo", "-w", str(ws), "--identities", "4", "--images-per-identity", "4", "--model", "vit-face-test",
                 "--epochs", "1", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "demo did not make" in err[0]
    assert sorted(p.relative_to(ws) for p in ws.rglob("*") if p.is_file()) == before
    (ws / ".demo").write_text("")  # a marker made by hand is not the demo's
    assert main(["demo", "-w", str(ws), "--identities", "4", "--images-per-identity", "4", "--model",
                 "vit-face-test", "--epochs", "1", "-q"]) == 2
    assert sorted(p.relative_to(ws) for p in ws.rglob("*") if p.is_file() and p.name != ".demo") == before
