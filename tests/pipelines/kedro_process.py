"""`kedro run` as a real process, and what a run left on disk, for the fault tests."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

KEDRO = Path(sys.executable).parent / "kedro"
START_TIMEOUT_S = 300
CARD = Path("data/06_models/model_card.json")
MODEL = Path("data/06_models/mnist_cnn.tflite")


def kedro_env(project: Path) -> dict[str, str]:
    """Environment of a run: its own SQLite store, unbuffered and unwrapped logs."""
    return {
        **os.environ,
        "KEDRO_DISABLE_TELEMETRY": "true",
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "PYTHONUNBUFFERED": "1",  # see the epoch lines as they happen
        "COLUMNS": "200",  # rich wraps log lines at the terminal width
    }


def start_run(project: Path, args: list[str], log: Path) -> subprocess.Popen:
    """Start `kedro run ARGS` in `project`, stdout and stderr to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(KEDRO), "run", *args],
            cwd=project,
            env=kedro_env(project),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def finish(proc: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    """Wait for a run; its output, which the assertion shows if it failed."""
    proc.wait(timeout=timeout)
    return log.read_text(errors="replace")


def signal_when_printed(
    text: str, runs: list[tuple[subprocess.Popen, Path, signal.Signals]]
) -> None:
    """Send each run (process, log, signal) its signal once its log shows `text`."""
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = list(runs)
    while pending:
        for run in list(pending):
            proc, log, sig = run
            if text in log.read_text(errors="replace"):
                proc.send_signal(sig)
                pending.remove(run)
            elif proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                tail = log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"run never printed {text!r}:\n{tail}")
        time.sleep(0.05)


def versioned(project: Path, root: Path, version: str) -> Path:
    """The file of one version of a versioned dataset: <root>/<version>/<name>."""
    return project / root / version / root.name


def versions(project: Path, root: Path) -> list[str]:
    """The versions of a versioned dataset, oldest first."""
    return sorted(p.name for p in (project / root).iterdir())


def newest_complete_version(project: Path) -> str:
    """The newest version that holds both model and card (what serving loads)."""
    return next(
        v
        for v in reversed(versions(project, MODEL))
        if versioned(project, MODEL, v).is_file()
        and versioned(project, CARD, v).is_file()
    )


def load_json(project: Path, root: str, version: str) -> Any:
    """One version of a JSON dataset."""
    return json.loads(versioned(project, Path(root), version).read_text())


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_of_version(project: Path, version: str) -> dict[str, str]:
    """sha256 of every file saved under `version`, by path relative to the project."""
    return {
        str(p.relative_to(project)): sha256(p)
        for p in (project / "data").glob(f"*/*/{version}/*")
    }


def assert_readable(path: Path) -> None:
    """Fail if a saved file is partial: it must parse as its format."""
    if path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".npy":
        np.load(path, allow_pickle=False)
    elif path.suffix == ".keras":
        assert zipfile.is_zipfile(path), path
    elif path.suffix == ".tflite":
        assert path.read_bytes()[4:8] == b"TFL3", path  # the flatbuffer's identifier
    elif path.suffix == ".png":
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), path
    else:
        assert path.stat().st_size > 0, path
