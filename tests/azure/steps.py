"""Run the steps of a compiled Azure ML pipeline job locally, as the cluster would.

Each step is `kedro azureml execute` in a process of its own. Its outputs are
fresh folders; its inputs are the folders its producers filled, made read-only
(Azure ML mounts inputs read-only). A step gets no other path and no
environment beyond the job's variables and the ones given here. Steps whose
inputs are ready run together, like on the cluster; a TensorFlow-distributed
step runs as N worker processes with TF_CONFIG on loopback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.azure.azurite import free_port

KEDRO = Path(sys.executable).with_name("kedro")
PARENT_OUTPUT = re.compile(r"\$\{\{parent\.jobs\.(\w+)\.outputs\.(\w+)\}\}")
STEP_TIMEOUT_S = 300


@dataclass(frozen=True)
class Step:
    """One command step of the compiled job."""

    name: str
    command: str
    sources: dict[str, tuple[str, str]]  # input -> (producing step, its output)
    outputs: tuple[str, ...]
    env: dict[str, str]
    workers: int = 1
    distribution: dict[str, Any] = field(default_factory=dict)

    @property
    def after(self) -> set[str]:
        """Names of the steps whose outputs this one reads."""
        return {job for job, _ in self.sources.values()}


def load_steps(job: Mapping[str, Any]) -> dict[str, Step]:
    """The steps of a compiled pipeline job (the YAML of `kedro azureml compile`)."""
    steps = {}
    for name, spec in job["jobs"].items():
        sources = {}
        for key, value in (spec.get("inputs") or {}).items():
            path = value.get("path", "") if isinstance(value, dict) else ""
            if match := PARENT_OUTPUT.fullmatch(path):
                sources[key] = (match[1], match[2])
        steps[name] = Step(
            name=name,
            command=spec["component"]["command"],
            sources=sources,
            outputs=tuple(spec.get("outputs") or ()),
            env={
                k: str(v) for k, v in (spec.get("environment_variables") or {}).items()
            },
            workers=int((spec.get("resources") or {}).get("instance_count", 1)),
            distribution=spec.get("distribution") or {},
        )
    return steps


def waves(steps: Mapping[str, Step]) -> list[list[Step]]:
    """Steps in dependency order, grouped by when their inputs are all ready."""
    done: set[str] = set()
    order = []
    while len(done) < len(steps):
        ready = [s for s in steps.values() if s.name not in done and s.after <= done]
        if not ready:
            raise ValueError(f"the job's steps form a cycle: {set(steps) - done}")
        order.append(ready)
        done |= {s.name for s in ready}
    return order


def _read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        path.chmod(mode)


def _argv(step: Step, folders: Mapping[str, Path], kedro_env: str) -> list[str]:
    command = step.command
    for key, path in folders.items():
        command = command.replace("${{" + key + "}}", str(path))
    if "${{" in command:
        raise ValueError(f"step {step.name} has an unbound placeholder: {command}")
    argv = shlex.split(command)
    if argv[:2] != ["kedro", "azureml"] or argv[2] != "-e":
        raise ValueError(f"step {step.name} does not run `kedro azureml -e`: {argv}")
    return [str(KEDRO), "azureml", "-e", kedro_env, *argv[4:]]


def _tf_configs(step: Step) -> list[dict[str, str]]:
    if step.workers == 1:
        return [{}]
    if step.distribution.get("type") != "tensorflow":
        raise ValueError(f"step {step.name}: only TensorFlow distribution is emulated")
    hosts = [f"127.0.0.1:{free_port()}" for _ in range(step.workers)]
    return [
        {
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}
            )
        }
        for i in range(step.workers)
    ]


def run_job(  # noqa: PLR0913
    steps: Mapping[str, Step],
    *,
    project: Path,
    workdir: Path,
    kedro_env: str,
    base_env: Mapping[str, str],
    step_env: Callable[[Step], Mapping[str, str]] = lambda step: {},
) -> dict[str, dict[str, Path]]:
    """Execute every step; return each step's output folders. Fails on a failed step."""
    produced: dict[str, dict[str, Path]] = {}
    for wave in waves(steps):
        running = []
        for step in wave:
            outputs = {name: workdir / step.name / name for name in step.outputs}
            for folder in outputs.values():
                folder.mkdir(parents=True)
            folders = {f"outputs.{k}": v for k, v in outputs.items()} | {
                f"inputs.{k}": produced[job][out]
                for k, (job, out) in step.sources.items()
            }
            argv = _argv(step, folders, kedro_env)
            for index, tf_config in enumerate(_tf_configs(step)):
                env = {**base_env, **step.env, **step_env(step), **tf_config}
                log = workdir / f"{step.name}.{index}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        argv, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                running.append((step, log, proc))
            produced[step.name] = outputs
        _wait_all(running)
        for step in wave:
            for folder in produced[step.name].values():
                _read_only(folder)
    return produced


def _wait_all(running: list[tuple[Step, Path, subprocess.Popen]]) -> None:
    """Wait for every process; on the first failure stop the others and raise."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while running:
        for item in list(running):
            step, log, proc = item
            code = proc.poll()
            if code is None and time.monotonic() < deadline:
                continue
            if code is None:
                proc.kill()
                proc.wait()
                code = f"nothing: killed after {STEP_TIMEOUT_S} s"
            running.remove(item)
            if code != 0:
                for _, _, other in running:
                    other.kill()
                    other.wait()
                tail = log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"step {step.name} exited {code}:\n{tail}")
        time.sleep(0.2)


def minimal_env(**extra: str) -> dict[str, str]:
    """What every step process inherits: a PATH, a HOME, a locale, and `extra`."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ} | extra
