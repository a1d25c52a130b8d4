"""Serving benchmarks: a real `mnist-serve` (uvicorn) on 127.0.0.1 driven by wrk.

Run from the repository root after `make -C serving install` (wrk from Debian):

    serving/.venv/bin/python benchmarks/serving/bench_serving.py

Prints, for one uvicorn worker:
  * ready time: from process start to the first 200 from /health/ready;
  * /predict with a 28x28 PNG at 32 connections, multipart and as the raw body:
    requests/s, p99, errors;
  * /predict from a single client: p50;
  * /predict-batch with BATCH images per request: images/s;
  * the server's CPU time per request in each run (user + system, from /proc):
    on a busy machine it shows what the service itself costs;
  * the size of a fresh runtime install's site-packages (serving/requirements.lock
    plus the package, no test tools; and with the [azure] extra, as in the
    container), unless --skip-size.
No API keys are set and anonymous callers are not rate-limited (the default),
so wrk, one client, is not throttled. Audit log lines are written to a file,
as in production.
--repeat N runs the three wrk measurements N times on the same server and
prints each figure's range (the machine is shared: single runs are noisy).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SERVING = ROOT / "serving"
FIXTURES = SERVING / "tests" / "fixtures"
DEFAULT_MODEL = FIXTURES / "model" / "mnist_cnn.tflite"
BOUNDARY = "----mnistbenchboundary"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of a uint8 image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(field: str, images: list[bytes]) -> bytes:
    """A multipart/form-data body with one part per image."""
    parts = []
    for index, data in enumerate(images):
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="d{index}.png"\r\nContent-Type: image/png\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def wrk_script(
    workdir: Path,
    path: str,
    body: bytes,
    content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
) -> Path:
    """A wrk Lua script that POSTs `body` (multipart unless told) to `path`."""
    name = f"{len(body)}-{content_type.split('/', maxsplit=1)[0]}"
    body_file = workdir / f"body{name}.bin"
    body_file.write_bytes(body)
    script = workdir / f"post{name}.lua"
    script.write_text(
        f'local f = io.open("{body_file}", "rb")\n'
        'wrk.body = f:read("*all")\nf:close()\n'
        f'wrk.method = "POST"\nwrk.path = "{path}"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )
    return script


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    """Run wrk (one thread) and parse requests/s, latency percentiles, errors."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        result[f"p{pct}_ms"] = float(match.group(1)) * UNITS[match.group(2)]
    total = re.search(r"(\d+) requests in", out)
    result["requests"] = int(total.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    result["errors"] = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0
    )
    return result


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    proc: subprocess.Popen, url: str, script: Path, connections: int, seconds: int
) -> dict:
    """run_wrk, plus the server's CPU microseconds per request during the run."""
    before = cpu_seconds(proc.pid)
    result = run_wrk(url, script, connections, seconds)
    after = cpu_seconds(proc.pid)
    if before is not None and after is not None and result["requests"]:
        result["server_cpu_us"] = round((after - before) / result["requests"] * 1e6)
    return result


@contextmanager
def server(
    model_uri: str, port: int, log_file: Path, extra_env: dict[str, str] | None = None
):
    """A running mnist-serve; yields (process, seconds until ready)."""
    env = {
        **os.environ,
        "MODEL_URI": model_uri,
        "RATE_LIMIT": "",
        "MAX_CONCURRENCY": "1024",
        "SHUTDOWN_DELAY_SECONDS": "0",  # no load balancer to wait for
        **(extra_env or {}),
    }
    exe = Path(sys.executable).with_name("mnist-serve")
    with log_file.open("wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(exe), "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            ready = wait_ready(f"http://127.0.0.1:{port}/health/ready", started, proc)
            yield proc, ready
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def wait_ready(
    url: str, started: float, proc: subprocess.Popen, limit: float = 30
) -> float:
    """Seconds from `started` until `url` answers 200."""
    while time.perf_counter() - started < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"mnist-serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {limit} s")


