"""A real PostgreSQL server from Debian's package, started for the feedback tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

FIX = "apt-get install -y postgresql (or `make system-deps` as root)"


@dataclass(frozen=True)
class Postgres:
    """A running server: its SQLAlchemy URL and how to stop it."""

    url: str
    pg_ctl: Path
    data: Path
    user: str | None

    def stop(self) -> None:
        """Stop the server now (fast shutdown: open connections are cut)."""
        _run([str(self.pg_ctl), "stop", "-D", str(self.data), "-m", "fast"], self.user)


def _bin(tool: str) -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    if not found:
        pytest.fail(f"PostgreSQL's {tool} is not installed: {FIX}")
    return found[-1]


def _run(argv: list[str], user: str | None) -> None:
    if user:  # initdb and postgres refuse to run as root
        argv = ["runuser", "-u", user, "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """initdb a throw-away cluster, start it on a free loopback port, stop it.

    The cluster lives in a folder of its own under the temp directory (pytest's
    are private to the test user, and as root the server runs as `postgres`).
    """
    user = None
    folder = Path(tempfile.mkdtemp(prefix="mnist-feedback-pg-"))
    if os.geteuid() == 0:
        user = "postgres"
        if shutil.which("runuser") is None:
            pytest.fail("runuser (util-linux) is needed to start PostgreSQL as root")
        shutil.chown(folder, user)
    data, port = folder / "data", _free_port()
    _run([str(_bin("initdb")), "-D", str(data), "-U", "mnist", "--auth=trust"], user)
    pg_ctl = _bin("pg_ctl")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = str(folder / "server.log")  # not our pipes, which run() waits to close
    _run([str(pg_ctl), "start", "-D", str(data), "-l", log, "-w", "-o", options], user)
    server = Postgres(
        f"postgresql+psycopg://mnist@127.0.0.1:{port}/postgres", pg_ctl, data, user
    )
    try:
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
