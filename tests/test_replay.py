"""The workspace's replay buffer: kept by training, enough to forget without the data, erased with the person."""

import json
import shutil

import numpy as np

from facerec.cli.main import main
from facerec.workspace.replay import choose_shots, read_replay
from forgetting.gslora import GSLoRAConfig
from forgetting.request import forget_people

FAST = GSLoRAConfig(steps=30, batch_size=8)


def test_choose_shots_takes_k_per_person_seeded():
    labels = np.array([0] * 5 + [1] * 2 + [2] * 4)
    picked = choose_shots(labels, 3, seed=0)
    assert [int((labels[picked] == c).sum()) for c in range(3)] == [3, 2, 3]
    assert np.array_equal(picked, choose_shots(labels, 3, seed=0))


def test_training_keeps_a_replay_buffer_and_forget_works_without_the_data_root(tiny_trained, tmp_path, capsys):
    data_src, ws_src = tiny_trained
    manifest = json.loads((ws_src / "workspace.json").read_text())
    assert manifest["replay"]["shots"] == 4 and manifest["replay"]["images"] == 24  # 4 training crops x 6
    assert len(read_replay(ws_src, "synth-0002")) == 4
    # a deployment that kept the workspace but not the dataset
    data, ws = tmp_path / "data", tmp_path / "ws"
    shutil.copytree(data_src, data)
    shutil.copytree(ws_src, ws)
    m = json.loads((ws / "workspace.json").read_text())
    m["data"]["root"] = str(data)
    (ws / "workspace.json").write_text(json.dumps(m))
    shutil.rmtree(data)
    before = read_replay(ws, "synth-0003")
    report = forget_people(ws, ["synth-0003"], method="gs-lora++", shots=4, config=FAST, show_progress=False)
    assert report["images"]["source"] == "workspace"
    assert report["images"]["forget"] == 4 and report["images"]["replay"] == 20  # replay crops only
    assert report["acc_f"] != report["acc_f"]  # no held-out images without the data: n/a (nan), not invented
    assert not (ws / "replay" / "synth-0003").exists() and report["removed"]["replay_folders"] == 1
    assert len(read_replay(ws, "synth-0002")) == 4
    # the person is gone from the model's point of view: their former crops no longer pick their row
    from facerec.training.trainer import top1_accuracy
    from facerec.workspace.workspace import Workspace

    acc = top1_accuracy(Workspace(ws).load_model(), np.stack(before), np.full(len(before), 3), "cpu")
    assert acc <= 0.25
    assert main(["forget", "synth-0003", "-w", str(ws), "-q"]) == 2  # already forgotten
    capsys.readouterr()


def test_train_refuses_negative_replay_shots(tiny_trained, tmp_path, capsys):
    data, _ = tiny_trained
    assert main(["train", str(data), "-w", str(tmp_path / "ws"), "--replay-shots", "-1", "-q"]) == 2
    assert "--replay-shots" in capsys.readouterr().err
