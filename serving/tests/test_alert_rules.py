"""The alert rules: promtool's checks and unit tests, and the PrometheusRule in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from conftest import require_tool
from prometheus_process import dashboard_queries

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "monitoring" / "prometheus"
RULES = RULES_DIR / "rules.yml"
ALERTS = {
    "MnistHighErrorRate",
    "MnistLatencyAboveSLO",
    "MnistNotReady",
    "MnistInputDrift",
    "MnistManualReviewHigh",
    "MnistModelReloadFailed",
    "MnistFeedbackRecordsLost",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's promtool in the rules folder."""
    exe = require_tool("promtool", "prometheus")
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, cwd=RULES_DIR, check=False
    )


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_of_every_alert():
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = (RULES_DIR / "rules_test.yml").read_text()
    assert all(f"alertname: {alert}" in tested for alert in ALERTS)


def test_every_alert_has_a_summary_and_a_runbook():
    rules = [
        rule for g in yaml.safe_load(RULES.read_text())["groups"] for rule in g["rules"]
    ]
    assert {rule["alert"] for rule in rules} == ALERTS
    for rule in rules:
        assert {"summary", "runbook"} <= set(rule["annotations"]), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}


def test_prometheusrule_is_generated_from_the_rule_file():
    script = ROOT / "monitoring" / "prometheusrule.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    component = ROOT / "k8s" / "components" / "monitoring" / "prometheusrule.yaml"
    assert yaml.safe_load(component.read_text())["spec"] == yaml.safe_load(
        RULES.read_text()
    )


def test_dashboard_shows_what_the_alerts_are_about():
    titles = " ".join(dashboard_queries()).lower()
    for topic in ("traffic", "latency", "errors", "review bands", "drift", "version"):
        assert topic in titles
    provisioning = ROOT / "monitoring" / "grafana" / "provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "mnist.yml").read_text())
    assert provider["providers"][0]["options"]["path"].endswith("/mnist")


def test_a_broken_rule_file_is_refused(tmp_path):
    broken = tmp_path / "rules.yml"
    broken.write_text(RULES.read_text().replace("> 0.01", "> > 0.01", 1))
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr
