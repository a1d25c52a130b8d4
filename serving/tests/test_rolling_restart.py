"""A rolling restart of two `mnist-serve` instances behind a real nginx loses nothing.

Client threads keep sending /predict and /predict-drawing through nginx while
instance 1 is stopped (SIGTERM), started again and waited for, then instance 2,
as a Kubernetes rolling update replaces pods one at a time.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from conftest import MODEL_URI, require_tool
from serve_process import Server, free_port, start_server

NGINX = Path("/usr/sbin/nginx")
pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("nginx_installed")]


@pytest.fixture(scope="module")
def nginx_installed() -> None:
    """Fail, naming the package, when nginx is missing (never skip)."""
    require_tool(str(NGINX), "nginx")


ENV = {"MODEL_URI": MODEL_URI, "SHUTDOWN_DELAY_SECONDS": "0.5"}
CONF = """\
daemon off;
worker_processes 1;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format upstreams '$status $request_uri $upstream_addr $upstream_status';
    access_log {tmp}/nginx-access.log upstreams;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream mnist {{
        # max_fails=0: never take an instance out for fail_timeout. A refused
        # connect on loopback costs microseconds and the request moves on;
        # with the default, a restarted instance would stay out for 10 s.
        server 127.0.0.1:{port1} max_fails=0;
        server 127.0.0.1:{port2} max_fails=0;
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 6m;
        location / {{
            proxy_pass http://mnist;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # A prediction is a pure function of the image: it changes nothing on
            # the server (the audit log line aside), so a POST that failed on one
            # instance (refused or reset while it restarts, a 503 while it drains
            # or sheds load) is safe to send again to the other. nginx retries a
            # POST only with non_idempotent.
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


def nginx_user() -> str:
    """Workers as the user running the test (root in CI), so they can use tmp_path."""
    if os.geteuid() != 0:
        return ""  # an unprivileged master cannot switch users anyway
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};"


@dataclass
class Traffic:
    """Client threads mixing /predict and /predict-drawing until stopped."""

    url: str
    png: bytes
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        drawing = {"image": base64.b64encode(self.png).decode()}
        count = 0
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    if count % 2:
                        response = client.post("/predict-drawing", json=drawing)
                    else:
                        upload = {"file": ("d.png", self.png, "image/png")}
                        response = client.post("/predict", files=upload)
                    ok = response.status_code == 200 and response.json()["digit"] == 7
                    outcome = "ok" if ok else f"{response.status_code} {response.text}"
                except httpx.HTTPError as exc:
                    outcome = repr(exc)
                if outcome == "ok":
                    self.outcomes["ok"] += 1
                else:
                    self.failures.append(outcome)
                count += 1


def start_nginx(tmp: Path, port: int, port1: int, port2: int) -> subprocess.Popen:
    """nginx in the foreground with its config, logs and temp files in `tmp`."""
    conf = tmp / "nginx.conf"
    conf.write_text(
        CONF.format(user=nginx_user(), tmp=tmp, port=port, port1=port1, port2=port2)
    )
    proc = subprocess.Popen(
        [
            str(NGINX),
            "-p",
            str(tmp),
            "-e",
            str(tmp / "nginx-error.log"),
            "-c",
            str(conf),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp / "nginx-error.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(
        f"nginx not answering: {(tmp / 'nginx-error.log').read_text()}"
    )


def restart(server: Server, tmp: Path, name: str) -> tuple[Server, float]:
    """SIGTERM, wait for exit 0, start on the same port, wait ready; seconds taken."""
    started = time.monotonic()
    code = server.stop(timeout=30)
    assert code == 0, server.tail()
    fresh = start_server(tmp, ENV, port=server.port, name=name, graceful_timeout=5)
    fresh.wait_ready()
    return fresh, time.monotonic() - started


def test_rolling_restart_behind_nginx_fails_no_request(tmp_path, digit_png):
    port1, port2, port = free_port(), free_port(), free_port()
    servers = [
        start_server(tmp_path, ENV, port=p, name=f"instance{i}-a", graceful_timeout=5)
        for i, p in ((1, port1), (2, port2))
    ]
    nginx = None
    traffic = None
    threads: list[threading.Thread] = []
    try:
        for server in servers:
            server.wait_ready()
        nginx = start_nginx(tmp_path, port, port1, port2)
        traffic = Traffic(f"http://127.0.0.1:{port}", digit_png)
        threads = [threading.Thread(target=traffic.run) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        took = []
        for index in range(len(servers)):
            time.sleep(0.5)  # the restarted instance takes traffic again
            servers[index], seconds = restart(
                servers[index], tmp_path, f"instance{index + 1}-b"
            )
            took.append(seconds)
        time.sleep(1.0)
    finally:
        if traffic is not None:
            traffic.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)
        for server in servers:
            if server.proc.poll() is None:
                server.stop()
    assert traffic is not None
    log = (tmp_path / "nginx-access.log").read_text().splitlines()
    retried = sum(1 for line in log if "," in line.split(" ", 2)[2])
    served_after = [
        sum(1 for line in server.log_lines() if line.get("event") == "prediction")
        for server in servers
    ]
    print(  # noqa: T201 - the figures, shown with pytest -s
        f"rolling restart: {traffic.outcomes['ok']} requests succeeded, "
        f"{len(traffic.failures)} failed; {retried} retried by nginx on the other "
        f"instance; restarts took {took[0]:.2f} s and {took[1]:.2f} s; restarted "
        f"instances then served {served_after}"
    )
    assert traffic.failures == []
    assert traffic.outcomes["ok"] >= 200
    assert all(count > 0 for count in served_after), "a restarted instance got none"
