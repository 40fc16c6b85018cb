"""insightface .bin and MXNet .rec/.idx readers: no MXNet, no unpickling of code."""

import os
import pickle

import cv2
import numpy as np
import pytest

from facerec.data.folder import list_identity_files, load_face_folder, read_dataset_image
from facerec.data.insightface_formats import RecordFile, read_bin, write_bin, write_records
from facerec.core.errors import DataError


def _jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def test_bin_round_trip(tmp_path):
    images = [_jpeg(i) for i in range(6)]
    write_bin(tmp_path / "set.bin", images, [True, False, True])
    decoded, issame = read_bin(tmp_path / "set.bin")
    assert decoded.shape == (6, 112, 112, 3) and issame.tolist() == [True, False, True]


def test_bin_with_numpy_issame_and_python2_style_bytes(tmp_path):
    path = tmp_path / "np.bin"
    path.write_bytes(pickle.dumps(([bytearray(_jpeg(0)), bytearray(_jpeg(1))], np.array([True])), protocol=2))
    assert read_bin(path)[1].tolist() == [True]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_bin_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([_Evil()], [True])))
    with pytest.raises(DataError, match="refusing to load"):
        read_bin(path)


def test_record_file_round_trip_and_as_a_dataset(tmp_path):
    rec = tmp_path / "train.rec"
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    write_records(rec, [_jpeg(i) for i in range(9)], labels)
    records = RecordFile(rec)
    assert records.image_keys() == list(range(1, 10))  # record 0 is insightface's header
    assert records.read(4).label == 1.0
    listing = list_identity_files(rec)
    assert listing == {f"id{c:05d}": [f"id{c:05d}/{k}" for k in range(1 + 3 * c, 4 + 3 * c)] for c in range(3)}
    assert read_dataset_image(rec, "id00001/5").shape == (112, 112, 3)
    folder = load_face_folder(rec)
    assert folder.identities == ["id00000", "id00001", "id00002"] and len(folder.images) == 9
    # without the .idx the file is scanned; a damaged file is a clear error
    os.remove(tmp_path / "train.idx")
    assert RecordFile(rec).read(9).label == 2.0
    (tmp_path / "bad.rec").write_bytes(b"\0" * 16)
    with pytest.raises(DataError, match="magic"):
        RecordFile(tmp_path / "bad.rec")


def test_facerec_trains_on_a_record_file(tmp_path, capsys):
    import json

    from facerec.cli.main import main

    rec = tmp_path / "train.rec"
    write_records(rec, [_jpeg(i) for i in range(12)], [i // 4 for i in range(12)])
    code = main(["train", str(rec), "-w", str(tmp_path / "ws"), "--model", "vit-face-test", "--epochs", "1",
                 "--batch-size", "4", "--json", "-q"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identities"] == 3 and report["train_images"] == 6 and report["test_images"] == 6


def test_an_empty_image_record_is_skipped_and_counted(tmp_path):
    rec = tmp_path / "train.rec"
    write_records(rec, [_jpeg(i) for i in range(5)] + [b""], [0, 0, 0, 1, 1, 1])
    folder = load_face_folder(rec)
    assert len(folder.images) == 5 and folder.skipped == ["id00001/6"]
