"""A real Prometheus (Debian's) for the monitoring tests: config, rules, alerts.

The shipped rules wait minutes (`for: 15m`, `rate(...[5m])`); `fast_rules`
writes a copy with every `for:` and range window shortened, so an alert can
fire within seconds. The shipped file is never changed.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from serve_process import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "rules.yml"
RANGE = re.compile(r"\[\d+[smhd]\]")
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "mnist-serving.json"


def dashboard_queries(rate_interval: str = "20s") -> dict[str, list[str]]:
    """Every panel's PromQL by panel title, Grafana's $__rate_interval filled in."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {
        panel["title"]: [
            target["expr"].replace("$__rate_interval", rate_interval)
            for target in panel["targets"]
        ]
        for panel in panels
    }


def fast_rules(target: Path, hold: str = "1s", window: str = "20s") -> Path:
    """A copy of the shipped rules with `for: hold` and every range `[window]`."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["expr"] = RANGE.sub(f"[{window}]", rule["expr"])
            if "for" in rule:
                rule["for"] = hold
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


@dataclass
class Prometheus:
    """One running Prometheus and how to ask it about alerts."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (/api/v1/alerts)."""
        body = httpx.get(f"{self.url}/api/v1/alerts", timeout=5).json()
        return body["data"]["alerts"]

    def firing(self, name: str) -> list[dict[str, Any]]:
        """The firing alerts called `name`."""
        return [
            alert
            for alert in self.alerts()
            if alert["labels"]["alertname"] == name and alert["state"] == "firing"
        ]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; fails if Prometheus refuses `expr`."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = response.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def wait_for(self, name: str, limit: float) -> float:
        """Seconds until alert `name` fires; fails with the alerts after `limit`."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            if self.firing(name):
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"{name} not firing after {limit} s: {self.alerts()}")

    def wait_scraped(self, targets: int, limit: float = 20.0) -> None:
        """Until `targets` targets are up and scraped at least once."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            if len(self.query("up == 1")) >= targets:
                return
            time.sleep(0.2)
        raise AssertionError(f"targets not up after {limit} s: {self.query('up')}")


def write_config(
    workdir: Path, targets: list[str], rules: Path, interval: str = "1s"
) -> Path:
    """prometheus.yml scraping `targets` (host:port) every `interval`."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "mnist-serving", "static_configs": [{"targets": targets}]}
        ],
    }
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_prometheus(exe: str, workdir: Path, config: Path) -> Iterator[Prometheus]:
    """A ready Prometheus on a free loopback port, stopped on exit."""
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    prometheus = Prometheus(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        started = time.monotonic()
        while True:
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                if httpx.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() - started < 30, log_path.read_text()[-2000:]
            time.sleep(0.1)
        yield prometheus
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