def install_size(workdir: Path, lock: str) -> float:
    """MB of site-packages of a fresh runtime install from a serving lock file."""
    venv = workdir / f"venv-{lock}"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "-q"]
    subprocess.run(
        [*pip, "install", "--require-hashes", "--no-deps", "-r", str(SERVING / lock)],
        check=True,
    )
    subprocess.run([*pip, "install", "--no-deps", str(SERVING)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    total = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    return total / 1e6


def main() -> None:
    """Run every benchmark and print the figures (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-uri", default=str(DEFAULT_MODEL))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--skip-size", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    sample = np.load(FIXTURES / "mnist_test_sample.npz")
    images = [png_bytes(image) for image in sample["images"]]
    figures: dict[str, object] = {
        "cpu_count": os.cpu_count(),
        "load_before": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        with server(args.model_uri, port, work / "server.log") as (proc, ready):
            figures["ready_s"] = round(ready, 3)
            base = f"http://127.0.0.1:{port}"
            single = wrk_script(work, "/predict", multipart("file", images[:1]))
            raw = wrk_script(work, "/predict", images[0], "image/png")
            run_wrk(base, single, args.connections, 2)  # warm-up
            batch_images = (images * (args.batch // len(images) + 1))[: args.batch]
            batch = wrk_script(work, "/predict-batch", multipart("files", batch_images))
            runs = []
            for _ in range(args.repeat):
                run = {
                    "predict_32": measure(
                        proc, base, single, args.connections, args.seconds
                    ),
                    "predict_raw_32": measure(
                        proc, base, raw, args.connections, args.seconds
                    ),
                    "predict_1": measure(proc, base, single, 1, args.seconds),
                    "predict_batch": measure(proc, base, batch, 2, args.seconds),
                    "load": round(os.getloadavg()[0], 2),
                }
                result = run["predict_batch"]
                result["images_per_s"] = round(result["rps"] * args.batch, 1)
                result["batch"] = args.batch
                runs.append(run)
            figures["runs"] = runs
            figures.update(runs[-1])  # the single-run keys, as before
        if not args.skip_size:
            figures["site_packages_mb"] = round(
                install_size(work, "requirements.lock"), 1
            )
            figures["site_packages_azure_mb"] = round(
                install_size(work, "requirements-azure.lock"), 1
            )
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def _span(runs: list[dict], key: str, field: str, fmt: str) -> str:
    """`field` of `key` over the runs: one value, or min-max."""
    values = sorted(run[key][field] for run in runs)
    low, high = format(values[0], fmt), format(values[-1], fmt)
    return low if low == high else f"{low}-{high}"


def report(figures: dict) -> None:
    """Print the figures (ranges over the runs) next to their targets."""
    runs = figures.get("runs") or [figures]
    requests = sum(run["predict_32"]["requests"] for run in runs)
    errors = sum(run["predict_32"]["errors"] for run in runs)
    cpu = ""
    if all("server_cpu_us" in run["predict_32"] for run in runs):
        cpu = f", server CPU {_span(runs, 'predict_32', 'server_cpu_us', 'd')} us/req"
    batch = runs[0]["predict_batch"]["batch"]
    rows = [
        ("ready after start", f"{figures['ready_s']:.2f} s", "<= 2 s"),
        (
            "/predict multipart, 32 conn.",
            f"{_span(runs, 'predict_32', 'rps', '.0f')} req/s, "
            f"p99 {_span(runs, 'predict_32', 'p99_ms', '.1f')} ms, "
            f"errors {errors} of {requests}{cpu}",
            ">= 1500 req/s, p99 <= 50 ms, 0 errors",
        ),
        (
            "/predict raw PNG body, 32 conn.",
            f"{_span(runs, 'predict_raw_32', 'rps', '.0f')} req/s, "
            f"p99 {_span(runs, 'predict_raw_32', 'p99_ms', '.1f')} ms, "
            f"errors {sum(run['predict_raw_32']['errors'] for run in runs)}",
            ">= 2000 req/s",
        ),
        (
            "/predict, single client",
            f"p50 {_span(runs, 'predict_1', 'p50_ms', '.2f')} ms, "
            f"{_span(runs, 'predict_1', 'rps', '.0f')} req/s",
            "p50 <= 2 ms",
        ),
        (
            f"/predict-batch, {batch} per request",
            f"{_span(runs, 'predict_batch', 'images_per_s', '.0f')} images/s, "
            f"errors {sum(run['predict_batch']['errors'] for run in runs)}",
            ">= 10000 images/s",
        ),
    ]
    if "site_packages_mb" in figures:
        size = f"{figures['site_packages_mb']:.1f} MB"
        rows.append(("runtime site-packages", size, "<= 200 MB"))
        size = f"{figures['site_packages_azure_mb']:.1f} MB"
        rows.append(("  with the [azure] extra", size, "(the container's install)"))
    for name, value, target in rows:
        print(f"{name:<30} {value:<50} (target {target})")
    loads = ", ".join(str(run.get("load", "?")) for run in runs)
    print(
        f"({figures['cpu_count']} CPUs, {len(runs)} run(s); 1-minute load average "
        f"before {figures['load_before']}, after each run {loads}: other work on "
        "the machine lowers these figures)"
    )


if __name__ == "__main__":
    main()
