"""End to end: Debian's Prometheus scrapes real `mnist-serve` processes, rules loaded.

Two servers, as two replicas: one serves the fixture model with a drift window
of 200; the other is started with a model location that does not exist, the
service's own fault path (every prediction answers 503, model_invalid), which
is how the 5xx are injected without a test-only backdoor. The rules are the
shipped ones with `for:` and range windows shortened (prometheus_process).
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from conftest import MODEL_URI, png, require_tool
from drift_streams import thick
from prometheus_process import (
    dashboard_queries,
    fast_rules,
    running_prometheus,
    write_config,
)
from serve_process import free_port, running_server, start_server

pytestmark = pytest.mark.reliability
WINDOW = 200  # the sample's 200 images fill it exactly
INTERVAL = 1.0  # scrape and evaluation interval of the test's Prometheus


def send(url: str, images: np.ndarray) -> list[int]:
    """POST each image to /predict as image/png; the status codes."""
    headers = {"Content-Type": "image/png"}
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            client.post("/predict", content=png(image), headers=headers).status_code
            for image in images
        ]


def errors_until_alert(prometheus, url: str, images: np.ndarray) -> float:
    """Seconds of a steady stream of failing predictions until the 5xx alert fires.

    A steady stream, as in production: a status code's counter is born at its
    first request, so a burst inside one scrape interval shows no rate.
    """
    started = time.monotonic()
    while time.monotonic() - started < 20:
        assert set(send(url, images)) == {503}
        if prometheus.firing("MnistHighErrorRate"):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"no 5xx alert after 20 s: {prometheus.alerts()}")


@pytest.mark.timeout(120)
def test_mnist_traffic_is_quiet_drift_and_5xx_fire(tmp_path, sample):
    exe = require_tool("prometheus", "prometheus")
    good_metrics, broken_metrics = free_port(), free_port()
    env = {"MODEL_URI": MODEL_URI, "DRIFT_WINDOW": str(WINDOW)}
    broken = start_server(
        tmp_path,
        {"MODEL_URI": str(tmp_path / "missing"), "METRICS_PORT": str(broken_metrics)},
        name="broken",
    )
    try:
        with running_server(
            tmp_path, {**env, "METRICS_PORT": str(good_metrics)}, name="good"
        ) as good:
            targets = [f"127.0.0.1:{good_metrics}", f"127.0.0.1:{broken_metrics}"]
            config = write_config(
                tmp_path, targets, fast_rules(tmp_path / "rules.yml"), f"{INTERVAL:g}s"
            )
            with running_prometheus(exe, tmp_path, config) as prometheus:
                prometheus.wait_scraped(targets=2)
                images = sample["images"]
                # MNIST-like: the window fills, is scored, and nothing alerts.
                assert set(send(good.url, np.concatenate([images, images]))) == {200}
                time.sleep(4 * INTERVAL)
                scores = prometheus.query("mnist_drift_psi")
                assert len(scores) == 6, scores
                assert max(float(s["value"][1]) for s in scores) < 0.25
                # Latency depends on the machine's load, not on the inputs.
                raised = [
                    alert
                    for alert in prometheus.alerts()
                    if alert["labels"]["alertname"] != "MnistLatencyAboveSLO"
                ]
                assert raised == [], raised
                # Thick strokes fill the window: the drift alert fires.
                assert set(send(good.url, thick(images))) == {200}
                drift_s = prometheus.wait_for("MnistInputDrift", limit=15)
                features = {
                    a["labels"]["feature"] for a in prometheus.firing("MnistInputDrift")
                }
                assert "stroke_width" in features
                assert not prometheus.firing("MnistHighErrorRate")
                # The replica without a model answers 503: the 5xx alert fires.
                errors_s = errors_until_alert(prometheus, broken.url, images[:5])
                assert not prometheus.firing("MnistNotReady")  # one replica is ready
                # Every dashboard query is valid PromQL with data behind it.
                for title, exprs in dashboard_queries().items():
                    found = [prometheus.query(expr) for expr in exprs]
                    assert any(found), f"panel {title!r} shows nothing: {exprs}"
    finally:
        broken.stop()
    # Within two evaluation intervals plus a scrape, with slack for a busy CPU.
    assert drift_s < 4 * INTERVAL + 4, drift_s
    assert errors_s < 4 * INTERVAL + 4, errors_s
