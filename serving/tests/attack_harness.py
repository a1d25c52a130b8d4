"""Run one attack against a real `mnist-serve` under the pod's limits and measure.

The server runs in a memory cgroup capped at the pod's 512 MiB, with the pod's
file-descriptor limit. While the attack runs, a prober times /health/live and
a legitimate client keeps sending predictions; afterwards the figures say what
the attack cost: the server's peak RSS, the slowest liveness answer, the
attack's status codes and the legitimate client's throughput.
Used by tests/test_attacks.py and benchmarks/serving/attacks.py.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from serve_process import Server, start_server

POD_MEMORY = 512 * 1024 * 1024
POD_FILES = 1024
CGROUP_ROOT = Path("/sys/fs/cgroup/memory")  # v1; its parent is v2's root
Attack = Callable[[str], list[int]]  # base URL -> the attack's status codes


@dataclass
class Figures:
    """What one attack cost the server and its other clients."""

    attack: Counter[int] = field(default_factory=Counter)
    peak_rss_mib: float = 0.0
    live_max_ms: float = 0.0
    live_failures: int = 0
    legit_ok: int = 0
    legit_failed: list[str] = field(default_factory=list)
    legit_rps: float = 0.0


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class CgroupUnavailableError(RuntimeError):
    """No memory cgroup can be made here: the message says how to allow one."""


def _hierarchy() -> tuple[Path, str, str]:
    """The memory hierarchy to use: its root, its limit file, its process file.

    cgroup v1 (a `memory` controller mounted on its own, as on this project's CI
    machines) or v2 (the unified hierarchy of current distributions and GitHub's
    runners), where the memory controller must be enabled for new children.
    """
    if (CGROUP_ROOT / "memory.limit_in_bytes").is_file():
        return CGROUP_ROOT, "memory.limit_in_bytes", "tasks"
    unified = CGROUP_ROOT.parent
    if "memory" in _read(unified / "cgroup.controllers").split():
        control = unified / "cgroup.subtree_control"
        if "memory" not in _read(control).split():
            _write(control, "+memory")
        return unified, "memory.max", "cgroup.procs"
    raise CgroupUnavailableError(
        "the attack suite caps mnist-serve at the pod's 512 MiB with a memory "
        "cgroup, and this machine offers no memory controller under "
        f"{CGROUP_ROOT.parent}; run it as root on a Linux host (or in a container "
        "started with --privileged --cgroupns host, or with "
        "-v /sys/fs/cgroup:/sys/fs/cgroup:rw)"
    )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _denied(path: Path, exc: OSError) -> CgroupUnavailableError:
    return CgroupUnavailableError(
        f"cannot write {path} ({exc.strerror}): the attack suite needs to make a "
        "512 MiB memory cgroup; run it as root on a Linux host, or in a container "
        "started with --privileged --cgroupns host or with "
        "-v /sys/fs/cgroup:/sys/fs/cgroup:rw"
    )


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise _denied(path, exc) from exc


@contextmanager
def memory_cgroup(name: str) -> Iterator[Path]:
    """A memory cgroup capped at POD_MEMORY, as Docker makes one for the pod.

    Yields the file to write the server's pid into.
    """
    root, limit, procs = _hierarchy()
    group = root / name
    try:
        group.mkdir()
    except OSError as exc:
        raise _denied(group, exc) from exc
    try:
        _write(group / limit, str(POD_MEMORY))
        yield group / procs
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:  # tasks still exiting
                time.sleep(0.1)


def pod_limits() -> None:
    """In the child: the pod's file-descriptor limit."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (POD_FILES, POD_FILES))


@contextmanager
def pod_server(workdir: Path, env: dict[str, str]) -> Iterator[Server]:
    """A ready mnist-serve in a 512 MiB memory cgroup with 1024 descriptors."""
    with memory_cgroup(f"mnist-attack-{os.getpid()}-{time.monotonic_ns()}") as procs:
        server = start_server(workdir, env, preexec_fn=pod_limits)
        try:
            _write(procs, str(server.proc.pid))
            server.wait_ready()
            yield server
        finally:
            if server.proc.poll() is None:
                server.stop()


def _probe(url: str, stop: threading.Event, figures: Figures) -> None:
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                ok = client.get(f"{url}/health/live").status_code == 200
            except httpx.HTTPError:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            figures.live_max_ms = max(figures.live_max_ms, elapsed)
            figures.live_failures += not ok
            stop.wait(0.02)


def _legit(
    url: str, image: bytes, stop: threading.Event, figures: Figures, key: str | None
) -> None:
    headers = {"content-type": "image/png", **({"X-API-Key": key} if key else {})}
    started = time.perf_counter()
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            try:
                response = client.post(f"{url}/predict", content=image, headers=headers)
                if response.status_code == 200:
                    figures.legit_ok += 1
                else:
                    figures.legit_failed.append(str(response.status_code))
            except httpx.HTTPError as exc:
                figures.legit_failed.append(repr(exc))
    figures.legit_rps = figures.legit_ok / (time.perf_counter() - started)


class Target(Protocol):
    """What an attack is measured on: a base URL and the server's host pid.

    A `Server` process of serve_process, or a container (its main process as the
    host sees it), which is how the suite measures the image too.
    """

    @property
    def url(self) -> str: ...

    @property
    def pid(self) -> int: ...


def measure(
    server: Target,
    attack: Attack | None,
    image: bytes,
    seconds: float,
    api_key: str | None = None,
) -> Figures:
    """Run `attack` (None: nothing, for a baseline) beside the prober and client."""
    figures = Figures()
    stop = threading.Event()
    helpers = [
        threading.Thread(target=_probe, args=(server.url, stop, figures)),
        threading.Thread(
            target=_legit, args=(server.url, image, stop, figures, api_key)
        ),
    ]
    for thread in helpers:
        thread.start()
    deadline = time.monotonic() + seconds
    if attack is not None:
        while time.monotonic() < deadline:
            figures.attack.update(attack(server.url))
    time.sleep(max(0.0, deadline - time.monotonic()))
    stop.set()
    for thread in helpers:
        thread.join(timeout=30)
    figures.peak_rss_mib = peak_rss_mib(server.pid)
    return figures
