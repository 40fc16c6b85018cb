"""`facerec export --onnx`: onnxruntime and insightface's model zoo load the file and give facerec's
embeddings; `--recognizer` runs such a model (facerec's or another ArcFace-layout one) in facerec."""

import json
import shutil

import numpy as np
import pytest
import torch

from facerec.cli.main import main

from conftest import LFW, requires_lfw_and_yunet, YUNET


def _export(ws, out, capsys):
    assert main(["export", "--onnx", str(out), "-w", str(ws), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _insightface_embeddings(path, crops_rgb):
    from insightface.model_zoo import get_model

    model = get_model(str(path))
    assert type(model).__name__ == "ArcFaceONNX" and (model.input_mean, model.input_std) == (127.5, 127.5)
    feats = model.get_feat([np.ascontiguousarray(c[:, :, ::-1]) for c in crops_rgb])  # it takes BGR, as cv2 reads
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def _facerec_embeddings(ws, crops):
    from facerec.recognition.pipeline import FacePipeline
    from facerec.workspace.workspace import Workspace

    return FacePipeline(Workspace(ws), detector="aligned").embed(np.stack(crops))


def test_the_export_loads_in_onnxruntime_and_insightface_with_the_same_embeddings(tiny_trained, tmp_path, capsys):
    from facerec.data.folder import list_identity_files, read_dataset_image

    data, ws = tiny_trained
    report = _export(ws, tmp_path / "face.onnx", capsys)
    assert report["check_min_cosine"] >= 0.999 and report["embedding_dim"] == 32
    crops = [read_dataset_image(data, f) for files in list_identity_files(data).values() for f in files]
    ours = _facerec_embeddings(ws, crops)
    theirs = _insightface_embeddings(tmp_path / "face.onnx", crops)
    assert np.min(np.sum(ours * theirs, axis=1)) >= 0.999

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "face.onnx")).metadata_props}
    assert meta["model_version"] == report["model_version"] and "127.5" in meta["input"]


@requires_lfw_and_yunet
def test_the_shipped_model_exported_agrees_on_50_lfw_faces(tmp_path, capsys):
    """50 LFW photos, detected and aligned with YuNet: insightface's zoo on the export against facerec."""
    from facerec.recognition.pipeline import FacePipeline
    from facerec.workspace.workspace import Workspace

    ws = tmp_path / "ws"  # no model of its own: the shipped one
    _export(ws, tmp_path / "face.onnx", capsys)
    pipe = FacePipeline(Workspace(ws), detector=f"yunet:{YUNET}")
    photos = sorted((LFW / "images").glob("*/*.jpg"))[::200]
    crops = [c for c in (pipe.read_faces(p).crops[:1] for p in photos) for c in c][:50]
    assert len(crops) == 50
    ours = pipe.embed(np.stack(crops))
    theirs = _insightface_embeddings(tmp_path / "face.onnx", crops)
    assert np.min(np.sum(ours * theirs, axis=1)) >= 0.999


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_a_model_that_normalises_inside_is_fed_raw_pixels_as_insightface_does(tiny_trained, tmp_path):
    """insightface's MXNet-born models start with Sub/Mul nodes and take raw 0-255 pixels; facerec's
    OnnxEmbedder reads the same rule from the graph, so such a model embeds as facerec's does."""
    import onnx

    from facerec.data.folder import list_identity_files, read_dataset_image
    from facerec.models.onnx import OnnxEmbedder
    from facerec.workspace.workspace import Workspace

    data, ws = tiny_trained
    model = Workspace(ws).load_model().eval()

    class RawPixels(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return self.inner.embed((x - 127.5) * (1 / 127.5))

    path = tmp_path / "raw.onnx"
    torch.onnx.export(RawPixels().eval(), (torch.rand(1, 3, 112, 112) * 255,), str(path), dynamo=False,
                      input_names=["data"], output_names=["fc1"], dynamic_axes={"data": {0: "n"}, "fc1": {0: "n"}})
    proto = onnx.load(str(path))
    for node in proto.graph.node[:8]:  # MXNet-style names, as in insightface's model zoo
        node.name = node.name.replace("/", "").replace("Sub", "_minusscalar").replace("Mul", "_mulscalar")
    onnx.save(proto, str(path))
    embedder = OnnxEmbedder(path)
    assert (embedder.mean, embedder.std) == (0.0, 1.0)
    crops = np.stack([read_dataset_image(data, f) for files in list_identity_files(data).values() for f in files[:2]])
    assert np.min(np.sum(embedder.embed(crops) * _facerec_embeddings(ws, list(crops)), axis=1)) >= 0.999
    theirs = _insightface_embeddings_raw(path, crops)
    assert np.min(np.sum(embedder.embed(crops) * theirs, axis=1)) >= 0.999


def _insightface_embeddings_raw(path, crops_rgb):
    from insightface.model_zoo import get_model

    model = get_model(str(path))
    assert (model.input_mean, model.input_std) == (0.0, 1.0)
    feats = model.get_feat([np.ascontiguousarray(c[:, :, ::-1]) for c in crops_rgb])
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def test_recognize_with_the_onnx_model_matches_the_workspace_model(tiny_trained, tmp_path, capsys):
    data, source = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(source, ws)
    _export(ws, tmp_path / "face.onnx", capsys)
    assert main(["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    capsys.readouterr()
    probes = [str(data / f) for files in json.loads((ws / "workspace.json").read_text())["split"]["test"].values()
              for f in files]

    def recognized(*extra):
        assert main(["recognize", *probes, "--aligned", "--top-k", "3", "-w", str(ws), "--json", "-q", *extra]) == 0
        out = json.loads(capsys.readouterr().out)["results"]
        return [[(c["identity"], c["score"]) for c in r["faces"][0]["candidates"]] for r in out]

    torch_results = recognized()
    onnx_results = recognized("--recognizer", str(tmp_path / "face.onnx"))  # the gallery is re-embedded for it
    assert [[n for n, _ in r] for r in onnx_results] == [[n for n, _ in r] for r in torch_results]
    assert np.allclose([[s for _, s in r] for r in onnx_results], [[s for _, s in r] for r in torch_results], atol=2e-3)
    from gallery import Gallery

    g = Gallery.open(ws / "gallery")
    assert g.model_version.startswith("onnx-")
    g.close()


def test_a_file_that_is_not_a_face_model_is_one_line(tiny_trained, tmp_path, capsys):
    data, ws = tiny_trained
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    image = next(data.glob("*/*.png"))
    assert main(["verify", str(image), str(image), "--aligned", "--recognizer", str(bad), "-w", str(ws)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an ONNX model" in err
    assert main(["forget", "synth-0001", "--recognizer", str(bad), "-w", str(tmp_path / "w")]) == 2
