"""Soak and overload runs against a real `mnist-serve` (started here) on 127.0.0.1.

From serving/ after `make -C serving install` (or `make -C serving soak`):

    .venv/bin/python ../benchmarks/serving/soak.py                # 300 s soak
    .venv/bin/python ../benchmarks/serving/soak.py --overload     # load shedding

Soak: --concurrency clients mix /predict (45%), /predict-drawing (45%) and
/predict-batch (10%, --batch images) for --duration seconds. Prints requests,
failures and p50/p95/p99 per endpoint and overall, the server's RSS (VmRSS of
/proc/<pid>/status) every --rss-every seconds, and RSS growth from --warmup
(the baseline) to the end. Exits 1 on any failure or growth above --max-growth %.

Overload: MAX_CONCURRENCY=--max-concurrency and far more clients than that,
half of them sending batches, which hold a slot while they wait for the one
batch interpreter. Every answer must be 200, 503 or 429 within --timeout, the
server must stay up, shed load (some 503s) and, once the load stops, answer
every request again. Exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from bench_serving import (
    BOUNDARY,
    DEFAULT_MODEL,
    FIXTURES,
    free_port,
    multipart,
    png_bytes,
    server,
)

MIB = 1024 * 1024
PREDICT, DRAWING, BATCH = "/predict", "/predict-drawing", "/predict-batch"
SOAK_MIX = (PREDICT,) * 9 + (DRAWING,) * 9 + (BATCH,) * 2
OVERLOAD_MIX = (PREDICT, DRAWING, BATCH, BATCH)
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
JSON = {"Content-Type": "application/json"}
SHED = {200, 429, 503}  # what an overloaded server may answer


class Requests:
    """Request bodies built once (the clients only send them), cycled through."""

    def __init__(self, pngs: list[bytes], batch: int) -> None:
        self.bodies = {
            PREDICT: [multipart("file", [png]) for png in pngs],
            DRAWING: [
                json.dumps(
                    {"image": "data:image/png;base64," + base64.b64encode(png).decode()}
                ).encode()
                for png in pngs
            ],
            BATCH: [
                multipart("files", [pngs[(i + j) % len(pngs)] for j in range(batch)])
                for i in range(0, len(pngs), 25)
            ],
        }

    def send(
        self, client: httpx.AsyncClient, kind: str, n: int
    ) -> Awaitable[httpx.Response]:
        """The request coroutine for endpoint `kind`, with body `n` (cycled)."""
        bodies = self.bodies[kind]
        headers = JSON if kind == DRAWING else MULTIPART
        return client.post(kind, content=bodies[n % len(bodies)], headers=headers)


@dataclass
class Record:
    """Latencies (ms) and outcomes per endpoint."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, kind: str, ms: float, outcome: str) -> None:
        self.latencies.setdefault(kind, []).append(ms)
        self.outcomes.setdefault(kind, Counter())[outcome] += 1


def outcome_of(response: httpx.Response, kind: str) -> str:
    """The status code, or 'bad-body' for a 200 that is not a prediction."""
    if response.status_code != 200:
        return str(response.status_code)
    body = response.json()
    ok = "predictions" in body if kind == BATCH else "digit" in body
    return "200" if ok else "bad-body"


