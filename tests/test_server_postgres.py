"""Two `facerec serve` processes on one workspace whose gallery is in PostgreSQL: a person enrolled
through one is recognised by the other without a restart, and once forgotten or removed through
one, the other stops answering with them at once."""

import json
import shutil
import subprocess
import sys
import time

import pytest

from facerec.cli.main import main

requests = pytest.importorskip("requests")


def _start(ws, port, log):
    proc = subprocess.Popen([sys.executable, "-m", "facerec", "serve", "-w", str(ws), "--port", str(port), "-q"],
                            stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
    while True:
        try:
            requests.get(url + "/health", timeout=2)
            return proc, url
        except requests.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "a server did not start"
            time.sleep(0.3)


def _names(url, key, paths) -> list[str]:
    files = [("images", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    r = requests.post(url + "/recognize", files=files, data={"aligned": "true"}, headers=key, timeout=60)
    assert r.status_code == 200, r.text
    return [face["identity"] for result in r.json()["results"] for face in result["faces"]]


def test_two_servers_share_one_gallery(tiny_trained, tmp_path, postgres, capsys):
    from facerec.server.apikeys import add_key
    from test_server import _free_port

    data, source = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(source, ws)
    assert main(["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(ws), "-q"]) == 0
    assert main(["gallery", "use", postgres.url, "-w", str(ws), "-q"]) == 0
    key = {"X-API-Key": add_key(ws, "tests")[0]}
    split = json.loads((ws / "workspace.json").read_text())["split"]
    train = {p: [data / f for f in files] for p, files in split["train"].items()}  # enrolled: exact matches
    log = open(tmp_path / "servers.log", "w+")
    servers = [_start(ws, _free_port(), log) for _ in range(2)]
    (_, a), (_, b) = servers
    try:
        photos = train["synth-0004"]
        assert _names(b, key, photos) == ["synth-0004"] * len(photos)
        r = requests.delete(f"{a}/people/synth-0004", headers=key, timeout=60)
        assert r.status_code == 200, r.text
        assert "synth-0004" not in _names(b, key, photos)  # removed through A: B no longer names them
        files = [("images", (p.name, p.read_bytes(), "application/octet-stream")) for p in photos[:1]]
        r = requests.post(f"{a}/people/synth-0004/images", files=files, data={"aligned": "true"}, headers=key,
                          timeout=60)
        assert r.status_code == 200, r.text
        assert _names(b, key, photos[:1]) == ["synth-0004"]  # enrolled through A, seen by B without a restart
        assert _names(b, key, train["synth-0002"]) == ["synth-0002"] * len(train["synth-0002"])
        job = requests.post(f"{a}/forget", json={"names": ["synth-0002"], "steps": 5}, headers=key, timeout=60).json()
        deadline = time.monotonic() + 300
        while (state := requests.get(f"{a}/jobs/{job['id']}", headers=key, timeout=10).json())["status"] not in (
                "succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert state["status"] == "succeeded", state
        assert state["result"]["database"]["relation_files"]["name_hits"] == 0
        assert "synth-0002" not in _names(b, key, train["synth-0002"])  # forgotten through A: gone from B at once
        people = requests.get(f"{b}/people", headers=key, timeout=10).json()["people"]
        assert "synth-0002" not in people and people.get("synth-0004") == 1
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)
        log.seek(0)
        assert "Traceback" not in log.read()
