"""The serving image at the pod's limits, driven by wrk: /predict at 32 connections.

Run from the repository root after `make image` and `make -C serving install`
(wrk and Docker from Debian; `make bench-container` does both):

    serving/.venv/bin/python benchmarks/serving/bench_container.py

The container runs as the Kubernetes pod runs it: read-only root, uid 10001,
every capability dropped, no new privileges, a tmpfs at /tmp, --memory 512m and
--cpus 0.5 (the pod's limits), the fixture model mounted read-only at MODEL_URI
and the API keys in a mounted file. wrk sends a 28x28 PNG to /predict
(multipart, field `file`) with the key, on 32 connections, after a warm-up.
Prints requests/s, p50/p99 and errors of each run, and the container's memory.
The rate limit is off: it is per client, and wrk is one client.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from bench_serving import FIXTURES, multipart, png_bytes, run_wrk, wrk_script

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "bench-key"
TARGET_RPS = 750  # the figure to reach at --cpus 0.5, with 0 errors
POD = [
    "--read-only", "--user", "10001:10001", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
    "--tmpfs", "/tmp",  # noqa: S108 - the pod's emptyDir
    "--memory", "512m",
]  # fmt: skip


def docker(*args: str) -> str:
    """The docker CLI's stdout; exits with its stderr on failure."""
    command = ["docker", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"docker {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def start(image: str, cpus: str, secret: Path) -> tuple[str, str]:
    """Start the pod-like container; its name and base URL once ready."""
    name = f"mnist-serving-bench-{int(time.time())}"
    docker(
        "run", "--detach", "--name", name, *POD, "--cpus", cpus,
        "-v", f"{FIXTURES / 'model'}:/models:ro",
        "-v", f"{secret}:/var/run/secrets/mnist-serving:ro",
        "-e", "MODEL_URI=/models/mnist_cnn.tflite",
        "-e", "API_KEYS_FILE=/var/run/secrets/mnist-serving/api_keys",
        "-e", "RATE_LIMIT_PER_MINUTE=0", "-e", "RATE_LIMIT=",  # either name: off
        "--publish", "127.0.0.1::8000", image,
    )  # fmt: skip
    port = docker("port", name, "8000/tcp").splitlines()[0].rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return name, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    logs = docker("logs", name)
    docker("rm", "--force", name)
    sys.exit(f"the container was not ready in 60 s:\n{logs}")


def main() -> None:
    version = tomllib.loads((ROOT / "serving/pyproject.toml").read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image", default=f"mnist-serving:{version['project']['version']}"
    )
    parser.add_argument("--cpus", default="0.5", help="docker run --cpus (the pod's)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")

    digit = np.load(FIXTURES / "mnist_test_sample.npz")["images"][0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        secret = work / "secret"
        secret.mkdir(mode=0o755)
        (secret / "api_keys").write_text(API_KEY)
        (secret / "api_keys").chmod(0o444)
        script = wrk_script(work, "/predict", multipart("file", [png_bytes(digit)]))
        with script.open("a") as lua:
            lua.write(f'wrk.headers["X-API-Key"] = "{API_KEY}"\n')
        name, url = start(args.image, args.cpus, secret)
        try:
            run_wrk(url, script, args.connections, 3)  # warm-up
            runs = [
                run_wrk(url, script, args.connections, args.seconds)
                for _ in range(args.repeat)
            ]
            memory = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", name)
        finally:
            docker("rm", "--force", name)

    print(
        f"{args.image}, --cpus {args.cpus} --memory 512m, /predict multipart, "
        f"{args.connections} connections, {args.repeat} x {args.seconds} s:"
    )
    for run in runs:
        print(
            f"  {run['rps']:.0f} req/s, p50 {run['p50_ms']:.1f} ms, "
            f"p99 {run['p99_ms']:.1f} ms, errors {run['errors']} of {run['requests']}"
        )
    worst = min(run["rps"] for run in runs)
    errors = sum(run["errors"] for run in runs)
    met = worst >= TARGET_RPS and errors == 0
    print(
        f"  memory after the runs: {memory}\n"
        f"  target >= {TARGET_RPS} req/s with 0 errors: "
        f"{'met' if met else 'NOT met'} (lowest run {worst:.0f} req/s, {errors} errors)"
    )


if __name__ == "__main__":
    main()
