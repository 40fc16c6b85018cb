"""API keys for ``facerec serve``, stored hashed in the workspace (``WORKSPACE/api-keys.json``).

A key is ``frk_<id>_<secret>``: 8 hex digits that name it in listings and logs, and 32 random
bytes (``secrets.token_urlsafe``). Only the SHA-256 of the whole key is stored, so reading the
workspace does not give anyone a key; a key is shown once, when ``facerec keys add`` creates it.
A plain hash (no salt, no slow KDF) is enough because the secret is random, not a password.
Keys with scope ``read`` may only read (recognize, verify, list); ``write`` keys may also change
the workspace (enroll, delete, forget, calibrate). The file is written through a temporary file
and a rename (mode 0600, as ``mkstemp`` creates it), under the workspace's writer lock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from pathlib import Path

from facerec.core.errors import FaceRecError, WorkspaceError
from facerec.core.atomic import atomic_write_json

KEYS_FILE = "api-keys.json"
FORMAT = 1
SCOPES = ("read", "write")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


MAX_KEYS_BYTES = 4 << 20  # some ten thousand keys
_FIELDS = ("name", "id", "scope", "sha256", "created")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def read_keys(root: str | os.PathLike) -> list[dict]:
    """The workspace's key records, each checked field by field; [] when it has none.

    Raises:
        WorkspaceError: the file is unreadable or not what ``facerec keys`` writes (one line; the
        server answers every request with it rather than let anyone in).
    """
    from facerec.data.images import read_file_bytes

    path = Path(root) / KEYS_FILE
    if not os.path.lexists(path):
        return []
    try:  # never through a link: keys are read from the workspace itself
        data = json.loads(read_file_bytes(path, MAX_KEYS_BYTES, "an API key file", follow=False).decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("keys"), list):
            raise ValueError("not a facerec key file of format 1")
        for number, record in enumerate(data["keys"], 1):
            if problem := _record_problem(record):
                raise ValueError(f"key {number}: {problem}")
        return data["keys"]
    except (FaceRecError, OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        detail = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else \
            "nested too deeply" if isinstance(err, RecursionError) else " ".join(str(err).split())
        raise WorkspaceError(f"{path} is unreadable or damaged ({detail}); remove it and create new keys") from None


def _record_problem(record) -> str | None:
    if not isinstance(record, dict):
        return "not an object"
    missing = [f for f in _FIELDS if not isinstance(record.get(f), str)]
    if missing:
        return f"{missing[0]!r} is missing or not text"
    if not _LABEL.fullmatch(record["name"]) or record["scope"] not in SCOPES or not _SHA256.fullmatch(record["sha256"]):
        return "a name, scope or hash that facerec does not write"
    return None


def _write_keys(root: Path, keys: list[dict]) -> None:
    atomic_write_json(root / KEYS_FILE, {"format": FORMAT, "keys": keys})


def add_key(root: str | os.PathLike, label: str, scope: str = "write") -> tuple[str, dict]:
    """Create a key; returns ``(the key, its record)``. The key is not stored and cannot be shown again."""
    from facerec.workspace.lock import workspace_lock

    if not _LABEL.fullmatch(label):
        raise FaceRecError(f"key name {label!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if scope not in SCOPES:
        raise FaceRecError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    root = Path(root)
    with workspace_lock(root, create=True):
        keys = read_keys(root)
        if any(k["name"] == label for k in keys):
            raise FaceRecError(f"a key named {label!r} exists; revoke it first or choose another name")
        key_id = secrets.token_hex(4)
        key = f"frk_{key_id}_{secrets.token_urlsafe(32)}"
        record = {"name": label, "id": key_id, "scope": scope, "sha256": _digest(key),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _write_keys(root, [*keys, record])
    return key, _public(record)


def revoke_key(root: str | os.PathLike, label: str) -> dict:
    """Remove the key named ``label``; returns its record."""
    from facerec.workspace.lock import workspace_lock

    root = Path(root)
    with workspace_lock(root):
        keys = read_keys(root)
        gone = [k for k in keys if k["name"] == label]
        if not gone:
            raise FaceRecError(f"no key named {label!r}")
        _write_keys(root, [k for k in keys if k["name"] != label])
    return _public(gone[0])


def list_keys(root: str | os.PathLike) -> list[dict]:
    from facerec.workspace.layout import check_layout, require_folder

    require_folder(root)
    check_layout(root)
    return [_public(record) for record in read_keys(root)]


def _public(record: dict) -> dict:
    """A key's record without its hash, for listings and reports."""
    return {k: v for k, v in record.items() if k != "sha256"}


def check_key(keys: list[dict], key: str) -> dict | None:
    """The record ``key`` belongs to, or None. Every record is compared in constant time."""
    digest = _digest(key)
    found = None
    for record in keys:
        if hmac.compare_digest(record.get("sha256", ""), digest):
            found = record
    return found
