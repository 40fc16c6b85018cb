"""Fine-tuning a face model file other than the shipped one (`train --init-from`): the workspace
records the file, and `forget --method retrain` (the retrained reference) starts from it again."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from facerec.cli.main import main
from facerec.recognition.pipeline import embed_images
from facerec.workspace.workspace import Workspace, weights_version


def _model_file(folder, ws) -> tuple:
    """The tiny trained workspace's model as a model file in the shipped model's format."""
    model = Workspace(ws).load_model()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    folder.mkdir()
    path = folder / "model.safetensors"
    save_file(state, str(path))
    record = {"name": "vit-face-test", "version": weights_version(state), "config": model.config.to_dict(),
              "num_classes": model.num_classes}
    path.with_suffix(".json").write_text(json.dumps(record))
    return path, record, model


def test_train_from_a_model_file_and_retrain_from_it_again(tmp_path, tiny_trained, capsys):
    from facerec.data.synthetic import generate_dataset

    path, record, source = _model_file(tmp_path / "backbone", tiny_trained[1])
    data = generate_dataset(tmp_path / "data", identities=3, images_per_identity=4, seed=3)
    ws = tmp_path / "ws"
    assert main(["train", str(data), "-w", str(ws), "--init-from", str(path), "--epochs", "1", "--batch-size", "4",
                 "--test-per-identity", "1", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["initialised_from"] == record["version"] and report["model"] == "vit-face-test"
    training = Workspace(ws).manifest()["training"]
    assert training["initialised_from_file"] == str(path.resolve())
    tuned = Workspace(ws).load_model()
    crops = torch.randint(0, 255, (6, 112, 112, 3), dtype=torch.uint8).numpy()
    before = embed_images(source, crops, torch.device("cpu"))
    after = embed_images(tuned, crops, torch.device("cpu"))
    assert float((before * after).sum(1).mean()) > 0.8  # one low-rate epoch from the file's backbone, not from scratch

    person = Workspace(ws).manifest()["identities"][0]
    assert main(["forget", person, "-w", str(ws), "--method", "retrain", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["forgotten"] == 1

    path.unlink()  # the reference's starting point is gone: retrain says so instead of starting elsewhere
    other = Workspace(ws).manifest()["identities"][1]
    assert main(["forget", other, "-w", str(ws), "--method", "retrain", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a face model file" in err and len(err.splitlines()) == 1


HUGE = json.dumps({"name": "vit-face-test", "version": "0" * 16, "num_classes": 3,
                   "config": {"img_size": 112, "patch_size": 16, "width": 4_000_000, "depth": 64, "num_heads": 4,
                              "mlp_ratio": 4.0, "qkv_bias": True, "embedding_dim": 256, "dropout": 0.0,
                              "drop_path": 0.0, "stem": "conv"}}).encode()  # ~10^16 parameters if it were built


@pytest.mark.parametrize("content", [None, b"not json", b"{}", HUGE])
def test_a_bad_model_file_is_one_line_and_exit_2(tmp_path, content, capsys):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\0" * 16)
    if content is not None:
        path.with_suffix(".json").write_bytes(content)
    assert main(["train", str(tmp_path), "-w", str(tmp_path / "ws"), "--init-from", str(path), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model" in err
    assert not (tmp_path / "ws").exists()
