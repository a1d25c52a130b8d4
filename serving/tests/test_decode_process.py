"""Decoding in a child process: results, client errors and bugs come back; a
child past its CPU-time or wall-clock budget is stopped with a 422; a helper
that died is started again."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mnist_serving.core import decode_process
from mnist_serving.core.decode_process import DecodeBudgetError, DecodeProcesses
from mnist_serving.core.errors import InvalidInputError, TooLargeError


def add(a: int, b: int) -> tuple[int, str]:
    return a + b, "done"


def pid_and_parent() -> tuple[int, int]:
    return os.getpid(), os.getppid()


def niceness() -> int:
    return os.nice(0)


def refuse() -> None:
    raise TooLargeError("image is 9x9 = 81 pixels, above the limit of 80")


def crash() -> None:
    raise ValueError("a bug in the decoder")


def spin() -> None:
    while True:
        pass


def wait() -> None:
    time.sleep(60)


def big(megabytes: int) -> bytes:
    return bytes(megabytes * 1024 * 1024)


@pytest.fixture
def processes():
    started = DecodeProcesses()
    yield started
    started.close()


def test_the_result_comes_back_from_a_fresh_child(processes):
    assert processes.run(add, 2, 3, cpu_seconds=1, what="image") == (5, "done")
    first = processes.run(pid_and_parent, cpu_seconds=1, what="image")
    second = processes.run(pid_and_parent, cpu_seconds=1, what="image")
    assert first[0] != second[0]  # one child per job
    assert first[1] == second[1] != os.getpid()  # forked by the helper


def test_a_child_runs_below_the_servers_priority(processes):
    child = processes.run(niceness, cpu_seconds=1, what="image")
    assert child == max(os.nice(0), decode_process.CHILD_NICE)


def test_large_jobs_and_answers_pass_whole(processes):
    assert processes.run(len, big(20), cpu_seconds=2, what="image") == 20 * 2**20
    assert len(processes.run(big, 20, cpu_seconds=2, what="image")) == 20 * 2**20


def test_a_client_error_comes_back_as_raised(processes):
    with pytest.raises(TooLargeError, match="above the limit of 80") as raised:
        processes.run(refuse, cpu_seconds=1, what="image")
    assert raised.value.status_code == 413


def test_a_bug_comes_back_as_a_runtime_error_with_its_text(processes):
    with pytest.raises(RuntimeError, match="ValueError: a bug in the decoder"):
        processes.run(crash, cpu_seconds=1, what="image")


def test_a_child_is_stopped_at_its_cpu_budget(processes):
    started = time.monotonic()
    with pytest.raises(DecodeBudgetError) as raised:
        processes.run(spin, cpu_seconds=1, what="image")
    assert isinstance(raised.value, InvalidInputError)
    assert raised.value.status_code == 422
    detail = raised.value.detail
    assert "image needs more than 1 s of CPU time to decode" in detail
    assert "DECODE_CPU_SECONDS" in detail
    # stopped by the kernel at 1 s of CPU, long before the wall limit
    assert time.monotonic() - started < decode_process.WALL_FACTOR
    assert processes.run(add, 1, 1, cpu_seconds=1, what="image") == (2, "done")


def test_a_waiting_child_is_stopped_at_the_wall_limit(processes, monkeypatch):
    monkeypatch.setattr(decode_process, "WALL_FACTOR", 0.5)
    started = time.monotonic()
    with pytest.raises(DecodeBudgetError, match="more than 1 s of CPU time"):
        processes.run(wait, cpu_seconds=1, what="image")
    assert time.monotonic() - started < 5  # not the 60 s the child would sleep


def test_a_helper_that_died_is_started_again(processes):
    _, helper = processes.run(pid_and_parent, cpu_seconds=1, what="image")
    os.kill(helper, signal.SIGKILL)
    time.sleep(0.2)
    _, again = processes.run(pid_and_parent, cpu_seconds=1, what="image")
    assert again != helper
