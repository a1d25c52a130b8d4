"""`.ci/system-deps`, the first step of `make test`: missing packages stop it early.

Run by someone who is not root, with a package list naming one package that is
not installed, it must exit 1 before doing anything and print the one
`apt-get install` line that installs exactly what is missing; a package whose
command is already on PATH (the list's second column) counts as present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

NOBODY = 65534


@pytest.fixture
def ci_copy() -> Iterator[Path]:
    """A folder with a copy of .ci/system-deps, readable by an unprivileged user.

    As root it lives in /tmp itself: TMPDIR may sit in a folder that nobody
    cannot enter.
    """
    where = "/tmp" if os.geteuid() == 0 else None  # noqa: S108 - see above
    folder = Path(tempfile.mkdtemp(prefix="system-deps-", dir=where))
    folder.chmod(0o755)
    (folder / ".ci").mkdir(mode=0o755)
    shutil.copy(ROOT / ".ci" / "system-deps", folder / ".ci")
    yield folder
    shutil.rmtree(folder)


def run_unprivileged(script: Path) -> subprocess.CompletedProcess[str]:
    """Run `script` as the current user, or as nobody when the tests run as root."""
    command = [str(script)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is missing"
        command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}",
                   "--clear-groups", *command]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_missing_package_stops_it_with_the_one_apt_get_line(ci_copy: Path):
    (ci_copy / ".ci" / "apt-packages.txt").write_text(
        "# comment line\n"
        "mnist-no-such-package            # not installed anywhere\n"
        "mnist-alias-package   sh         # its command is on PATH: present\n"
        "dpkg                             # installed\n"
    )
    result = run_unprivileged(ci_copy / ".ci" / "system-deps")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-1].strip() == (
        "apt-get update && apt-get install -y --no-install-recommends "
        "mnist-no-such-package"
    )
    assert "as root" in result.stderr


def test_the_list_names_every_package_the_tests_start():
    lines = (ROOT / ".ci" / "apt-packages.txt").read_text().splitlines()
    listed = {line.split()[0] for line in lines if line.split() and line[0] != "#"}
    needed = {"chromium", "fonts-dejavu-core", "nginx", "wrk", "redis-server"}
    needed |= {"prometheus"}  # promtool and the monitoring tests' Prometheus
    needed |= {"docker.io", "mmdebstrap", "nodejs", "npm", "git", "python3-venv"}
    assert needed <= listed, needed - listed
