"""The pod's nginx (k8s/base/proxy/nginx.conf), run on loopback in front of a server.

Only ports and the temporary folder change: every limit and timeout is the
file's own.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[2] / "k8s" / "base" / "proxy" / "nginx.conf"


def nginx_path() -> str:
    """Debian's nginx, or fail with the install command (never a silent skip)."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None:
        pytest.fail("nginx is missing: apt-get install -y nginx")
    return path


def local_conf(tmp: Path, port: int, app_port: int) -> str:
    """The pod's nginx.conf with loopback ports and `tmp` for /tmp/nginx."""
    text = CONF.read_text()
    for old, new in (
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{app_port};"),
        ("/tmp/nginx/", f"{tmp}/"),  # noqa: S108 - the pod's path, replaced
    ):
        assert old in text, f"{CONF} no longer has {old!r}"
        text = text.replace(old, new)
    user = ""
    if os.geteuid() == 0:  # workers as this user, so they can use tmp
        user = (
            f"user {pwd.getpwuid(os.geteuid()).pw_name} "
            f"{grp.getgrgid(os.getegid()).gr_name};\n"
        )
    return "daemon off;\n" + user + text


@contextmanager
def running_proxy(
    tmp: Path,
    port: int,
    app_port: int,
    cgroup_procs: Path | None = None,
    cpus: set[int] | None = None,
) -> Iterator[subprocess.Popen]:
    """nginx with the pod's config on 127.0.0.1:`port`, proxying to `app_port`.

    With `cgroup_procs`, nginx joins that cgroup before it starts, and with
    `cpus` it runs on those CPUs only; its workers inherit both.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(local_conf(tmp, port, app_port))
    log = (tmp / "nginx.log").open("wb")

    def join_cgroup() -> None:
        if cgroup_procs is not None:
            cgroup_procs.write_text(str(os.getpid()))
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen(
        [nginx_path(), "-c", str(conf), "-e", "stderr"],
        stderr=log,
        stdout=log,
        preexec_fn=join_cgroup,  # noqa: PLW1509 - one file and the CPUs, then execs
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, (tmp / "nginx.log").read_text()
                assert time.monotonic() < deadline, "nginx did not listen in 10 s"
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
