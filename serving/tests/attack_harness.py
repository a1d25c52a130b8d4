"""Run one attack against a real `mnist-serve` under the pod's limits and measure.

The server runs in a memory cgroup capped at the pod's 512 MiB, with the pod's
file-descriptor limit. While the attack runs, a prober times /health/live and
a legitimate client keeps sending predictions; afterwards the figures say what
the attack cost: the server's peak RSS, the slowest liveness answer, the
attack's status codes and the legitimate client's throughput.

The attacker is a process of its own at the lowest CPU priority: in production
it sends from another machine, so what its own client code costs must not be
taken from the server or the legitimate client, which share these cores.
Used by tests/test_attacks.py and benchmarks/serving/attacks.py.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
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
def memory_cgroup(name: str, memory: int = POD_MEMORY) -> Iterator[Path]:
    """A memory cgroup capped at `memory`, as Docker makes one for a container.

    Yields the file to write a process's pid into.
    """
    root, limit, procs = _hierarchy()
    group = root / name
    try:
        group.mkdir()
    except OSError as exc:
        raise _denied(group, exc) from exc
    try:
        _write(group / limit, str(memory))
        yield group / procs
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:  # tasks still exiting
                time.sleep(0.1)


def oom_kills(procs: Path) -> int:
    """Processes the kernel killed for memory in the cgroup of `procs`."""
    for events in ("memory.events", "memory.oom_control"):  # v2, v1
        for line in _read(procs.parent / events).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    raise CgroupUnavailableError(
        f"{procs.parent} counts no OOM kills (memory.events or memory.oom_control "
        "with an oom_kill line, Linux 4.13 or later)"
    )


def pod_limits() -> None:
    """In the child: the pod's file-descriptor limit, and a CPU of its own.

    The pod's CPU is its node's; the clients here are other machines'. On a
    machine of two or more CPUs the server gets the first and the clients the
    others (see `measure`), so that the legitimate client's share measures what
    the attack costs the server, not what the three cost one another.
    """
    resource.setrlimit(resource.RLIMIT_NOFILE, (POD_FILES, POD_FILES))
    server, _ = _cpus()
    os.sched_setaffinity(0, server)


def proxy_cpus() -> set[int]:
    """The CPUs for the pod's nginx: not the server's.

    nginx is a container of its own, with a CPU limit of its own
    (k8s/base/deployment.yaml): what it spends on refusing floods is not the
    app's CPU. Sharing the clients' CPUs is the harder case for the legitimate
    client, which then competes with nginx as well as the attacker.
    """
    _, clients = _cpus()
    return clients


def _cpus() -> tuple[set[int], set[int]]:
    """(the server's CPUs, the clients'): split when there are two or more."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return {cpus[0]}, set(cpus[1:])


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


def _attack_loop(url: str, attack: Attack, seconds: float, results: Queue) -> None:
    """In the attacker's process: send until the time is up, then report."""
    # The attacker's CPU is another machine's in production; here it shares the
    # cores with the server and the legitimate client, so it runs at the lowest
    # priority and sends with what they leave. It still sends back to back.
    os.nice(19)
    counts: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            counts.update(attack(url))
    except Exception as exc:  # reported to the parent, which raises it
        results.put(RuntimeError(f"the attack failed: {exc!r}"))
        return
    results.put(counts)


def _start_attacker(
    url: str, attack: Attack, seconds: float
) -> tuple[BaseProcess, Queue]:
    """The attack in a process of its own, so it holds no lock the clients need.

    Forked, so `attack` may be a closure; started before the client threads.
    """
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    process = context.Process(
        target=_attack_loop, args=(url, attack, seconds, results), daemon=True
    )
    process.start()
    return process, results


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
    before = os.sched_getaffinity(0)
    _, clients = _cpus()
    os.sched_setaffinity(0, clients)  # inherited by the threads and the attacker
    try:
        attacker = _start_attacker(server.url, attack, seconds) if attack else None
        stop = threading.Event()
        helpers = [
            threading.Thread(target=_probe, args=(server.url, stop, figures)),
            threading.Thread(
                target=_legit, args=(server.url, image, stop, figures, api_key)
            ),
        ]
        for thread in helpers:
            thread.start()
    finally:
        os.sched_setaffinity(0, before)
    time.sleep(seconds)
    stop.set()
    for thread in helpers:
        thread.join(timeout=30)
    if attacker is not None:
        process, results = attacker
        outcome = results.get(timeout=60)
        process.join(timeout=30)
        if isinstance(outcome, Exception):
            raise outcome
        figures.attack.update(outcome)
    figures.peak_rss_mib = peak_rss_mib(server.pid)
    return figures
