"""`facerec forget`: unlearns, erases everywhere, survives failures, keeps a name-free ledger."""

import json
import shutil

import numpy as np
import pytest

import forgetting.request as request_module
from facerec.cli.main import main
from forgetting.gslora import GSLoRAConfig
from forgetting.request import forget_people

FAST = GSLoRAConfig(steps=40, batch_size=8)


@pytest.fixture
def enrolled(tiny_trained, tmp_path):
    """A copy of the tiny workspace with everyone's training images enrolled (crops + gallery)."""
    data, ws_src = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(ws_src, ws)
    assert main(["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    return data, ws


def _manifest(ws):
    return json.loads((ws / "workspace.json").read_text())


def _files_mentioning(root, text: bytes):
    return [p for p in root.rglob("*") if p.is_file() and text in p.read_bytes()] + \
           [p for p in root.rglob("*") if text.decode() in p.name]


def _accuracy_on(ws, data, files_by_person):
    """Top-1 of the workspace's current model on the given files (person -> relative paths)."""
    import numpy as np

    from facerec.data.folder import read_image
    from facerec.training.trainer import top1_accuracy
    from facerec.workspace.workspace import Workspace

    rows = {f"synth-{i:04d}": i for i in range(6)}
    pairs = [(p, f) for p, files in files_by_person.items() for f in files]
    images = np.stack([read_image(data / f) for _, f in pairs])
    return top1_accuracy(Workspace(ws).load_model(), images, np.array([rows[p] for p, _ in pairs]), "cpu")


def test_forget_drives_acc_f_to_zero_while_acc_r_holds(enrolled):
    data, ws = enrolled
    train = _manifest(ws)["split"]["train"]
    forget = {p: train[p] for p in ("synth-0001", "synth-0004")}
    retain = {p: train[p] for p in train if p not in forget}
    # the tiny model is weak on held-out images, so this measures what it learnt: its training images
    f_before, r_before = _accuracy_on(ws, data, forget), _accuracy_on(ws, data, retain)
    assert f_before >= 0.6  # measured 0.75 (6 of 8)
    report = forget_people(ws, list(forget), config=FAST, show_progress=False)
    assert _accuracy_on(ws, data, forget) <= 0.125  # no longer picked (all head rows present, no margin)
    assert _accuracy_on(ws, data, retain) >= r_before - 0.15
    assert report["acc_f"] <= report["acc_f_before"]  # the held-out numbers the report gives
    assert len(report["group_norms"]) == 2 and 0 < report["trainable_ratio"] < 0.2
    assert report["model_version"] != report["model_version_before"]
    assert _manifest(ws)["model"]["version"] == report["model_version"]


def test_after_forget_nothing_of_the_person_is_left_in_the_workspace(enrolled, capsys):
    data, ws = enrolled
    manifest = _manifest(ws)
    manifest["data"]["skipped_unreadable"] = ["synth-0002/broken.png"]  # as training records unreadable files
    (ws / "workspace.json").write_text(json.dumps(manifest))
    assert main(["forget", "synth-0002", "-w", str(ws), "--steps", "20", "-q", "--json"]) == 0
    report = json.loads(capsys.readouterr().out, parse_constant=_refuse)  # strict JSON: no NaN
    assert report["removed"]["crop_folders"] == 1 and report["acc_o"] is None  # no earlier task
    assert not _files_mentioning(ws, b"synth-0002")  # no vector metadata, crop, split entry or name
    manifest = _manifest(ws)
    assert manifest["identities"][2] is None and len(manifest["identities"]) == 6  # the head row stays
    (entry,) = manifest["erasure"]["ledger"]
    assert len(entry["people"]) == 1 and len(entry["people"][0]) == 32  # a keyed hash, not the name
    assert "pending" not in manifest["erasure"]
    assert main(["people", "-w", str(ws), "--json"]) == 0
    assert "synth-0002" not in json.loads(capsys.readouterr().out)["people"]
    assert main(["forget", "--ledger", "-w", str(ws), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ledger"][0]["request"] == report["request"]


def test_an_unknown_name_changes_nothing(enrolled, capsys):
    data, ws = enrolled
    before = (ws / "workspace.json").read_bytes()
    assert main(["forget", "synth-0001", "nobody", "-w", str(ws), "-q"]) == 2
    err = capsys.readouterr().err
    assert "nobody" in err and "nothing was changed" in err and len(err.strip().splitlines()) == 1
    assert (ws / "workspace.json").read_bytes() == before and (ws / "crops" / "synth-0001").is_dir()


def test_a_failure_before_the_commit_leaves_the_previous_version_and_a_rerun_completes(enrolled):
    data, ws = enrolled
    before = _manifest(ws)
    with pytest.raises(RuntimeError, match="injected"):
        forget_people(ws, ["synth-0003"], config=FAST, show_progress=False, fail_before_commit=True)
    after = _manifest(ws)
    assert after == before and (ws / "crops" / "synth-0003").is_dir()
    assert main(["recognize", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    report = forget_people(ws, ["synth-0003"], config=FAST, show_progress=False)
    assert report["model_version_before"] == before["model"]["version"]
    assert not (ws / "crops" / "synth-0003").exists() and not (ws / "gallery.staging").exists()
    assert len(list((ws / "models").glob("*.safetensors"))) == 1  # the old weights are gone too


def _forget_killed_after_commit(monkeypatch, ws, names):
    """Run a forget that dies in the clean-up right after its commit (the 2nd complete_pending call)."""
    calls = []
    real = request_module.complete_pending

    def dies_after_commit(workspace):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(workspace)

    monkeypatch.setattr(request_module, "complete_pending", dies_after_commit)
    with pytest.raises(KeyboardInterrupt):
        forget_people(ws, names, config=FAST, show_progress=False)
    monkeypatch.undo()


def test_a_kill_after_the_commit_is_finished_by_the_next_command(enrolled, monkeypatch):
    data, ws = enrolled
    _forget_killed_after_commit(monkeypatch, ws, ["synth-0005"])
    manifest = _manifest(ws)
    assert manifest["erasure"]["pending"] and (ws / "crops" / "synth-0005").is_dir()  # committed, not cleaned
    # any later command that opens the gallery finishes the job before using it
    assert main(["recognize", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    assert "pending" not in _manifest(ws)["erasure"]
    assert not _files_mentioning(ws, b"synth-0005")


def test_continual_requests_keep_earlier_people_forgotten(enrolled):
    data, ws = enrolled
    first = forget_people(ws, ["synth-0000"], config=FAST, show_progress=False)
    second = forget_people(ws, ["synth-0005"], config=FAST, show_progress=False)
    assert second["model_version_before"] == first["model_version"]
    assert second["images"]["earlier_forgotten_test"] == 2 and second["acc_o"] <= 0.5
    ledger = _manifest(ws)["erasure"]["ledger"]
    assert [e["model_version_after"] for e in ledger] == [first["model_version"], second["model_version"]]


def test_an_interrupted_gallery_only_forget_is_finished_by_a_reader(enrolled, monkeypatch, capsys):
    data, ws = enrolled
    photo = sorted((data / "synth-0003").iterdir())[0]
    assert main(["enroll", "visitor", str(photo), "--aligned", "-w", str(ws), "-q"]) == 0  # not in the model
    _forget_killed_after_commit(monkeypatch, ws, ["visitor"])
    capsys.readouterr()
    assert main(["people", "-w", str(ws), "--json"]) == 0  # a read-only command finishes the erasure first
    assert "visitor" not in json.loads(capsys.readouterr().out)["people"]
    assert not _files_mentioning(ws, b"visitor")


def test_retraining_keeps_the_forget_ledger(enrolled):
    data, ws = enrolled
    forget_people(ws, ["synth-0001"], config=FAST, show_progress=False)
    assert main(["train", str(data), "-w", str(ws), "--model", "vit-face-test", "--epochs", "1", "-q"]) == 0
    record = _manifest(ws)["erasure"]
    assert len(record["ledger"]) == 1 and all(e["row"] is None for e in record["forgotten"])


@pytest.fixture(scope="module")
def tuned_gallery(tiny_trained, tmp_path_factory):
    """The shipped face model briefly fine-tuned on the 6 synthetic people, their training images
    enrolled and the threshold calibrated at FAR 1e-2: a model whose embeddings mean something
    (the tiny test model's are nearly collinear, so its gallery check says nothing)."""
    data, _ = tiny_trained
    ws = tmp_path_factory.mktemp("tuned") / "ws"
    assert main(["train", str(data), "-w", str(ws), "--epochs", "10", "-q"]) == 0
    assert main(["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    assert main(["calibrate", "--far", "1e-2", "-w", str(ws), "-q"]) == 0
    return data, ws


def _best_scores(ws, photos, exclude):
    """Each photo's best cosine to the workspace gallery's vectors of anyone but ``exclude``."""
    from facerec.recognition.pipeline import FacePipeline
    from facerec.workspace.workspace import Workspace
    from gallery import Gallery

    pipe = FacePipeline(Workspace(ws), detector="aligned")
    gallery = Gallery.open(ws / "gallery")
    try:
        rows = gallery.search(pipe.embed(photos), k=len(gallery))
    finally:
        gallery.close()
    return [max(m.score for m in row if m.identity not in exclude) for row in rows]


@pytest.fixture(scope="module")
def stranger_photos(tmp_path_factory):
    from facerec.data.folder import list_identity_files, read_dataset_image
    from facerec.data.synthetic import generate_dataset

    root = generate_dataset(tmp_path_factory.mktemp("strangers"), identities=4, images_per_identity=3, seed=99)
    return [read_dataset_image(root, f) for files in list_identity_files(root).values() for f in files]


@pytest.mark.parametrize("method", ["gs-lora", "gs-lora-calibrated", "gs-lora-paper"])
def test_forgotten_faces_end_where_strangers_are(tuned_gallery, stranger_photos, tmp_path, method, capsys):
    """After the forget, the forgotten people's held-out photos are searched against the remaining
    gallery beside photos of 4 people nobody saw. With the default objective (and the calibrated
    one) the forgotten faces' best matches are no closer than the strangers' (the paper's
    objective is run beside it, and pulls them in, as measured on LFW-100 in docs/BENCHMARKS.md)."""
    from facerec.data.folder import read_image

    data, source = tuned_gallery
    ws = tmp_path / "ws"
    shutil.copytree(source, ws)
    people = ["synth-0001", "synth-0004"]
    test = _manifest(ws)["split"]["test"]
    photos = [read_image(data / f) for p in people for f in test[p]]
    report = forget_people(ws, people, method=method, config=GSLoRAConfig(steps=60, batch_size=8),
                           show_progress=False)
    forgotten, strangers = np.mean(_best_scores(ws, photos, people)), np.mean(_best_scores(ws, stranger_photos, []))
    assert report["acc_f"] <= 0.25
    if method != "gs-lora-paper":  # measured 0.529 against 0.607 (calibrated: 0.456 against 0.535)
        assert forgotten <= strangers + 0.05
    else:  # measured 0.853 against 0.701 on the pure-ViT model, 0.519 against 0.451 on the hybrid:
        assert forgotten >= strangers + 0.03  # the bounded CE ascent moves them into the others


def _refuse(constant: str):
    raise ValueError(f"--json printed {constant}, which is not JSON")
