"""What ``facerec serve`` keeps between requests: the model (loaded once), the locks, the keys
and the forget jobs.

Concurrency on one workspace:

- Reads (recognize, verify) share one :class:`FacePipeline`; its model is reloaded only when the
  workspace's model version changes (after a forget, by this server or by the CLI), and its
  threshold follows ``facerec calibrate``. Model work is serialised by ``compute``: on a 2-core
  machine two forward passes side by side only fight over the cores.
- Writes (enroll, delete, calibrate, forget) hold ``write`` (threads of this process) and the
  workspace's ``flock`` (other processes, the CLI among them) through ``Session.writing``,
  exactly as the CLI does; so concurrent enrolls are serialised and none is lost.
- A forget runs as a job on one background thread; it holds the write lock while it runs and the
  transaction in ``forgetting.request`` makes it all-or-nothing, as on the CLI. A server stopped
  mid-job leaves the previous model (before the commit) or a forget the next writer completes.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from facerec.server.apikeys import KEYS_FILE, read_keys
from facerec.core.errors import FaceRecError, WorkspaceBusy
from facerec.public.session import Session


class Busy(WorkspaceBusy):
    """The workspace's writer lock was not free in time (a forget job is running)."""


@dataclass(frozen=True)
class Limits:
    upload_bytes: int = 16 << 20  # a whole request body
    images: int = 32  # images in one request
    pixels: int = 40_000_000  # per image, checked from the header before decoding (the library's MAX_PIXELS)
    busy_seconds: float = 30.0  # how long a write waits for the writer lock before 503


class Engine(Session):
    """The server's :class:`~facerec.public.session.Session`: the workspace and its pipeline, shared
    by every request, with this process's locks, the API keys and the forget jobs on top."""

    def __init__(self, root: str | os.PathLike, detector: str = "haar", device: str | None = None,
                 limits: Limits = Limits(), recognizer: str | None = None):
        # reads embed with the model loaded at start (torch), as they always have: one load per model
        super().__init__(root, detector=detector, device=device, recognizer=recognizer, max_pixels=limits.pixels,
                         onnx_reads=False)
        self.limits = limits
        self.write = threading.Lock()
        self.compute = threading.Lock()
        self._keys: tuple[int, list[dict]] = (-1, [])
        self.jobs = Jobs()

    def computing(self):
        return self.compute

    @contextmanager
    def writing(self, create: bool = False, seed: bool = True, rebuilding: bool = False):
        """This process's write lock, then the workspace's (the CLI's) lock; yields the recovered
        workspace. A workspace that does not exist yet starts from the shipped model."""
        if not self.write.acquire(timeout=self.limits.busy_seconds):
            raise Busy("the workspace is busy (a forget job is running); try again later")
        try:
            with super().writing(create=create, seed=True, rebuilding=rebuilding) as ws:
                yield ws
        finally:
            self.write.release()

    # -- keys ----------------------------------------------------------------------------------
    def keys(self) -> list[dict]:
        """The workspace's key records, re-read when the file changes (keys added or revoked)."""
        path = self.root / KEYS_FILE
        stamp = path.stat().st_mtime_ns if path.exists() else 0
        if stamp != self._keys[0]:
            self._keys = (stamp, read_keys(self.root))
        return self._keys[1]


@contextmanager
def saved_uploads(uploads: list[tuple[str, bytes]]):
    """Uploaded images as files in a private temporary folder (the library reads paths), removed
    afterwards; yields their paths. Names are numbered, never the client's, so nothing escapes."""
    with tempfile.TemporaryDirectory(prefix="facerec-upload-") as folder:
        paths = []
        for i, (_, data) in enumerate(uploads):
            path = Path(folder) / f"{i:04d}.img"
            path.write_bytes(data)
            paths.append(str(path))
        yield paths


class Jobs:
    """Forget jobs, run one at a time on a daemon thread (a stopped server does not wait for one)."""

    KEEP = 200  # finished jobs remembered

    def __init__(self):
        self._jobs: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, name="facerec-jobs", daemon=True).start()

    def submit(self, kind: str, run, describe: dict) -> dict:
        job = {"id": uuid.uuid4().hex[:16], "kind": kind, "status": "queued", **describe,
               "submitted": _now(), "started": None, "finished": None, "result": None, "error": None}
        with self._lock:
            self._jobs[job["id"]] = job
            finished = [j for j in self._jobs.values() if j["finished"]]
            for old in finished[:max(0, len(finished) - self.KEEP)]:
                del self._jobs[old["id"]]
        self._queue.put((job["id"], run))
        return dict(job)

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return dict(job) if job else None

    def list(self) -> list[dict]:
        with self._lock:
            return [{k: v for k, v in j.items() if k != "result"} for j in self._jobs.values()]

    def running(self) -> int:
        with self._lock:
            return sum(j["status"] in ("queued", "running") for j in self._jobs.values())

    def _work(self) -> None:
        while True:
            job_id, run = self._queue.get()
            self._update(job_id, status="running", started=_now())
            try:
                result = run()
            except FaceRecError as err:
                self._update(job_id, status="failed", error=one_line(str(err)), finished=_now())
            except Exception as err:  # a bug: logged in full, reported in one line
                traceback.print_exc()
                self._update(job_id, status="failed", error=f"internal error: {type(err).__name__}",
                             finished=_now())
            else:
                self._update(job_id, status="succeeded", result=result, finished=_now())

    def _update(self, job_id: str, **change) -> None:
        with self._lock:
            self._jobs[job_id].update(change)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line (every run of whitespace, newlines too, one space), at most ``limit`` characters."""
    return " ".join(str(text).split())[:limit]
