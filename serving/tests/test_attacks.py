"""The attack suite: each costly request against a real mnist-serve with the pod's
limits (a 512 MiB memory cgroup, 1024 file descriptors).

For every case the attack gets only 4xx answers, the server's peak RSS stays
below 400 MiB, /health/live answers within 200 ms throughout, and a
legitimate client running alongside gets only 200s. Its throughput, next to a
baseline, is printed by benchmarks/serving/attacks.py (timing assertions do
not belong in tests on a shared machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import attack_harness
from attack_cases import ALLOWED, CASES, send
from attack_harness import CgroupUnavailableError, measure, pod_server
from conftest import KEY_A, png

pytestmark = [pytest.mark.attack, pytest.mark.reliability]
MODEL = str(Path(__file__).parent / "fixtures/model/mnist_cnn.tflite")
SECONDS = 3.0
MAX_RSS_MIB = 400
MAX_LIVE_MS = 200
HOG = "b = bytearray(200 * 2**20); b[::4096] = b'x' * (len(b) // 4096)"  # 200 MiB


@pytest.fixture
def server(tmp_path_factory):
    """A fresh server per case, so that each case's peak RSS is its own."""
    if os.geteuid() != 0:
        pytest.fail(
            "the attack suite caps mnist-serve's memory with a cgroup, which needs "
            "root: run it as root (make test does)"
        )
    env = {"MODEL_URI": MODEL, "API_KEYS": KEY_A, "RATE_LIMIT": ""}
    try:
        with pod_server(tmp_path_factory.mktemp("attack"), env) as running:
            yield running
    except CgroupUnavailableError as exc:
        pytest.fail(str(exc))


@pytest.mark.parametrize("case", sorted(CASES))
def test_attack_costs_little(server, sample, case):
    image = png(sample["images"][0])
    requests = CASES[case]()  # built before the clock starts

    def attack(url: str) -> list[int]:
        return send(url, requests, KEY_A)

    figures = measure(server, attack, image, SECONDS, api_key=KEY_A)
    assert figures.attack, "the attack sent nothing"
    allowed = ALLOWED.get(case, set(range(400, 500)))
    assert set(figures.attack) <= allowed, figures.attack
    assert figures.peak_rss_mib < MAX_RSS_MIB, figures
    assert figures.live_failures == 0, figures
    assert figures.live_max_ms < MAX_LIVE_MS, figures
    assert figures.legit_failed == [], figures.legit_failed[:5]
    assert figures.legit_ok > 0


def test_without_a_memory_controller_the_suite_says_how_to_get_one(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(attack_harness, "CGROUP_ROOT", tmp_path / "memory")
    with (
        pytest.raises(CgroupUnavailableError, match="--cgroupns host"),
        attack_harness.memory_cgroup("never-made"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_process_over_its_cgroup_limit_is_counted_as_killed():
    if os.geteuid() != 0:
        pytest.fail("cgroups need root: run the attack suite as root")
    name = f"mnist-oom-{os.getpid()}"
    try:
        with attack_harness.memory_cgroup(name, 32 * 1024 * 1024) as procs:
            assert attack_harness.oom_kills(procs) == 0
            hog = subprocess.run(
                [sys.executable, "-c", HOG],
                preexec_fn=lambda: procs.write_text(str(os.getpid())),
                check=False,
            )
            assert hog.returncode == -signal.SIGKILL
            assert attack_harness.oom_kills(procs) == 1
    except CgroupUnavailableError as exc:
        pytest.fail(str(exc))
