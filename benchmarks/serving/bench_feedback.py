"""Prediction latency with the feedback store off and on (SQLite, PostgreSQL).

Run from the repository root after `make -C serving install` (wrk and Debian's
postgresql installed):

    serving/.venv/bin/python benchmarks/serving/bench_feedback.py

For each store (off, a SQLite file, a throwaway PostgreSQL cluster on
loopback) it starts a real `mnist-serve`, warms it up, then measures /predict
(one 28x28 PNG, multipart) with wrk from 1 client and from 32 connections, and
prints the p50 of each next to the store-off figure (target: within 10%). Every
prediction's input is stored (FEEDBACK_STORE_INPUTS=all), the most the store
writes. After each run it checks from /health that no record was lost and
counts the rows the server wrote (at least the requests wrk counted, warm-up
included: wrk leaves out answers still on their way when it stops). The stores
take turns within each repeat (--repeat N), so that the machine's other load
hits them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from bench_serving import (
    DEFAULT_MODEL,
    FIXTURES,
    free_port,
    multipart,
    png_bytes,
    run_wrk,
    server,
    wrk_script,
)
from mnist_serving.store.buffer import make_engine
from mnist_serving.store.schema import predictions
from sqlalchemy import func, select, text

TARGET = 0.10  # p50 with the store on at most 10% above the store off
STORES = ("off", "sqlite", "postgresql")


def _run(command: list[str | Path]) -> None:
    """Run a PostgreSQL tool; its output only when it fails."""
    subprocess.run(command, check=True, capture_output=True)


@contextmanager
def postgres_cluster(workdir: Path) -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback; yields its SQLAlchemy URL."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not binaries:
        sys.exit("PostgreSQL not found: apt-get install -y postgresql")
    pg = binaries[-1]
    root = workdir / "pg"
    root.mkdir()
    owner: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(root, "postgres", "postgres")
        owner = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    _run([*owner, pg / "initdb", "-D", data, "-U", "postgres", "--auth=trust"])
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    ctl = [*owner, pg / "pg_ctl", "-D", data, "-l", root / "log", "-w"]
    _run([*ctl, "-o", options, "start"])
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _run([*ctl, "-m", "fast", "stop"])


def rows_written(url: str) -> int:
    """Rows in the store's table (then emptied, so the next run starts alike)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            count = connection.execute(
                select(func.count()).select_from(predictions)
            ).scalar_one()
            connection.execute(text("DELETE FROM predictions"))
    finally:
        engine.dispose()
    return int(count)


def health(base: str) -> dict:
    """The server's /health answer."""
    with urllib.request.urlopen(f"{base}/health", timeout=5) as response:  # noqa: S310
        return json.loads(response.read())


def run_store(store: str, url: str, args: argparse.Namespace, work: Path) -> dict:
    """One server with `store`: p50 at 1 and at 32 connections, records written."""
    env = {"DATABASE_URL": url, "FEEDBACK_STORE_INPUTS": "all"}
    port = free_port()
    sample = np.load(FIXTURES / "mnist_test_sample.npz")
    script = wrk_script(
        work, "/predict", multipart("file", [png_bytes(sample["images"][0])])
    )
    base = f"http://127.0.0.1:{port}"
    with server(args.model_uri, port, work / f"{store}.log", env):
        warm = run_wrk(base, script, args.connections, 2)
        single = run_wrk(base, script, 1, args.seconds)
        many = run_wrk(base, script, args.connections, args.seconds)
        state = health(base)
    result = {
        "p50_1_ms": single["p50_ms"],
        "p50_32_ms": many["p50_ms"],
        "p99_32_ms": many["p99_ms"],
        "rps_32": many["rps"],
        "requests": warm["requests"] + single["requests"] + many["requests"],
        "errors": single["errors"] + many["errors"],
        "store": state["feedback_store"],
        "lost": state["feedback_records_lost"],
    }
    if url != "none":
        result["rows"] = rows_written(url)
    return result


def main() -> None:
    """Measure every store, --repeat times, and print medians against the target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-uri", default=str(DEFAULT_MODEL))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    # SIGTERM ends the run through the finally blocks: servers and cluster stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    load_before = round(os.getloadavg()[0], 2)
    runs: dict[str, list[dict]] = {store: [] for store in STORES}
    with tempfile.TemporaryDirectory() as tmp, postgres_cluster(Path(tmp)) as pg_url:
        work = Path(tmp)
        urls = {
            "off": "none",
            "sqlite": f"sqlite:///{work / 'feedback.db'}",
            "postgresql": pg_url,
        }
        for _ in range(args.repeat):
            for store in STORES:
                runs[store].append(run_store(store, urls[store], args, work))
    report(runs, args, load_before)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


def report(runs: dict[str, list[dict]], args: argparse.Namespace, load: float) -> None:
    """Median p50s per store, and each against the store-off figure."""
    median = {
        store: {
            key: statistics.median(run[key] for run in results)
            for key in ("p50_1_ms", "p50_32_ms", "p99_32_ms", "rps_32")
        }
        for store, results in runs.items()
    }
    off = median["off"]
    print(
        f"{'store':<11} {'p50 1 client':>14} {'p50 32 conn.':>14} {'p99 32':>9} "
        f"{'req/s 32':>9}  records (requests/rows/lost/errors)"
    )
    for store, figures in median.items():
        cells = []
        for key in ("p50_1_ms", "p50_32_ms"):
            change = figures[key] / off[key] - 1
            mark = "" if store == "off" else f" {change:+.0%}"
            cells.append(f"{figures[key]:.2f} ms{mark}")
        results = runs[store]
        records = "/".join(
            str(sum(run.get(key, 0) for run in results))
            for key in ("requests", "rows", "lost", "errors")
        )
        print(
            f"{store:<11} {cells[0]:>14} {cells[1]:>14} {figures['p99_32_ms']:>6.1f} ms"
            f" {figures['rps_32']:>9.0f}  {records}"
        )
    verdicts = []
    for store in ("sqlite", "postgresql"):
        worst = max(median[store][k] / off[k] - 1 for k in ("p50_1_ms", "p50_32_ms"))
        verdicts.append(
            f"{store} {'met' if worst <= TARGET else 'NOT met'} ({worst:+.0%})"
        )
    print(f"target: p50 within {TARGET:.0%} of the store off: " + ", ".join(verdicts))
    print(
        f"({os.cpu_count()} CPUs, {args.repeat} run(s) of {args.seconds} s per "
        f"figure, medians; 1-minute load average before {load}, after "
        f"{os.getloadavg()[0]:.2f}: other work on the machine makes these noisy)"
    )


if __name__ == "__main__":
    main()
