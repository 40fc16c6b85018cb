"""`facerec keys`: keys are shown once, stored only as hashes, scoped, listed and revoked."""

import json

from facerec.server.apikeys import KEYS_FILE, check_key, read_keys
from facerec.cli.main import main


def test_keys_are_stored_hashed_and_can_be_revoked(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["keys", "add", "app", "-w", str(ws), "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    assert main(["keys", "add", "viewer", "--read-only", "-w", str(ws), "--json"]) == 0
    viewer = json.loads(capsys.readouterr().out)["key"]
    stored = (ws / KEYS_FILE).read_text()
    assert key not in stored and key.split("_", 2)[2] not in stored  # only the hash is kept
    assert (ws / KEYS_FILE).stat().st_mode & 0o077 == 0  # readable by the owner only
    assert check_key(read_keys(ws), key)["scope"] == "write"
    assert check_key(read_keys(ws), viewer)["scope"] == "read"
    assert check_key(read_keys(ws), key[:-1] + ("A" if key[-1] != "A" else "B")) is None

    assert main(["keys", "add", "app", "-w", str(ws)]) == 2  # names are unique
    assert "exists" in capsys.readouterr().err
    assert main(["keys", "list", "-w", str(ws), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["keys"]
    assert [k["name"] for k in listed] == ["app", "viewer"] and all("sha256" not in k for k in listed)

    assert main(["keys", "revoke", "app", "-w", str(ws)]) == 0
    assert check_key(read_keys(ws), key) is None and check_key(read_keys(ws), viewer) is not None
    assert main(["keys", "revoke", "app", "-w", str(ws)]) == 2
    assert main(["keys", "add", "bad name", "-w", str(ws)]) == 2


def test_a_damaged_keys_file_is_one_line_not_a_traceback(tmp_path, capsys):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / KEYS_FILE).write_text("{not json")
    assert main(["keys", "list", "-w", str(ws)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreadable" in err
