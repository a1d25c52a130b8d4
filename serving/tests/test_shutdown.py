"""Graceful shutdown of a real `mnist-serve`: not ready at once, then drain, exit 0."""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from conftest import MODEL_URI
from serve_process import (
    BOUNDARY,
    multipart_body,
    running_server,
    start_server,
)

pytestmark = pytest.mark.reliability
DELAY = 1.0  # SHUTDOWN_DELAY_SECONDS in these tests


@dataclass
class HalfSent:
    """A /predict request whose body is only half sent: in flight on the server."""

    sock: socket.socket
    rest: bytes

    @classmethod
    def open(cls, port: int, png: bytes) -> HalfSent:
        body = multipart_body(png)
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        half = len(body) // 2
        sock.sendall(head + body[:half])
        return cls(sock, body[half:])

    def finish(self) -> tuple[int, bytes]:
        """Send the rest of the body; the status and body of the answer."""
        self.sock.sendall(self.rest)
        response = http.client.HTTPResponse(self.sock)
        response.begin()
        try:
            return response.status, response.read()
        finally:
            self.sock.close()


@dataclass
class Load:
    """Client threads posting /predict on keep-alive connections until stopped."""

    url: str
    png: bytes
    results: list[tuple[float, float, int | str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    status: int | str = client.post(
                        "/predict", files={"file": ("d.png", self.png, "image/png")}
                    ).status_code
                except httpx.HTTPError as exc:
                    status = repr(exc)
                self.results.append((sent, time.monotonic(), status))


def listener_closed(port: int) -> bool:
    """True once the port refuses new connections."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def wait_for(condition, limit: float, step: float = 0.005) -> float:
    """Poll `condition` until true; the monotonic time it became true."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(step)
    raise AssertionError(f"condition not met within {limit} s")


def readiness_is_503(probe: httpx.Client) -> bool:
    """One readiness probe (a kept-alive client: a new one costs milliseconds)."""
    response = probe.get("/health/ready")
    if response.status_code == 503:
        assert response.json() == {"detail": "not ready: shutting_down"}
        return True
    return False


def test_sigterm_turns_unready_at_once_then_drains_and_exits_0(tmp_path, digit_png):
    env = {"MODEL_URI": MODEL_URI, "SHUTDOWN_DELAY_SECONDS": str(DELAY)}
    with running_server(tmp_path, env, graceful_timeout=10) as server:
        half_sent = [HalfSent.open(server.port, digit_png) for _ in range(6)]
        load = Load(server.url, digit_png)
        threads = [threading.Thread(target=load.run) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # the load is running
        probe = httpx.Client(base_url=server.url, timeout=1)
        assert probe.get("/health/ready").status_code == 200
        sigterm = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        unready = wait_for(lambda: readiness_is_503(probe), limit=2)
        probe.close()
        time.sleep(DELAY * 0.7)  # clients keep going during the delay
        load.stop.set()
        for thread in threads:
            thread.join(timeout=10)
        closed = wait_for(lambda: listener_closed(server.port), limit=DELAY + 3)
        answers = [request.finish() for request in half_sent]
        code = server.proc.wait(timeout=10)
        exited = time.monotonic()
    in_delay = [status for sent, _, status in load.results if sent > sigterm]
    statuses = {status for _, _, status in load.results}
    print(  # noqa: T201 - the drain timings, shown with pytest -s
        f"readiness 503 after {unready - sigterm:.3f} s, listener closed after "
        f"{closed - sigterm:.3f} s, exit after {exited - sigterm:.3f} s; "
        f"{len(load.results)} load requests ({len(in_delay)} in the delay), "
        f"{len(answers)} in-flight requests finished after the listener closed"
    )
    assert unready - sigterm < 0.2
    assert statuses == {200}, f"load saw {statuses}"
    assert len(in_delay) >= 10, "too few requests were sent during the delay"
    assert DELAY - 0.05 <= closed - sigterm <= DELAY + 1.5
    assert [status for status, _ in answers] == [200] * len(half_sent)
    assert all(b'"digit": 7' in body or b'"digit":7' in body for _, body in answers)
    assert code == 0
    assert exited - sigterm < DELAY + 5
    messages = [line["message"] for line in server.log_lines()]
    assert "Application shutdown complete." in messages


def test_second_sigterm_stops_at_once(tmp_path, digit_png):
    env = {"MODEL_URI": MODEL_URI, "SHUTDOWN_DELAY_SECONDS": "30"}
    with running_server(tmp_path, env, graceful_timeout=30) as server:
        open_request = HalfSent.open(server.port, digit_png)
        server.proc.send_signal(signal.SIGTERM)
        with httpx.Client(base_url=server.url, timeout=1) as probe:
            wait_for(lambda: readiness_is_503(probe), limit=2)
        second = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=5)
        took = time.monotonic() - second
        open_request.sock.close()
    assert took < 2, f"took {took:.2f} s after the second SIGTERM"
    assert code == -signal.SIGTERM  # forced: killed by the re-raised signal
    assert any("again: stopping now" in line["message"] for line in server.log_lines())


def test_sigterm_without_a_model_skips_the_delay(tmp_path):
    env = {"MODEL_URI": str(tmp_path / "absent.tflite"), "SHUTDOWN_DELAY_SECONDS": "30"}
    server = start_server(tmp_path, env)
    wait_for(lambda: _answers(f"{server.url}/health/live"), limit=30, step=0.05)
    started = time.monotonic()
    code = server.stop(timeout=10)
    assert code == 0
    assert time.monotonic() - started < 5  # not 30: nothing routes to it anyway


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
