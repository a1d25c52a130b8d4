"""A plain `kedro run`, without KEDRO_DISABLE_TELEMETRY, sends nothing anywhere.

The project opts out of kedro-telemetry with its committed `.telemetry` file
(`consent: false`). Each run here is a real `kedro` process; a Python audit hook
(sitecustomize.py on PYTHONPATH) records every host it resolves or connects
to, so the test sees what the process tried to reach, not what it said it did.
A copy of the project without the file is the control: kedro-telemetry then
tries heapanalytics.com, which shows the observation itself works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, SAMPLE_OFFICIAL_ROWS, copy_project

pytestmark = pytest.mark.slow
KEDRO = Path(sys.executable).with_name("kedro")
PARAMS = f"data_processing.split.official_test_rows={SAMPLE_OFFICIAL_ROWS}"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
AUDIT_HOOK = """\
import os, sys

_LOG = os.environ["NETWORK_AUDIT_LOG"]

def _record(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{event} {host!s}\\n")

sys.addaudithook(_record)
"""


def _hosts_reached(project: Path, tmp_path: Path) -> list[str]:
    """Run `kedro run --pipeline data_processing` in `project`; hosts it tried."""
    hook = tmp_path / "audit"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp_path / f"{project.name}-network.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK"}
    }
    env |= {
        "PYTHONPATH": str(hook),
        "NETWORK_AUDIT_LOG": str(log),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
    }
    result = subprocess.run(
        [str(KEDRO), "run", "--pipeline", "data_processing", "--params", PARAMS],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = log.read_text().splitlines() if log.exists() else []
    return sorted({line.split(" ", 1)[1] for line in lines})


def test_kedro_run_without_the_env_variable_contacts_no_one(
    tmp_path: Path, sample_table: pd.DataFrame
):
    project = copy_project(tmp_path / "project", sample_table)
    shutil.copy(ROOT / ".telemetry", project)
    control = copy_project(tmp_path / "control", sample_table)

    hosts = _hosts_reached(project, tmp_path)
    control_hosts = _hosts_reached(control, tmp_path)

    assert [host for host in hosts if host not in LOOPBACK] == []
    assert "heapanalytics.com" in control_hosts, control_hosts
