"""The Azurite Blob emulator as a real process on loopback, for tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from azure.core.exceptions import ServiceRequestError
from azure.storage.blob import BlobServiceClient

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / ".ci" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (public; not a secret of any real account).
DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw=="
)
INSTALL_HINT = (
    f"Azurite is not installed at {AZURITE}. Install the pinned version with "
    "`npm ci --prefix .ci` (Node.js >= 18; .ci/run does it in CI)."
)
START_TIMEOUT_S = 30


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connection_string(port: int) -> str:
    """Connection string of Azurite's development account on `port`."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


@dataclass(frozen=True)
class Azurite:
    """A running emulator: its port and a client of its development account."""

    port: int
    service: BlobServiceClient

    def blob_names(self, container: str) -> list[str]:
        """Names of every blob in `container`, sorted."""
        client = self.service.get_container_client(container)
        return sorted(blob.name for blob in client.list_blobs())

    def read(self, container: str, name: str) -> bytes:
        """The content of one blob."""
        return self.service.get_blob_client(container, name).download_blob().readall()


def _wait_ready(service: BlobServiceClient, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"Azurite exited with {proc.returncode}: {log.read_text()}"
            )
        try:
            service.get_service_properties(timeout=2)
            return
        except ServiceRequestError:
            if time.monotonic() > deadline:
                msg = (
                    f"Azurite did not answer in {START_TIMEOUT_S} s: {log.read_text()}"
                )
                raise RuntimeError(msg) from None
            time.sleep(0.2)


@contextmanager
def running_azurite(workdir: Path) -> Iterator[Azurite]:
    """Start azurite-blob on a free loopback port (in memory); stop it on exit."""
    if not AZURITE.exists() or shutil.which("node") is None:
        raise FileNotFoundError(INSTALL_HINT)
    port = free_port()
    log = workdir / "azurite.log"
    args = [
        str(AZURITE),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",  # the SDK may be newer than the emulator
        "--loose",
        "--disableTelemetry",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    service = BlobServiceClient.from_connection_string(
        connection_string(port), retry_total=0
    )
    try:
        _wait_ready(service, proc, log)
        yield Azurite(port, service)
    finally:
        service.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
