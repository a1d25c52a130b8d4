"""The serving image, run as the Kubernetes pod runs it, through its HTTP API only.

Read-only root filesystem, uid 10001, every capability dropped, no new
privileges, a tmpfs at /tmp, 512 MiB and half a CPU (the pod's limits), the
model mounted read-only at MODEL_URI and the API keys in a mounted file, as the
Secret provides them. The image is `make image`'s, built once per session.
"""

from __future__ import annotations

import subprocess
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from attack_cases import ALLOWED, CASES, send
from attack_harness import measure
from conftest import MODEL_ROOT, jpeg, png, require_tool
from serve_process import free_port
from test_attacks import MAX_LIVE_MS, MAX_RSS_MIB
from test_rolling_restart import Traffic, start_nginx

# The first test also waits for `make image` (minutes on a cold machine).
pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]
SERVING = Path(__file__).resolve().parents[1]
ROOT = SERVING.parent
API_KEY = "container-test-key"
MODEL_URI = "/models/mnist_cnn.tflite"  # the versioned folder of the export
NO_RATE_LIMIT = {"RATE_LIMIT": ""}
# The request limits of k8s/base/params.env (the attack cases run against them).
POD_LIMITS = {
    "MAX_CONCURRENCY": "32",
    "MAX_BODY_BYTES": "2097152",
    "MAX_BATCH_IMAGES": "256",
}
POD = [
    "--read-only",
    "--user", "10001:10001",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
    "--tmpfs", "/tmp",  # noqa: S108 - the pod's emptyDir at /tmp
    "--memory", "512m",
    "--cpus", "0.5",
]  # fmt: skip


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    """Run the docker CLI; its stdout (a failure shows stderr)."""
    command = [require_tool("docker", "docker.io"), *args]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


