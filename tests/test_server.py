"""`facerec serve`: the real server in a subprocess on a free localhost port, driven over HTTP.

One server (on a copy of the tiny trained workspace, haar detector, 1 MB upload and 2 MP image caps) serves the
module; each test uses people the others leave alone.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

requests = pytest.importorskip("requests")

T1 = Path(importlib.util.find_spec("insightface").origin).parent / "data" / "images" / "t1.jpg"  # ships with it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_trained, tmp_path_factory):
    from facerec.server.apikeys import add_key

    data, source = tiny_trained
    ws = tmp_path_factory.mktemp("served") / "ws"
    shutil.copytree(source, ws)
    key, _ = add_key(ws, "tests")
    reader, _ = add_key(ws, "reader", scope="read")
    port = _free_port()
    log = open(ws.parent / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "facerec", "serve", "-w", str(ws), "--port", str(port),
                             "--max-upload-mb", "1", "--max-megapixels", "2", "-q"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            requests.get(url + "/health", timeout=2)
            break
        except requests.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
    yield {"url": url, "ws": ws, "data": data, "key": {"X-API-Key": key}, "reader": {"X-API-Key": reader}}
    proc.terminate()
    proc.wait(timeout=30)
    log.seek(0)
    assert "Traceback" not in log.read()  # no request, good or bad, was a bug


def _files(data, person, part, ws):
    split = json.loads((ws / "workspace.json").read_text())["split"][part][person]
    return [data / f for f in split]


def _upload(paths, field="images"):
    return [(field, (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]


def _job(s, job_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{s['url']}/jobs/{job_id}", headers=s["key"], timeout=10).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_enroll_recognize_verify_delete_and_forget(server):
    s, url = server, server["url"]
    ws, data = s["ws"], s["data"]
    for person in ("synth-0001", "synth-0002"):
        r = requests.post(f"{url}/people/{person}/images", headers=s["key"], data={"aligned": "true"},
                          files=_upload(_files(data, person, "train", ws)))
        assert r.status_code == 200, r.text
        assert r.json()["enrolled_images"] == len(_files(data, person, "train", ws))
    people = requests.get(f"{url}/people", headers=s["reader"]).json()["people"]
    assert set(people) >= {"synth-0001", "synth-0002"}

    # a group photo: every face found gets a box, an identity (or unknown) and a score
    r = requests.post(f"{url}/recognize", headers=s["key"], files=_upload([T1]), data={"top_k": "2"})
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert result["image"] == "t1.jpg" and result["status"] == "ok" and len(result["faces"]) >= 4
    for face in result["faces"]:
        assert len(face["box"]) == 4 and isinstance(face["score"], float) and len(face["candidates"]) == 2
    # an enrolled photo is found again (the tiny model is too weak to ask more of it)
    enrolled = _files(data, "synth-0001", "train", ws)[:2]
    r = requests.post(f"{url}/recognize", headers=s["reader"], data={"aligned": "true"}, files=_upload(enrolled))
    faces = [f for res in r.json()["results"] for f in res["faces"]]
    assert [f["identity"] for f in faces] == ["synth-0001"] * 2 and min(f["score"] for f in faces) > 0.999

    one, two = enrolled[0], _files(data, "synth-0002", "train", ws)[0]
    same = requests.post(f"{url}/verify", headers=s["key"], data={"aligned": "true"},
                         files=_upload([one], "image_a") + _upload([one], "image_b")).json()
    other = requests.post(f"{url}/verify", headers=s["key"], data={"aligned": "true"},
                          files=_upload([one], "image_a") + _upload([two], "image_b")).json()
    assert same["same"] and same["score"] > 0.999 > other["score"]

    r = requests.delete(f"{url}/people/synth-0002", headers=s["key"])
    assert r.status_code == 200 and r.json()["vectors_removed"] > 0 and r.json()["still_in_model"]
    assert not (ws / "crops" / "synth-0002").exists()
    assert requests.delete(f"{url}/people/synth-0002", headers=s["key"]).status_code == 404

    r = requests.post(f"{url}/forget", headers=s["key"], json={"names": ["synth-0001"], "steps": 20})
    assert r.status_code == 202, r.text
    job = _job(s, r.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["removed"]["crop_folders"] == 1 and job["result"]["model_version"] != job["result"]["model_version_before"]
    assert "synth-0001" not in requests.get(f"{url}/people", headers=s["key"]).json()["people"]
    assert not (ws / "crops" / "synth-0001").exists()
    manifest = json.loads((ws / "workspace.json").read_text())
    assert manifest["identities"][1] is None  # the head row is erased, as by the CLI
    assert len(requests.get(f"{url}/ledger", headers=s["key"]).json()["ledger"]) == 1
    assert requests.get(f"{url}/health").json()["model_version"] == manifest["model"]["version"]  # reloaded


def test_keys_are_required_checked_and_scoped(server):
    s, url = server, server["url"]
    assert requests.get(f"{url}/people").status_code == 401
    assert requests.get(f"{url}/people", headers={"X-API-Key": "frk_00000000_nope"}).status_code == 403
    assert requests.get(f"{url}/people", headers={"Authorization": "Bearer " + s["key"]["X-API-Key"]}).status_code == 200
    r = requests.delete(f"{url}/people/synth-0005", headers=s["reader"])
    assert r.status_code == 403 and "only read" in r.json()["error"]
    assert requests.post(f"{url}/forget", json={"names": ["synth-0005"]}).status_code == 401
    assert requests.get(f"{url}/health").status_code == 200  # liveness needs no key
    assert "/recognize" in requests.get(f"{url}/openapi.json").json()["paths"]


def test_a_damaged_key_file_is_a_one_line_409_not_a_500(server):
    s, url = server, server["url"]
    keys = s["ws"] / "api-keys.json"
    good = keys.read_bytes()
    try:
        for damaged in (b'{"format": 1, "keys": [3]}', b'{"format": 1, "keys": [{"name": "x", "sha256": 5}]}', b"[]"):
            keys.write_bytes(damaged)
            r = requests.get(f"{url}/people", headers=s["key"])
            assert r.status_code == 409 and "api-keys.json" in r.json()["error"] and "\n" not in r.json()["error"]
    finally:
        keys.write_bytes(good)
        os.utime(keys)
    assert requests.get(f"{url}/people", headers=s["key"]).status_code == 200


def test_bad_requests_are_4xx_with_one_line_reasons(server, tmp_path):
    s, url = server, server["url"]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))
    r = requests.post(f"{url}/people/synth-0005/images", headers=s["key"], files=_upload([corrupt]))
    assert r.status_code == 422 and r.json()["error"].startswith("corrupt.jpg: ") and "\n" not in r.json()["error"]
    assert "synth-0005" not in requests.get(f"{url}/people", headers=s["key"]).json()["people"]  # nothing written

    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(1_200_000))
    r = requests.post(f"{url}/recognize", headers=s["key"], files=_upload([big]))
    assert r.status_code == 413 and "limit" in r.json()["error"]
    import cv2

    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.zeros((1500, 2000, 3), np.uint8))  # 3 MP in a few kB: refused from its header
    r = requests.post(f"{url}/recognize", headers=s["key"], files=_upload([huge]))
    assert r.status_code == 422 and "MP limit" in r.json()["error"]
    chunked = requests.post(f"{url}/recognize", headers={**s["key"], "Content-Type": "application/octet-stream"},
                            data=iter([b"x" * 100_000] * 12))  # no Content-Length: counted as it arrives
    assert chunked.status_code == 413
    prepared = requests.Request("POST", f"{url}/recognize", files=_upload([T1])).prepare()
    small = requests.post(f"{url}/recognize", headers={**s["key"], "Content-Type": prepared.headers["Content-Type"]},
                          data=iter([prepared.body[i:i + 65536] for i in range(0, len(prepared.body), 65536)]))
    assert small.status_code == 200 and small.json()["results"][0]["image"] == "t1.jpg"  # chunked, under the cap

    assert requests.post(f"{url}/people/bad name!/images", headers=s["key"], files=_upload([corrupt])).status_code in (400, 422)
    r = requests.post(f"{url}/people/synth-0005/images", headers=s["key"], data={"multi_face": "first"},
                      files=_upload([T1]))
    assert r.status_code == 400 and "multi-face rule" in r.json()["error"]
    r = requests.post(f"{url}/recognize", headers=s["key"], data={"top_k": "0"}, files=_upload([T1]))
    assert r.status_code == 422 and "top_k" in r.json()["error"]
    r = requests.post(f"{url}/forget", headers=s["key"], json={"names": ["nobody"]})
    assert r.status_code == 404 and "nobody" in r.json()["error"]


def test_concurrent_enrolls_lose_nothing(server):
    s, url = server, server["url"]
    ws, data = s["ws"], s["data"]
    work = [(p, f) for p in ("synth-0003", "synth-0004") for f in _files(data, p, "train", ws)]
    codes = []

    def enroll(person, path):
        r = requests.post(f"{url}/people/{person}/images", headers=s["key"], data={"aligned": "true"},
                          files=_upload([path]), timeout=120)
        codes.append(r.status_code)

    threads = [threading.Thread(target=enroll, args=item) for item in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * len(work)
    people = requests.get(f"{url}/people", headers=s["key"]).json()["people"]
    assert people["synth-0003"] == len(_files(data, "synth-0003", "train", ws))
    assert people["synth-0004"] == len(_files(data, "synth-0004", "train", ws))
    r = requests.post(f"{url}/calibrate", headers=s["key"], json={"far": 0.1})
    assert r.status_code == 200 and r.json()["impostor_pairs"] > 0
    assert requests.post(f"{url}/recognize", headers=s["key"], data={"aligned": "true"},
                         files=_upload(_files(data, "synth-0003", "test", ws))).json()["calibrated"]
