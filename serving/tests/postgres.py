"""A throwaway PostgreSQL cluster from Debian's `postgresql` package, for the tests.

initdb in a temporary folder, the server on a free loopback port, trust
authentication. As root the server runs as the `postgres` user (postgres
refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from serve_process import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> Path:
    """Debian's PostgreSQL binaries; a failure naming the fix when missing."""
    found = sorted(glob.glob(BIN_GLOB))
    if not found or not (Path(found[-1]) / "initdb").exists():
        pytest.fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: "
            "apt-get install -y postgresql (or `make system-deps` as root at the "
            "repository root)"
        )
    return Path(found[-1])


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass
class Postgres:
    """One running cluster: its folder, port and binaries."""

    bin: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of `database` (psycopg 3)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = "t" + uuid.uuid4().hex[:12]
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def _ctl(self, *args: str) -> None:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(_as_owner(command), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            # fsync off: a test cluster survives a server crash (the OS keeps
            # the writes), not a machine crash. Commits stay synchronous, so
            # the tests' immediate stop loses nothing committed.
            "-c fsync=off"
        )
        log = str(self.root / "server.log")
        self._ctl("-o", options, "-l", log, "-w", "-t", "30", "start")

    def stop(self) -> None:
        """Stop the server at once (connections cut, as in an outage)."""
        self._ctl("-m", "immediate", "-w", "stop")


def start_cluster() -> Postgres:
    """initdb a new cluster in a temporary folder and start it."""
    binaries = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="mnist-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = Postgres(binaries, root, free_port())
    initdb = [
        str(binaries / "initdb"),
        "-D",
        str(cluster.data),
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
    ]
    subprocess.run(_as_owner(initdb), check=True, capture_output=True, timeout=120)
    cluster.start()
    return cluster


def remove_cluster(cluster: Postgres) -> None:
    """Stop the server (if up) and delete its folder."""
    try:
        cluster.stop()
    except subprocess.CalledProcessError:
        pass  # already stopped
    shutil.rmtree(cluster.root, ignore_errors=True)