@dataclass
class Load:
    """What every client shares: the connection pool, the bodies, the mix, the end."""

    client: httpx.AsyncClient
    requests: Requests
    mix: tuple[str, ...]
    until: float
    record: Record

    async def client_loop(self, offset: int) -> None:
        """One client: request after request until `until` (monotonic)."""
        n = offset
        while time.monotonic() < self.until:
            kind = self.mix[n % len(self.mix)]
            started = time.perf_counter()
            try:
                response = await self.requests.send(self.client, kind, n)
                outcome = outcome_of(response, kind)
            except httpx.TimeoutException:
                outcome = "timeout"
            except (httpx.HTTPError, ValueError) as exc:
                outcome = f"error {type(exc).__name__}"
            self.record.add(kind, (time.perf_counter() - started) * 1000, outcome)
            n += 1


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` in MiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MIB
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


async def sample_rss(pid: int, every: float, start: float, out: list) -> None:
    """Append (seconds since start, RSS MiB) every `every` s until cancelled."""
    while True:
        out.append((round(time.monotonic() - start, 1), round(rss_mib(pid), 2)))
        await asyncio.sleep(every)


async def drive(
    url: str,
    args: argparse.Namespace,
    requests: Requests,
    mix: tuple[str, ...],
    pid: int,
) -> tuple[Record, list]:
    """Run the clients for args.duration s while sampling the server's RSS."""
    record, rss = Record(), []
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=args.timeout
    ) as client:
        start = time.monotonic()
        sampler = asyncio.create_task(sample_rss(pid, args.rss_every, start, rss))
        load = Load(client, requests, mix, start + args.duration, record)
        await asyncio.gather(
            *(load.client_loop(i * 7) for i in range(args.concurrency))
        )
        sampler.cancel()
        rss.append((round(time.monotonic() - start, 1), round(rss_mib(pid), 2)))
    return record, rss


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max in ms."""
    if not values:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(max(values), 2),
    }


def endpoint_figures(record: Record, ok: set[int]) -> dict[str, dict]:
    """Requests, failures, outcomes and percentiles per endpoint and overall."""
    allowed = {str(code) for code in ok}
    figures = {}
    for kind in [*sorted(record.latencies), "overall"]:
        if kind == "overall":
            latencies = [ms for values in record.latencies.values() for ms in values]
            outcomes = sum(record.outcomes.values(), Counter())
        else:
            latencies, outcomes = record.latencies[kind], record.outcomes[kind]
        figures[kind] = {
            "requests": sum(outcomes.values()),
            "failures": sum(n for o, n in outcomes.items() if o not in allowed),
            "outcomes": dict(outcomes),
            **percentiles(latencies),
        }
    return figures


def rss_figures(samples: list, warmup: float, max_growth: float) -> dict:
    """RSS at the first sample after `warmup` vs the last one, and the growth %."""
    after = [mib for at, mib in samples if at >= warmup] or [samples[-1][1]]
    base, end = after[0], samples[-1][1]
    growth = (end - base) / base * 100
    return {
        "samples": samples,
        "baseline_mib": base,
        "end_mib": end,
        "growth_pct": round(growth, 2),
        "max_growth_pct": max_growth,
        "warmup_s": warmup,
    }


async def recovery(url: str, requests: Requests, limit: float) -> dict:
    """After an overload: seconds until every endpoint answers 200 in a row."""
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while time.monotonic() - start < limit:
            answers = []
            for n, kind in enumerate((PREDICT, DRAWING, BATCH) * 3):
                try:
                    answers.append(
                        outcome_of(await requests.send(client, kind, n), kind)
                    )
                except httpx.HTTPError as exc:
                    answers.append(type(exc).__name__)
            if set(answers) == {"200"}:
                return {"ok": True, "seconds": round(time.monotonic() - start, 2)}
            await asyncio.sleep(0.2)
    return {"ok": False, "seconds": limit, "last": answers}


def problems_of(figures: dict) -> list[str]:
    """Why the run failed; empty when it passed."""
    overall = figures["endpoints"]["overall"]
    problems = []
    if overall["failures"]:
        problems.append(f"{overall['failures']} failed requests")
    if not overall["requests"]:
        problems.append("no requests were made")
    if not figures["server_alive"]:
        problems.append("the server died")
    if figures["mode"] == "soak":
        rss = figures["rss"]
        if rss["growth_pct"] > rss["max_growth_pct"]:
            problems.append(
                f"RSS grew {rss['growth_pct']:.1f}% after warm-up "
                f"(limit {rss['max_growth_pct']}%)"
            )
    else:
        if not overall["outcomes"].get("503"):
            problems.append(
                "no 503: the overload was not reached; raise --concurrency "
                "or lower --max-concurrency"
            )
        if not figures["recovery"]["ok"]:
            problems.append(f"no recovery after the load: {figures['recovery']}")
    return problems


def report(figures: dict) -> None:
    """Print the figures as a table."""
    mode = figures["mode"]
    print(
        f"{mode}: {figures['duration_s']} s, {figures['concurrency']} clients, "
        f"MAX_CONCURRENCY {figures['max_concurrency']}, batches of {figures['batch']}"
    )
    print(
        f"{'endpoint':<18}{'requests':>10}{'failures':>10}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}  outcomes"
    )
    for kind, row in figures["endpoints"].items():
        print(
            f"{kind:<18}{row['requests']:>10}{row['failures']:>10}{row['p50_ms']:>9.2f}"
            f"{row['p95_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['max_ms']:>9.1f}  "
            f"{row['outcomes']}"
        )
    rss = figures["rss"]
    samples = ", ".join(f"{at:g}s {mib:.1f}" for at, mib in rss["samples"])
    print(f"server RSS (MiB): {samples}")
    if mode == "soak":
        print(
            f"RSS at {rss['warmup_s']:g} s {rss['baseline_mib']:.1f} MiB -> end "
            f"{rss['end_mib']:.1f} MiB: growth {rss['growth_pct']:+.2f}% "
            f"(limit {rss['max_growth_pct']:g}%)"
        )
    else:
        print(
            f"server alive: {figures['server_alive']}; recovery: {figures['recovery']}"
        )
    print(
        f"({figures['cpu_count']} CPUs; 1-minute load average {figures['load_before']} "
        f"before, {figures['load_after']} after: the clients share the machine)"
    )
    problems = figures["problems"]
    print("PASS" if not problems else "FAIL: " + "; ".join(problems))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options; the defaults depend on the mode."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--overload", action="store_true", help="load-shedding run")
    parser.add_argument("--duration", type=float, help="seconds (300; overload 15)")
    parser.add_argument("--concurrency", type=int, help="clients (16; overload 64)")
    parser.add_argument(
        "--max-concurrency", type=int, help="server MAX_CONCURRENCY (1024; overload 4)"
    )
    parser.add_argument("--warmup", type=float, default=60, help="RSS baseline at (s)")
    parser.add_argument("--max-growth", type=float, default=10.0, help="RSS growth %")
    parser.add_argument("--rss-every", type=float, default=5.0, help="RSS sampling s")
    parser.add_argument("--batch", type=int, default=32, help="images per batch")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request s")
    parser.add_argument(
        "--rate-limit",
        default="",
        help="RATE_LIMIT_ANONYMOUS, e.g. 600/minute; empty=off",
    )
    parser.add_argument("--model-uri", default=str(DEFAULT_MODEL))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    overload = args.overload
    args.duration = args.duration or (15.0 if overload else 300.0)
    args.concurrency = args.concurrency or (64 if overload else 16)
    args.max_concurrency = args.max_concurrency or (4 if overload else 1024)
    return args


def main(argv: list[str] | None = None) -> int:
    """Start the server, run the mode, print (and write) the figures; 1 on failure."""
    args = parse_args(argv)
    mode = "overload" if args.overload else "soak"
    sample = np.load(FIXTURES / "mnist_test_sample.npz")
    requests = Requests([png_bytes(image) for image in sample["images"]], args.batch)
    env = {
        "MAX_CONCURRENCY": str(args.max_concurrency),
        "RATE_LIMIT_ANONYMOUS": args.rate_limit,
        "LOG_LEVEL": "WARNING",  # the audit lines of 100k+ requests are not the point
    }
    figures: dict = {
        "mode": mode,
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "max_concurrency": args.max_concurrency,
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "load_before": round(os.getloadavg()[0], 2),
    }
    mix = OVERLOAD_MIX if args.overload else SOAK_MIX
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_file = Path(tmp) / "server.log"
        with server(args.model_uri, port, log_file, env) as (proc, _):
            record, rss = asyncio.run(drive(url, args, requests, mix, proc.pid))
            figures["server_alive"] = proc.poll() is None
            if args.overload and figures["server_alive"]:
                figures["recovery"] = asyncio.run(recovery(url, requests, 15))
    figures["load_after"] = round(os.getloadavg()[0], 2)
    figures["endpoints"] = endpoint_figures(record, SHED if args.overload else {200})
    figures["rss"] = rss_figures(rss, args.warmup, args.max_growth)
    figures["problems"] = problems_of(figures)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
