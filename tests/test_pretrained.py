"""The shipped model: it loads, embeds and matches its recorded hash; a workspace with no model of
its own uses it; `facerec train` fine-tunes from it by default."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from facerec import pretrained
from facerec.cli.main import main

pytestmark = pytest.mark.skipif(not pretrained.available(), reason="no shipped model in facerec/pretrained/")


def _crops(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, 112, 112, 3), np.uint8)


def test_shipped_weights_load_embed_and_match_their_record():
    from safetensors.torch import load_file

    from facerec.recognition.pipeline import embed_images
    from facerec.workspace.workspace import weights_version

    info = pretrained.record()
    assert pretrained.WEIGHTS.stat().st_size <= 25 * 2 ** 20
    assert weights_version(load_file(pretrained.WEIGHTS)) == info["version"]
    assert set(info["excluded_people"]).isdisjoint(info["identities"])  # held-out people have no head row
    model = pretrained.load_model()
    emb = embed_images(model, _crops(5), torch.device("cpu"))
    assert emb.shape == (5, model.embedding_dim) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert model.num_classes == len(info["identities"])


def test_a_damaged_shipped_file_is_refused(tmp_path, monkeypatch):
    from facerec.core.errors import WorkspaceError

    copy = tmp_path / "face-vit.safetensors"
    data = bytearray(pretrained.WEIGHTS.read_bytes())
    data[-8:] = b"\x01" * 8  # flip the last weights' bytes
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "WEIGHTS", copy)
    with pytest.raises(WorkspaceError, match="damaged"):
        pretrained.load_model()


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return str(path)


def test_a_fresh_workspace_enrolls_and_recognizes_with_the_shipped_model(tmp_path, capsys):
    crops = _crops(3, seed=1)
    a, b, c = (_write(tmp_path / f"{i}.png", crop) for i, crop in enumerate(crops))
    ws = tmp_path / "new"
    assert main(["verify", a, a, "--aligned", "-w", str(ws), "--json", "-q"]) == 0  # readers need no workspace...
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(1.0, abs=1e-5)
    assert not ws.exists()  # ... and create none
    assert main(["enroll", "alice", a, "--aligned", "-w", str(ws), "-q"]) == 0
    manifest = json.loads((ws / "workspace.json").read_text())
    assert manifest["model"]["version"] == pretrained.record()["version"] and manifest["data"]["source"] == "shipped model"
    capsys.readouterr()
    assert main(["recognize", a, "--aligned", "-w", str(ws), "--json", "-q"]) == 0
    face = json.loads(capsys.readouterr().out)["results"][0]["faces"][0]
    assert face["identity"] == "alice" and face["score"] == pytest.approx(1.0, abs=1e-4)


def test_train_fine_tunes_the_shipped_model_and_keeps_its_embedding(tmp_path, capsys):
    from facerec.data.synthetic import generate_dataset
    from facerec.recognition.pipeline import embed_images
    from facerec.workspace.workspace import Workspace

    data = generate_dataset(tmp_path / "data", identities=3, images_per_identity=4, seed=0)
    ws = tmp_path / "ws"
    assert main(["train", str(data), "-w", str(ws), "--epochs", "1", "--batch-size", "4", "--test-per-identity", "1",
                 "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    info = pretrained.record()
    assert report["initialised_from"] == info["version"] and report["model"] == info["name"]
    tuned = Workspace(ws).load_model()
    assert tuned.num_classes == 3 and tuned.config.to_dict() == info["config"]
    crops = _crops(8, seed=2)
    before = embed_images(pretrained.load_model(), crops, torch.device("cpu"))
    after = embed_images(tuned, crops, torch.device("cpu"))
    assert float((before * after).sum(1).mean()) > 0.8  # one low-rate epoch moves the embedding a little, not away
