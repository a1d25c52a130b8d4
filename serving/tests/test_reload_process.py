"""Hot reload in a real `mnist-serve` under load: every request answered, one switch.

Client threads send /predict and /predict-drawing on keep-alive connections
while an operator exports a new version and calls POST /admin/reload, then
exports a tampered one. Requests are sent with http.client, which writes a small
request in one piece, so each arrives whole and is answered by the model that
was current when it was read. (A request whose body is still arriving when the
model is swapped finishes on the model it started with.)
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from serve_process import (
    BOUNDARY,
    export_version,
    kedro_project,
    multipart_body,
    running_server,
)

pytestmark = pytest.mark.reliability
TOKEN = "process-test-token-0123456789abcdef"  # noqa: S105 - a test token
V1 = "2026-12-01T00.00.00.000Z"
V2 = "2026-12-02T00.00.00.000Z"
V3_TAMPERED = "2026-12-03T00.00.00.000Z"


@dataclass
class Client:
    """One thread's keep-alive connection and what it saw, in order."""

    name: str
    port: int
    png: bytes
    seen: list[tuple[str, int, str | None]] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        upload = multipart_body(self.png)
        drawing = json.dumps({"image": base64.b64encode(self.png).decode()}).encode()
        kinds = [
            ("/predict", upload, f"multipart/form-data; boundary={BOUNDARY}"),
            ("/predict-drawing", drawing, "application/json"),
        ]
        count = 0
        try:
            while not stop.is_set():
                path, body, kind = kinds[count % 2]
                request_id = f"{self.name}-{count}"
                headers = {"Content-Type": kind, "X-Request-ID": request_id}
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = json.loads(response.read())
                self.seen.append(
                    (request_id, response.status, data.get("model_version"))
                )
                count += 1
        finally:
            conn.close()


def switches_once(versions: list[str | None], first: str, second: str) -> bool:
    """`first` one or more times, then `second` one or more times, nothing else."""
    text = "".join({first: "a", second: "b"}.get(v or "", "x") for v in versions)
    return re.fullmatch(r"a+b+", text) is not None


def test_reload_under_load_switches_once_and_refuses_a_tampered_version(
    tmp_path, digit_png
):
    project = kedro_project(tmp_path / "project")
    export_version(project, V1)
    env = {"MODEL_URI": "", "PROJECT_DIR": str(project), "ADMIN_TOKEN": TOKEN}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    clients = [Client(f"c{i}", 0, digit_png) for i in range(4)]
    stop = threading.Event()
    with running_server(tmp_path, env) as server:
        admin = httpx.Client(base_url=server.url, headers=auth, timeout=30)
        threads = []
        for client in clients:
            client.port = server.port
            threads.append(threading.Thread(target=client.run, args=(stop,)))
            threads[-1].start()
        time.sleep(0.5)
        export_version(project, V2)
        reloaded = admin.post("/admin/reload")
        time.sleep(0.5)
        export_version(project, V3_TAMPERED, tamper=True)
        refused = admin.post("/admin/reload")
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        health = admin.get("/health").json()
        info = admin.get("/model-info").json()
        admin.close()
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["status"] == "reloaded"
    assert reloaded.json()["previous_version"] == V1
    assert refused.status_code == 409
    assert "sha256" in refused.json()["detail"]
    assert f"still serving model {V2}" in refused.json()["detail"]
    assert health["model_version"] == info["model_version"] == V2
    assert health["last_reload_failed"] is True
    assert "sha256" in info["last_reload_error"]

    seen = [entry for client in clients for entry in client.seen]
    statuses = {status for _, status, _ in seen}
    assert statuses == {200}, f"statuses seen: {statuses}"
    assert len(seen) >= 200, f"only {len(seen)} requests under load"
    for client in clients:  # each client's own sequence: V1 ... then V2 ...
        versions = [version for _, _, version in client.seen]
        assert switches_once(versions, V1, V2), f"{client.name}: {versions}"

    # Every request in the order the server finished them (its audit log lines).
    version_of = {request_id: version for request_id, _, version in seen}
    lines = server.log_lines()
    finished = [
        line["request_id"] for line in lines if line.get("event") == "prediction"
    ]
    assert sorted(finished) == sorted(version_of)
    in_order = [version_of[request_id] for request_id in finished]
    assert switches_once(in_order, V1, V2)
    events = [line.get("event") for line in lines]
    assert events.count("model_reloaded") == 1
    assert events.count("model_reload_failed") == 1
