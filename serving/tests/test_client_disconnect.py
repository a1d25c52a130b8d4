"""A client that hangs up mid-upload is not a server error (a real mnist-serve)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from serve_process import BOUNDARY, running_server

pytestmark = pytest.mark.reliability
MODEL = str(Path(__file__).parent / "fixtures/model/mnist_cnn.tflite")


def hang_up(port: int, content_type: str, declared: int, sent: bytes) -> None:
    """Send headers and part of a body, then close the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = (
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + sent)
        time.sleep(0.2)


PART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
    'filename="d.png"\r\nContent-Type: image/png\r\n\r\n'
).encode()


@pytest.mark.parametrize(
    ("content_type", "start"),
    [("image/png", b"\x89PNG"), (f"multipart/form-data; boundary={BOUNDARY}", PART)],
    ids=["raw", "multipart"],
)
def test_hang_up_mid_upload_is_499_at_info(tmp_path, content_type, start):
    with running_server(tmp_path, {"MODEL_URI": MODEL}) as server:
        for _ in range(3):
            hang_up(server.port, content_type, 100_000, start + b"0" * 996)
        deadline = time.monotonic() + 5
        while True:
            metrics = httpx.get(f"{server.url}/metrics").text
            if 'route="/predict",status="499"} 3.0' in metrics or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.05)
        lines = server.log_lines()
    assert 'route="/predict",status="499"} 3.0' in metrics
    assert 'status="500"' not in metrics
    assert [line["level"] for line in lines if line["level"] == "ERROR"] == []
    closed = [line for line in lines if line.get("event") == "client_closed_request"]
    assert len(closed) == 3
    assert {line["level"] for line in closed} == {"INFO"}
