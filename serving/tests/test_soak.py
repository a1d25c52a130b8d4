"""benchmarks/serving/soak.py, shortened: a soak and an overload of a real server."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.reliability
SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "serving" / "soak.py"
ENDPOINTS = {"/predict", "/predict-drawing", "/predict-batch", "overall"}


def run_soak(tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    """Exit status, figures (--json) and printed report of one soak.py run."""
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(SOAK), *args, "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    report = done.stdout + done.stderr
    return done.returncode, json.loads(figures.read_text()), report


def load_soak() -> ModuleType:
    """soak.py as a module (it imports bench_serving from its own folder)."""
    sys.path.insert(0, str(SOAK.parent))
    try:
        spec = importlib.util.spec_from_file_location("soak", SOAK)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["soak"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SOAK.parent))


def test_short_soak_answers_everything_with_flat_memory(tmp_path):
    code, figures, report = run_soak(
        tmp_path, "--duration", "20", "--warmup", "5", "--concurrency", "8"
    )
    assert code == 0, report
    assert report.rstrip().endswith("PASS")
    endpoints = figures["endpoints"]
    assert set(endpoints) == ENDPOINTS
    for name, row in endpoints.items():
        assert row["failures"] == 0, (name, row)
        assert row["outcomes"] == {"200": row["requests"]}
        assert row["requests"] > 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert endpoints["overall"]["requests"] >= 100
    rss = figures["rss"]
    assert len(rss["samples"]) >= 4  # every 5 s over 20 s, and one at the end
    assert rss["baseline_mib"] > 20
    assert rss["growth_pct"] <= 10


def test_overload_sheds_with_503_and_recovers(tmp_path):
    code, figures, report = run_soak(tmp_path, "--overload", "--duration", "8")
    assert code == 0, report
    overall = figures["endpoints"]["overall"]
    outcomes = overall["outcomes"]
    assert set(outcomes) <= {"200", "429", "503"}, outcomes  # no 5xx, no timeouts
    assert outcomes.get("503", 0) > 0
    assert outcomes.get("200", 0) > 0
    assert overall["max_ms"] < 30_000  # every request answered within --timeout
    assert figures["server_alive"] is True
    assert figures["recovery"]["ok"] is True


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"failures": 3}, "3 failed requests"),
        ({"growth_pct": 12.5}, "RSS grew 12.5% after warm-up (limit 10.0%)"),
        ({"server_alive": False}, "the server died"),
        ({"mode": "overload", "outcomes": {"200": 5}}, "no 503"),
        ({"mode": "overload", "recovery": {"ok": False}}, "no recovery"),
    ],
)
def test_soak_verdict_names_each_problem(change, problem):
    soak = load_soak()
    figures = {
        "mode": change.get("mode", "soak"),
        "server_alive": change.get("server_alive", True),
        "endpoints": {
            "overall": {
                "requests": 10,
                "failures": change.get("failures", 0),
                "outcomes": change.get("outcomes", {"200": 5, "503": 5}),
            }
        },
        "rss": {"growth_pct": change.get("growth_pct", 1.0), "max_growth_pct": 10.0},
        "recovery": change.get("recovery", {"ok": True}),
    }
    problems = soak.problems_of(figures)
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem)
    assert soak.problems_of({**figures, **_passing(figures)}) == []


def _passing(figures: dict) -> dict:
    """The same figures with nothing wrong."""
    overall = {"requests": 10, "failures": 0, "outcomes": {"200": 5, "503": 5}}
    return {
        "server_alive": True,
        "endpoints": {"overall": overall},
        "rss": {**figures["rss"], "growth_pct": 1.0},
        "recovery": {"ok": True},
    }