@pytest.fixture(scope="session")
def image() -> str:
    """`make image` at the repository root (once per session): the version tag."""
    info = [require_tool("docker", "docker.io"), "info"]
    if subprocess.run(info, capture_output=True, check=False).returncode:
        pytest.fail("the Docker daemon is not running: `make system-deps` as root")
    build = subprocess.run(
        [require_tool("make", "make"), "-C", str(ROOT), "image"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    project = tomllib.loads((SERVING / "pyproject.toml").read_text())["project"]
    return f"mnist-serving:{project['version']}"


@dataclass
class Pod:
    """One running serving container, published on a loopback port."""

    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The container's main process (mnist-serve) as the host sees it."""
        return int(self.inspect("{{.State.Pid}}"))

    def logs(self) -> str:
        command = [require_tool("docker", "docker.io"), "logs", self.name]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        return result.stdout + result.stderr

    def inspect(self, template: str) -> str:
        return docker("inspect", "--format", template, self.name)

    def wait_ready(self, limit: float = 60) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.inspect("{{.State.Running}}") == "true", self.logs()
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready in {limit} s:\n{self.logs()}")


@dataclass
class Pods:
    """Starts pods from one image; removes every one it started."""

    image: str
    secret: Path
    names: list[str] = field(default_factory=list)

    def start(
        self,
        *,
        model: bool = True,
        keys: bool = True,
        port: int | None = None,
        host_network: bool = False,
        **env: str,
    ) -> Pod:
        name = f"mnist-serving-test-{uuid.uuid4().hex[:10]}"
        # No rate limit: every request here comes from one client (the limit
        # itself is tested in-process).
        mounts, settings = [], {"MODEL_URI": MODEL_URI, **NO_RATE_LIMIT, **env}
        if model:
            mounts += ["-v", f"{MODEL_ROOT}:/models:ro"]
        if keys:
            mounts += ["-v", f"{self.secret}:/var/run/secrets/mnist-serving:ro"]
            settings["API_KEYS_FILE"] = "/var/run/secrets/mnist-serving/api_keys"
        env_args = [arg for k, v in settings.items() for arg in ("-e", f"{k}={v}")]
        if host_network:  # clients' own addresses reach the app (no docker-proxy)
            port = port or free_port()
            docker(
                "run", "--detach", "--name", name, *POD, *mounts, *env_args,
                "--network", "host", self.image,
                "--host", "127.0.0.1", "--port", str(port), "--graceful-timeout", "20",
            )  # fmt: skip
            self.names.append(name)
            return Pod(name, port)
        publish = f"127.0.0.1:{port or ''}:8000"
        docker(
            "run", "--detach", "--name", name, *POD, *mounts, *env_args,
            "--publish", publish, self.image,
        )  # fmt: skip
        self.names.append(name)
        address = docker("port", name, "8000/tcp").splitlines()[0]
        return Pod(name, int(address.rsplit(":", 1)[1]))

    def remove_all(self) -> None:
        for name in self.names:
            docker("rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def pods(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pods]:
    """A pod factory; the API key file is readable by uid 10001, as the Secret's."""
    secret = tmp_path_factory.mktemp("secret")
    (secret / "api_keys").write_text(API_KEY)
    (secret / "api_keys").chmod(0o444)
    secret.chmod(0o755)
    factory = Pods(image, secret)
    yield factory
    factory.remove_all()


@pytest.fixture(scope="module")
def pod(pods: Pods) -> Pod:
    """One pod serving the fixture model, ready."""
    started = pods.start()
    started.wait_ready()
    return started


def predict(client: httpx.Client, image_png: bytes) -> httpx.Response:
    return client.post(
        "/predict",
        files={"file": ("digit.png", image_png, "image/png")},
        headers={"X-API-Key": API_KEY},
    )


def test_ready_and_answers_only_with_a_key_from_the_mounted_file(pod, digit_png):
    with httpx.Client(base_url=pod.url, timeout=10) as client:
        assert client.get("/health/ready").status_code == 200
        assert client.get("/health/live").status_code == 200
        assert predict(client, digit_png).json()["digit"] == 7
        anonymous = client.post("/predict", files={"file": ("d.png", digit_png)})
    assert anonymous.status_code == 401


def test_predictions_on_the_mnist_sample_match_the_in_process_service(
    pod, client, sample
):
    images = [png(image) for image in sample["images"]]
    with httpx.Client(base_url=pod.url, timeout=10) as container:
        served = [predict(container, body).json() for body in images]
    local = [
        client.post("/predict", files={"file": ("d.png", body, "image/png")}).json()
        for body in images
    ]
    assert len(served) == 200
    assert [s["digit"] for s in served] == [c["digit"] for c in local]
    np.testing.assert_allclose(
        [s["probabilities"] for s in served],
        [c["probabilities"] for c in local],
        rtol=0,
        atol=1e-6,
    )
    assert np.mean([s["digit"] for s in served] == sample["labels"]) > 0.95


def test_docker_healthcheck_reports_healthy(pod):
    deadline = time.monotonic() + 60  # --interval=15s: the first check after 15 s
    status = ""
    while time.monotonic() < deadline:
        status = pod.inspect("{{.State.Health.Status}}")
        if status == "healthy":
            break
        time.sleep(1)
    assert status == "healthy", pod.inspect("{{json .State.Health}}")


@dataclass
class Load:
    """Client threads posting /predict until stopped; (sent, status) of each."""

    url: str
    png: bytes
    results: list[tuple[float, int | str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    status: int | str = predict(client, self.png).status_code
                except httpx.HTTPError as exc:
                    status = repr(exc)
                self.results.append((sent, status))


def test_docker_stop_under_load_drains_and_exits_0(pods, digit_png):
    delay = 2.0
    pod = pods.start(SHUTDOWN_DELAY_SECONDS=str(delay))
    pod.wait_ready()
    load = Load(pod.url, digit_png)
    threads = [threading.Thread(target=load.run) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    stopped = time.monotonic()
    stop = subprocess.Popen(
        [require_tool("docker", "docker.io"), "stop", "-t", "30", pod.name]
    )
    with httpx.Client(base_url=pod.url, timeout=2) as probe:
        while probe.get("/health/ready").status_code != 503:
            assert time.monotonic() - stopped < 5, "readiness never turned 503"
            time.sleep(0.02)
    time.sleep(delay * 0.6)  # clients keep sending until the endpoint is gone
    load.stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert stop.wait(timeout=60) == 0
    took = time.monotonic() - stopped

    statuses = {status for _, status in load.results}
    in_drain = [status for sent, status in load.results if sent > stopped]
    assert statuses == {200}, f"load saw {statuses}"
    assert len(in_drain) >= 10, "too few requests were sent while it drained"
    assert pod.inspect("{{.State.ExitCode}}") == "0", pod.logs()
    assert took < delay + 10, f"docker stop took {took:.1f} s"
    print(  # noqa: T201 - the figures, shown with pytest -s
        f"docker stop under load: exit 0 after {took:.1f} s; {len(load.results)} "
        f"requests, {len(in_drain)} while draining, all 200"
    )
    assert "Application shutdown complete." in pod.logs()


def test_missing_model_keeps_running_not_ready_with_the_reason_in_its_log(pods):
    pod = pods.start(model=False)
    deadline = time.monotonic() + 60
    while True:
        try:
            live = httpx.get(f"{pod.url}/health/live", timeout=2)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, pod.logs()
            time.sleep(0.2)
    time.sleep(3)  # it stays up: no crash loop
    ready = httpx.get(f"{pod.url}/health/ready", timeout=2)
    assert live.status_code == 200
    assert ready.status_code == 503
    assert pod.inspect("{{.State.Running}}") == "true"
    assert MODEL_URI in pod.logs()


def test_rolling_restart_of_two_pods_behind_nginx_fails_no_request(
    pods, tmp_path, digit_png
):
    require_tool("/usr/sbin/nginx", "nginx")
    env = {"SHUTDOWN_DELAY_SECONDS": "0.5"}  # no API keys: the traffic sends none
    first, second = pods.start(keys=False, **env), pods.start(keys=False, **env)
    for pod in (first, second):
        pod.wait_ready()
    nginx_port = free_port()
    nginx = start_nginx(tmp_path, nginx_port, first.port, second.port)
    traffic = Traffic(f"http://127.0.0.1:{nginx_port}", digit_png)
    threads = [threading.Thread(target=traffic.run) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        for old in (first, second):
            time.sleep(0.5)  # the restarted pod takes traffic again
            docker("stop", "-t", "30", old.name)
            assert old.inspect("{{.State.ExitCode}}") == "0", old.logs()
            docker("rm", old.name)
            pods.start(keys=False, port=old.port, **env).wait_ready()
        time.sleep(1.0)
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        nginx.terminate()
        nginx.wait(timeout=10)
    print(  # noqa: T201 - the figures, shown with pytest -s
        f"rolling restart of two pods: {traffic.outcomes['ok']} requests succeeded, "
        f"{len(traffic.failures)} failed"
    )
    assert traffic.failures == []
    assert traffic.outcomes["ok"] >= 100


def test_feedback_store_works_in_the_slimmed_image(pods, sample):
    """The store's packages as the image ships them (ORM, Cython parts and
    Pillow's extra codecs removed): records, feedback, review items, a JPEG.

    SQLite on the pod's /tmp here; the image's default is DATABASE_URL=none.
    """
    off = pods.start(keys=False)
    off.wait_ready()
    assert httpx.get(f"{off.url}/health").json()["feedback_store"] == "off"
    pod = pods.start(
        keys=False, DATABASE_URL="sqlite:////tmp/feedback.db", REVIEW_AUTO_APPROVE="1"
    )
    pod.wait_ready()
    with httpx.Client(base_url=pod.url, timeout=10) as client:
        answers = [
            client.post("/predict", content=data, headers={"content-type": kind})
            for data, kind in (
                (png(sample["images"][0]), "image/png"),
                (jpeg(sample["images"][1]), "image/jpeg"),
            )
        ]
        assert [a.status_code for a in answers] == [200, 200], answers[-1].text
        assert [a.json()["digit"] for a in answers] == [7, 2]
        body = {"request_id": answers[1].json()["request_id"], "label": 2}
        assert client.post("/feedback", json=body).json()["status"] == "recorded"
        waiting = client.get("/review/items").json()
        assert waiting["pending"] == 1  # the PNG's prediction, still unlabelled
        assert len(waiting["items"][0]["guesses"]) == 3
        assert client.get("/health").json()["feedback_store"] == "ok"


@pytest.mark.attack
@pytest.mark.parametrize("case", sorted(CASES))
def test_attack_on_the_pod_costs_little(pods, sample, case):
    """The attack suite's cases against the image at the pod's limits.

    The same bounds as tests/test_attacks.py, with Docker's 512 MiB and half a
    CPU instead of the harness's cgroup; the pod shares the host's network so
    that the attacker's address (127.0.0.2) is not hidden behind docker-proxy.
    """
    pod = pods.start(host_network=True, **POD_LIMITS)
    pod.wait_ready()
    requests = CASES[case]()

    def attack(url: str) -> list[int]:
        return send(url, requests, API_KEY)

    figures = measure(pod, attack, png(sample["images"][0]), 3.0, api_key=API_KEY)
    assert figures.attack, "the attack sent nothing"
    assert set(figures.attack) <= ALLOWED.get(case, set(range(400, 500)))
    assert pod.inspect("{{.State.Running}} {{.State.OOMKilled}}") == "true false"
    assert figures.peak_rss_mib < MAX_RSS_MIB, figures
    assert figures.live_failures == 0, figures
    assert figures.live_max_ms < MAX_LIVE_MS, figures
    assert figures.legit_failed == [], figures.legit_failed[:5]
    assert figures.legit_ok > 0
