"""A throw-away PostgreSQL server with pgvector, for the tests and the gallery benchmark.

``initdb`` in a fresh temporary folder, the server on a private Unix socket in that folder (no TCP
port is opened), ``CREATE EXTENSION vector`` in a database of its own; ``stop`` ends the server and
removes the folder. PostgreSQL refuses to run as root: as root, the server runs as the ``postgres``
system user (``runuser``), whose folder it is.

    with ThrowawayPostgres() as url:        # postgresql://postgres@/facerec?host=/tmp/facerec-pg-...&port=...
        gallery = PostgresGallery.create(url, ...)
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

SERVER_USER = "postgres"


def bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (``$PG_BIN``, ``pg_config --bindir``, Debian's layout)."""
    candidates = [os.environ.get("PG_BIN", "")]
    if shutil.which("pg_config"):
        done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(done.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    return next((Path(c) for c in candidates if c and (Path(c) / "initdb").is_file()), None)


def unavailable() -> str | None:
    """Why a throw-away server cannot start here (None when it can)."""
    found = bin_dir()
    if found is None:
        return "PostgreSQL's initdb was not found (install postgresql, or set PG_BIN)"
    share = subprocess.run([str(found / "pg_config") if (found / "pg_config").is_file() else "pg_config",
                            "--sharedir"], capture_output=True, text=True).stdout.strip()
    if share and not (Path(share) / "extension" / "vector.control").is_file():
        return f"pgvector is not installed in {share}/extension (see ../shared/vendor/README.md)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    try:
        import pgvector.psycopg  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg and pgvector (the Python packages) are not installed: pip install 'facerec[postgresql]'"
    return None


class ThrowawayPostgres:
    """A private PostgreSQL server; ``url`` names its database ``facerec``."""

    def __init__(self, database: str = "facerec", settings: dict[str, str] | None = None):
        self.database, self.settings = database, settings or {}
        self.folder: Path | None = None
        self.url: str | None = None

    def _as_server_user(self, argv: list[str]) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    def start(self) -> str:
        if (reason := unavailable()) is not None:
            raise RuntimeError(reason)
        binaries = bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="facerec-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, SERVER_USER)
        data, port = self.folder / "data", 5433 + os.getpid() % 20000
        done = self._as_server_user([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                     "--no-sync", "-E", "UTF8"])
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-300:]}")
        options = f"-k {self.folder} -p {port} -c listen_addresses= -c fsync=off " + " ".join(
            f"-c {k}={v}" for k, v in self.settings.items())
        done = self._as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                     str(self.folder / "log"), "-w", "start"])
        if done.returncode:
            log = (self.folder / "log").read_text(errors="replace")[-300:] if (self.folder / "log").exists() else ""
            raise RuntimeError(f"the server did not start: {done.stderr.strip()[-200:]} {log}")
        import psycopg

        admin = f"postgresql://postgres@/postgres?host={self.folder}&port={port}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.url = f"postgresql://postgres@/{self.database}?host={self.folder}&port={port}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        return self.url

    @property
    def data_directory(self) -> Path:
        return self.folder / "data"

    def stop(self) -> None:
        if self.folder is None:
            return
        binaries = bin_dir()
        self._as_server_user([str(binaries / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = self.url = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
