"""Real `mnist-serve` processes and Kedro-layout model exports for process tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from conftest import CARD_FILE, MODEL_FILE

EXE = Path(sys.executable).with_name("mnist-serve")
BOUNDARY = "processtestboundary"
CATALOG = """\
litert_model:
  type: mnist_mlops.datasets.BytesDataset
  filepath: data/06_models/mnist_cnn.tflite
  versioned: true
model_card:
  type: json.JSONDataset
  filepath: data/06_models/model_card.json
  versioned: true
"""


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def multipart_body(data: bytes) -> bytes:
    """A /predict body with one PNG in field `file` (multipart, BOUNDARY)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        'filename="d.png"\r\nContent-Type: image/png\r\n\r\n'
    )
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def kedro_project(root: Path) -> Path:
    """A project whose catalog names versioned exports under data/06_models."""
    base = root / "conf" / "base"
    base.mkdir(parents=True)
    (base / "catalog.yml").write_text(CATALOG)
    (root / "data" / "06_models").mkdir(parents=True)
    return root


def export_version(project: Path, version: str, *, tamper: bool = False) -> None:
    """Export the fixture model as `version` (card written last, as Kedro does).

    With `tamper`, the model's bytes no longer match the card's sha256.
    """
    models = project / "data" / "06_models"
    model_dir = models / "mnist_cnn.tflite" / version
    model_dir.mkdir(parents=True)
    content = MODEL_FILE.read_bytes()
    (model_dir / "mnist_cnn.tflite").write_bytes(content + b"\0" if tamper else content)
    card = json.loads(CARD_FILE.read_text())
    card["version"] = version
    card_dir = models / "model_card.json" / version
    card_dir.mkdir(parents=True)
    (card_dir / "model_card.json").write_text(json.dumps(card))


def remove_version(project: Path, version: str) -> None:
    """Delete one exported version (model and card)."""
    models = project / "data" / "06_models"
    for name in ("mnist_cnn.tflite", "model_card.json"):
        shutil.rmtree(models / name / version)


@dataclass
class Server:
    """One running `mnist-serve` and its log."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's JSON log lines so far (LiteRT's own lines skipped)."""
        text = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in text if line.startswith("{")]

    def wait_ready(self, limit: float = 30.0) -> float:
        """Seconds until /health/ready answers 200; fails if the process exits."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            code = self.proc.poll()
            assert code is None, f"mnist-serve exited with {code}: {self.tail()}"
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"{self.url} not ready after {limit} s: {self.tail()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status (killed after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def tail(self, lines: int = 20) -> str:
        """The end of the log, for assertion messages."""
        return "\n".join(
            self.log_path.read_text(errors="replace").splitlines()[-lines:]
        )


def start_server(  # noqa: PLR0913 - keyword-only options
    workdir: Path,
    env: dict[str, str],
    *,
    port: int | None = None,
    name: str = "server",
    graceful_timeout: int = 10,
    preexec_fn: Any = None,
) -> Server:
    """Start `mnist-serve` on loopback with `env` added; does not wait.

    `preexec_fn` runs in the child before mnist-serve (e.g. to set rlimits).
    """
    port = port or free_port()
    log_path = workdir / f"{name}.log"
    base = {"RATE_LIMIT": "", "LOG_LEVEL": "INFO"}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                str(EXE),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--graceful-timeout",
                str(graceful_timeout),
            ],
            env={**os.environ, **base, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            preexec_fn=preexec_fn,  # noqa: PLW1509 - only setrlimit, no threads yet
        )
    return Server(proc, port, log_path)


@contextmanager
def running_server(
    workdir: Path, env: dict[str, str], **kwargs: Any
) -> Iterator[Server]:
    """A ready `mnist-serve`, stopped (SIGTERM) on exit."""
    server = start_server(workdir, env, **kwargs)
    try:
        server.wait_ready()
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()
