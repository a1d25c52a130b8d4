"""Attack figures: each case of serving's attack suite against a real mnist-serve.

Run from the repository root as root (the server runs in a 512 MiB memory
cgroup with 1024 file descriptors, as the pod does):

    serving/.venv/bin/python benchmarks/serving/attacks.py [--seconds 10]

For each case it prints the attack's status codes and rate, the server's peak
RSS, the slowest /health/live answer, and the legitimate client's requests/s
beside a baseline with no attack on the same server (target: >= 90% of it):
the median share over --repeat fresh servers, and each server's. On each
server, --windows baseline and attack windows alternate (baseline, attack,
attack, baseline, ...), so that a drift in the machine's speed, which is shared
and noisy, falls on both alike.
The server has a CPU of its own and the attacker runs at the lowest priority
(see attack_harness): in production the clients' CPUs are other machines'.

With --pod, every request goes through the pod's nginx (k8s/base/proxy/
nginx.conf, Debian's nginx) to a server with the pod's request limits
(k8s/base/params.env), as the Service's clients reach it; peak RSS is still
the app's. nginx runs on the clients' CPU, not the server's: in the pod it is a
container with a CPU limit of its own. The attacks on connections (header
floods, half-sent headers, slow bodies: attack_cases.PROXY_CASES) are run only
then, nginx being what stops them. Without it, clients talk to uvicorn
directly, as in the tests.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TESTS = Path(__file__).resolve().parents[2] / "serving" / "tests"
sys.path.insert(0, str(TESTS))

from attack_cases import CASES, PROXY_CASES, send  # noqa: E402
from attack_harness import (  # noqa: E402
    Attack,
    Figures,
    measure,
    pod_server,
    proxy_cpus,
)
from proxy import running_proxy  # noqa: E402
from serve_process import Server, free_port  # noqa: E402

KEY = "attack-benchmark-key-0123456789"
MODEL = str(TESTS / "fixtures" / "model" / "mnist_cnn.tflite")
# The request limits of k8s/base/params.env.
POD_LIMITS = {
    "MAX_CONCURRENCY": "32",
    "MAX_BODY_BYTES": "2097152",
    "MAX_BATCH_IMAGES": "256",
}


@dataclass(frozen=True)
class Proxied:
    """The app behind the pod's nginx: clients use nginx's URL."""

    url: str
    pid: int


@contextmanager
def target(workdir: Path, env: dict[str, str], pod: bool) -> Iterator[Server | Proxied]:
    """A fresh server in the pod's cgroup; with `pod`, behind the pod's nginx."""
    with pod_server(workdir, env) as server:
        if not pod:
            yield server
            return
        port = free_port()
        proxy = workdir / f"nginx-{port}"
        with running_proxy(proxy, port, server.port, cpus=proxy_cpus()):
            yield Proxied(f"http://127.0.0.1:{port}", server.pid)


def main() -> None:
    """Every case on fresh servers, baseline and attack windows alternating."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3, help="servers per case")
    parser.add_argument(
        "--windows", type=int, default=2, help="baseline/attack pairs per server"
    )
    parser.add_argument("--case", action="append", choices=sorted(CASES | PROXY_CASES))
    parser.add_argument("--pod", action="store_true", help="through the pod's nginx")
    args = parser.parse_args()
    names = args.case or sorted(CASES) + (sorted(PROXY_CASES) if args.pod else [])
    if not args.pod and set(names) & set(PROXY_CASES):
        parser.error(
            f"{sorted(set(names) & set(PROXY_CASES))} are the proxy's to stop "
            "(uvicorn has no header or body timeouts): add --pod"
        )
    sample = np.load(TESTS / "fixtures" / "mnist_test_sample.npz")
    buffer = io.BytesIO()
    Image.fromarray(sample["images"][0]).save(buffer, "PNG")
    image = buffer.getvalue()
    env = {"MODEL_URI": MODEL, "API_KEYS": KEY, "RATE_LIMIT": ""}
    if args.pod:
        env |= POD_LIMITS
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            runs = []
            attack = attack_of(name)
            for _ in range(args.repeat):
                with target(Path(tmp), env, args.pod) as server:
                    runs.append(
                        alternate(server, attack, image, args.seconds, args.windows)
                    )
            report(name, runs, args.seconds * args.windows)


def attack_of(name: str) -> Attack:
    """The case as a function of the base URL; requests are built once, here."""
    if name in PROXY_CASES:
        return PROXY_CASES[name]
    requests = CASES[name]()
    return lambda url: send(url, requests, KEY)


def alternate(
    server: Server | Proxied,
    attack: Attack,
    image: bytes,
    seconds: float,
    windows: int,
) -> tuple[Figures, Figures]:
    """`windows` baseline and attack windows in the order A B B A A B ..., summed."""
    base, attacked = [], []
    for index in range(windows):
        for attacking in (False, True) if index % 2 == 0 else (True, False):
            figures = measure(
                server, attack if attacking else None, image, seconds, api_key=KEY
            )
            (attacked if attacking else base).append(figures)
    return combine(base), combine(attacked)


def combine(windows: list[Figures]) -> Figures:
    """One server's windows as one: counts summed, worst bounds, mean rate."""
    return Figures(
        attack=sum((f.attack for f in windows), Counter()),
        peak_rss_mib=max(f.peak_rss_mib for f in windows),
        live_max_ms=max(f.live_max_ms for f in windows),
        live_failures=sum(f.live_failures for f in windows),
        legit_ok=sum(f.legit_ok for f in windows),
        legit_failed=[e for f in windows for e in f.legit_failed],
        legit_rps=statistics.fmean(f.legit_rps for f in windows),
    )


def report(name: str, runs: list[tuple[Figures, Figures]], seconds: float) -> None:
    """One line per case: the attack, the worst bounds, the median legit share.

    `seconds` is the time each server was attacked.
    """
    attack = sum((figures.attack for _, figures in runs), Counter())
    statuses = ", ".join(f"{k} x{v}" for k, v in sorted(attack.items()))
    rate = attack.total() / seconds / len(runs)
    shares = sorted(f.legit_rps / b.legit_rps for b, f in runs if b.legit_rps)
    median = statistics.median(shares) if shares else 0.0
    print(
        f"{name:<20} attack {statuses} ({rate:.0f}/s); peak RSS "
        f"{max(f.peak_rss_mib for _, f in runs):5.1f} MiB; /health/live max "
        f"{max(f.live_max_ms for _, f in runs):6.1f} ms; legit "
        f"{statistics.median(f.legit_rps for _, f in runs):7.1f} req/s, "
        f"{median:.0%} of baseline (runs {', '.join(f'{s:.0%}' for s in shares)}), "
        f"{sum(len(f.legit_failed) for _, f in runs)} failed"
    )


if __name__ == "__main__":
    main()
