"""A throwaway PostgreSQL cluster from Debian's `postgresql` package, for the tests.

initdb in a temporary folder, the server on a free loopback port, trust
authentication. As root the server runs as the `postgres` user (postgres
refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from mnist_serving.store.buffer import make_engine
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
        """The URL of `database`, as DATABASE_URL takes it."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = "t" + uuid.uuid4().hex[:12]
        engine = make_engine(self.url()).execution_options(isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f"CREATE DATABASE {name}"))
        finally:
            engine.dispose()
        return self.url(name)

    def _ctl(self, *args: str) -> None:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(_as_owner(command), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        """Start the server (TLS offered, not required) and wait until it is up."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            f"-c ssl=on -c ssl_cert_file={self.root}/server.crt "
            f"-c ssl_key_file={self.root}/server.key "
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


def self_signed_certificate(root: Path) -> None:
    """server.crt and server.key (0600, the server's own) for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    (root / "server.crt").write_bytes(certificate.public_bytes(Encoding.PEM))
    key_file = root / "server.key"
    key_file.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    key_file.chmod(0o600)
    if os.geteuid() == 0:
        for path in (root / "server.crt", key_file):
            shutil.chown(path, "postgres", "postgres")


def start_cluster() -> Postgres:
    """initdb a new cluster in a temporary folder and start it."""
    binaries = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="mnist-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = Postgres(binaries, root, free_port())
    self_signed_certificate(root)
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
    """Stop the server (if up), by signal if pg_ctl fails, and delete its folder."""
    try:
        cluster.stop()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pid_file = cluster.data / "postmaster.pid"
        if pid_file.exists():  # still running: SIGQUIT is the immediate stop
            with suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
    shutil.rmtree(cluster.root, ignore_errors=True)
