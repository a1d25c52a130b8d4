"""Rate limits shared by replicas through a real Redis (Debian's redis-server).

Two `mnist-serve` processes with RATE_LIMIT_STORAGE_URI=redis://... grant one
limit between them, as the pods of a Deployment must; with Redis gone they keep
answering, unlimited, and say so in the log.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import KEY_A, png
from serve_process import free_port, running_server

pytestmark = pytest.mark.reliability
LIMIT = 10


def redis_server_path() -> str:
    """redis-server, or fail with the install command (never a silent skip)."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server is missing: apt-get install -y redis-server")
    return path


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A private redis-server on a free loopback port, no persistence."""
    port = free_port()
    proc = subprocess.Popen(
        [
            redis_server_path(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not answer PING within 10 s")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}", proc
    proc.terminate()
    proc.wait(timeout=10)


def predict(url: str, image: bytes) -> int:
    response = httpx.post(
        f"{url}/predict",
        content=image,
        headers={"content-type": "image/png", "X-API-Key": KEY_A},
        timeout=10,
    )
    return response.status_code


def test_two_replicas_share_one_limit(tmp_path, redis_url, sample):
    url, redis = redis_url
    env = {
        "MODEL_URI": str(Path(__file__).parent / "fixtures/model/mnist_cnn.tflite"),
        "API_KEYS": KEY_A,
        "RATE_LIMIT": f"{LIMIT}/minute",
        "RATE_LIMIT_STORAGE_URI": url,
    }
    image = png(sample["images"][0])
    with (
        running_server(tmp_path, env, name="a") as first,
        running_server(tmp_path, env, name="b") as second,
    ):
        statuses = Counter(
            predict(server.url, image)
            for _ in range(LIMIT)
            for server in (first, second)
        )
        assert statuses == {200: LIMIT, 429: LIMIT}  # alone, each would grant 10

        redis.terminate()
        redis.wait(timeout=10)
        after = [predict(server.url, image) for server in (first, second)]
        assert after == [200, 200]  # Redis down: serving goes on, unlimited
        events = [line.get("event") for line in first.log_lines()]
        assert "rate_limit_storage_error" in events
