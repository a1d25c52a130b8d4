"""The pod's nginx in front of a real mnist-serve: the attacks that need no key.

Header floods, half-sent headers, slow bodies and a client holding many
connections are the proxy's to stop (uvicorn has no limits or timeouts for
them); each is run here against the very nginx.conf of k8s/base/proxy, with
nginx and the app each in a memory cgroup at its container's limit.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from attack_cases import CLOSED, SLOW_BODY, answer_of, attacker_socket
from attack_harness import (
    CgroupUnavailableError,
    memory_cgroup,
    oom_kills,
    peak_rss_mib,
    pod_server,
    proxy_cpus,
)
from conftest import png
from proxy import running_proxy
from serve_process import free_port

pytestmark = [pytest.mark.attack, pytest.mark.reliability]
MODEL = str(Path(__file__).parent / "fixtures/model/mnist_cnn.tflite")
HEADER_TIMEOUT = 5  # client_header_timeout and client_body_timeout of nginx.conf
PROXY_MEMORY = 96 * 1024 * 1024  # the proxy container's limit
MAX_RSS_MIB = 400  # the app's, as in the attack suite


@pytest.fixture(scope="module")
def pod(tmp_path_factory):
    """(proxy URL, server) as in the pod: nginx on one port, mnist-serve behind.

    Each in a memory cgroup at its container's limit (k8s/base/deployment.yaml),
    the app with the pod's file descriptors; after the module, neither may have
    been killed for memory nor the app have passed MAX_RSS_MIB.
    """
    if os.geteuid() != 0:
        pytest.fail(
            "the proxy cases cap nginx and mnist-serve with memory cgroups, which "
            "needs root: run them as root (make test does)"
        )
    tmp = tmp_path_factory.mktemp("pod")
    name = f"mnist-proxy-{os.getpid()}-{time.monotonic_ns()}"
    try:
        with (
            pod_server(tmp, {"MODEL_URI": MODEL}) as server,
            memory_cgroup(name, PROXY_MEMORY) as proxy_procs,
        ):
            port = free_port()
            with running_proxy(
                tmp / "nginx", port, server.port, proxy_procs, proxy_cpus()
            ) as nginx:
                yield f"http://127.0.0.1:{port}", server
                assert nginx.poll() is None, "nginx exited during the attacks"
                assert oom_kills(proxy_procs) == 0, "nginx was killed for memory"
                assert server.proc.poll() is None, "mnist-serve exited"
                assert peak_rss_mib(server.proc.pid) < MAX_RSS_MIB
    except CgroupUnavailableError as exc:
        pytest.fail(str(exc))


def slow_bodies(url: str, count: int) -> list[socket.socket]:
    """`count` requests that announce 100,000 bytes and send 4 of them."""
    socks = []
    for _ in range(count):
        sock = attacker_socket(url)
        sock.sendall(SLOW_BODY)
        socks.append(sock)
    return socks


def predict_statuses(url: str, image: bytes, count: int) -> list[int]:
    """The statuses of `count` predictions by a legitimate client (127.0.0.1)."""
    headers = {"content-type": "image/png"}
    with httpx.Client(timeout=30) as client:
        return [
            client.post(f"{url}/predict", content=image, headers=headers).status_code
            for _ in range(count)
        ]


def in_flight(server) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("mnist_http_requests_in"))
    return float(line.split()[-1])


def test_predictions_pass_through(pod, sample):
    url, _ = pod
    response = httpx.post(
        f"{url}/predict",
        content=png(sample["images"][0]),
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 200
    assert response.json()["digit"] == sample["labels"][0]


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"a" * (20 * 1024 * 1024) + b"\r\n",  # one 20 MiB header
        b"".join(b"X-%d: a\r\n" % i for i in range(100_000)),  # 100,000 headers
    ],
    ids=["20-MiB-header", "100k-headers"],
)
def test_header_floods_are_refused_without_a_key(pod, headers):
    url, server = pod
    rss_before = rss_mib(server.proc.pid)
    sock = attacker_socket(url)
    started = time.monotonic()
    try:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # nginx answered and closed before the flood was sent
    status = answer_of(sock)
    sock.close()
    assert status in (400, 414, 431, CLOSED)
    assert time.monotonic() - started < 5
    assert rss_mib(server.proc.pid) - rss_before < 5  # the app never saw it


def test_a_header_flood_is_cut_not_read_to_its_end(pod):
    """After the 400, nginx closes: it does not read and drop 64 MiB more."""
    url, _ = pod
    with attacker_socket(url) as sock:
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            sock.sendall(
                b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: "
                + b"a" * (64 * 1024 * 1024)
            )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_half_sent_headers_are_closed_and_others_are_served(pod, sample):
    url, _ = pod
    socks = []
    for _ in range(300):
        sock = attacker_socket(url)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(sock)
    served = predict_statuses(url, png(sample["images"][0]), 20)
    time.sleep(HEADER_TIMEOUT + 1.5)
    closed = 0
    for sock in socks:
        sock.settimeout(1)
        try:
            closed += sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            closed += 1
        sock.close()
    assert served == [200] * 20
    assert closed == len(socks)


def test_slow_bodies_never_reach_the_app_and_are_cut(pod, sample):
    url, server = pod
    socks = slow_bodies(url, 50)  # within one client's share (next test: past it)
    stop = threading.Event()
    peak = [0.0]

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], in_flight(server))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    served = predict_statuses(url, png(sample["images"][0]), 20)
    time.sleep(HEADER_TIMEOUT + 1.5)
    stop.set()
    watcher.join()
    statuses = [answer_of(sock) for sock in socks]
    for sock in socks:
        sock.close()
    assert served == [200] * 20
    assert peak[0] <= 1  # only the legitimate request: slow bodies wait in nginx
    assert set(statuses) <= {408, CLOSED}  # nginx gives up on each after the timeout


def test_one_client_gets_only_its_share_of_connections(pod, sample):
    url, _ = pod
    socks = slow_bodies(url, 100)
    time.sleep(0.5)
    refused = 0
    for sock in socks:
        sock.settimeout(0.05)
        try:
            refused += sock.recv(12).startswith(b"HTTP/1.1 429")
        except TimeoutError:
            pass
    image = png(sample["images"][0])
    other = httpx.post(
        f"{url}/predict", content=image, headers={"content-type": "image/png"}
    )
    for sock in socks:
        sock.close()
    assert refused == 100 - 64  # limit_conn perclient 64
    assert other.status_code == 200  # another client is unaffected


def requests_of(server, status: int) -> float:
    """How many requests the app itself answered with `status`."""
    text = httpx.get(f"{server.url}/metrics").text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("mnist_http_requests_total") and f'status="{status}"' in line
    )


@pytest.mark.parametrize("megabytes", [4, 64], ids=["4-MB", "64-MB"])
def test_a_body_over_the_limit_gets_413_from_the_proxy(pod, megabytes):
    """A client that sends a whole oversized body still reads the 413 (httpx
    sends it all before reading), and the app never sees the request."""
    url, server = pod
    before = requests_of(server, 413)
    body = b"\x89PNG\r\n\x1a\n" + bytes(megabytes * 1024 * 1024)
    with httpx.Client(timeout=30) as client:
        response = client.post(
            f"{url}/predict", content=body, headers={"content-type": "image/png"}
        )
    assert response.status_code == 413
    assert requests_of(server, 413) == before


def test_an_announced_huge_body_is_refused_before_it_is_sent(pod):
    """1 GB announced, 1 MB sent: the 413 comes at once, and the connection is
    closed once the client has been silent for nginx's lingering timeout (5 s),
    so the proxy never waits for the other 999 MB."""
    url, _ = pod
    sock = attacker_socket(url)
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    sock.sendall(bytes(1024 * 1024))
    assert answer_of(sock) == 413
    sock.settimeout(3 * HEADER_TIMEOUT)
    try:
        while sock.recv(65536):
            pass
        closed = True
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        closed = False
    sock.close()
    assert closed, "nginx kept the connection open after its 413"
