"""The console script starts a real uvicorn process that serves and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import MODEL_URI
from mnist_serving.cli import parse_args

BOUNDARY = "clitestboundary"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, limit: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        assert proc.poll() is None, "mnist-serve exited early"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"{url} not ready after {limit} s")


def test_parse_args():
    args = parse_args(["--host", "0.0.0.0", "--port", "9000"])  # noqa: S104
    assert (args.host, args.port) == ("0.0.0.0", 9000)  # noqa: S104


def test_mnist_serve_process_predicts_and_stops_on_sigterm(digit_png, tmp_path):
    port = free_port()
    exe = Path(sys.executable).with_name("mnist-serve")
    # No drain delay here: tests/test_shutdown.py covers the delay itself.
    env = {**os.environ, "MODEL_URI": MODEL_URI, "LOG_LEVEL": "INFO"}
    env["SHUTDOWN_DELAY_SECONDS"] = "0"
    log_file = tmp_path / "server.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/health/ready", proc)
            body = (
                (
                    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                    'filename="d.png"\r\nContent-Type: image/png\r\n\r\n'
                ).encode()
                + digit_png
                + f"\r\n--{BOUNDARY}--\r\n".encode()
            )
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/predict",
                data=body,
                method="POST",
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert json.loads(response.read())["digit"] == 7
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after shutdown
    text = log_file.read_text().splitlines()
    lines = [json.loads(line) for line in text if line.startswith("{")]  # not LiteRT's
    messages = [line["message"] for line in lines]
    assert "Application shutdown complete." in messages  # graceful, not killed
    audit = [line for line in lines if line.get("event") == "prediction"]
    assert len(audit) == 1
    assert audit[0]["digit"] == 7
    assert {"request_id", "client_id", "confidence", "review", "latency_ms"} <= set(
        audit[0]
    )
    assert any(line.get("event") == "model_loaded" for line in lines)


def test_missing_model_process_stays_up_not_ready(tmp_path):
    port = free_port()
    exe = Path(sys.executable).with_name("mnist-serve")
    env = {**os.environ, "MODEL_URI": str(tmp_path / "absent.tflite")}
    proc = subprocess.Popen(
        [str(exe), "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/live", proc)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2)
            raise AssertionError("ready without a model")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            # The public probe gives a code; the log gives the path and the fix.
            assert json.loads(exc.read())["detail"] == "not ready: model_invalid"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert b"model_load_failed" in err
    assert b"absent.tflite does not exist" in err
