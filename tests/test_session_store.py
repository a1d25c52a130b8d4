"""Runs started in the same millisecond still get their own save versions."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mnist_mlops.session_store import claim_version, claims_file, next_version

PROJECT = Path(__file__).resolve().parents[1]
SAME_MS = "2026-12-01T11.22.07.999Z"


def test_next_version_carries_into_the_second() -> None:
    assert next_version(SAME_MS) == "2026-12-01T11.22.08.000Z"


def test_a_taken_millisecond_gives_the_next_free_one(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    assert claim_version(claims, SAME_MS) == SAME_MS
    assert claim_version(claims, SAME_MS) == "2026-12-01T11.22.08.000Z"
    assert claim_version(claims, SAME_MS) == "2026-12-01T11.22.08.001Z"
    later = "2026-12-01T12.00.00.000Z"
    assert claim_version(claims, later) == later  # the clock moved on: kept


def _claim(claims: str, queue: multiprocessing.Queue) -> None:
    queue.put(claim_version(Path(claims), SAME_MS))


def test_processes_claiming_at_once_never_share_a_version(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    claims = str(tmp_path / "claims")
    procs = [ctx.Process(target=_claim, args=(claims, queue)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    got = sorted(queue.get(timeout=5) for _ in procs)
    assert len(set(got)) == 3 and got[0] == SAME_MS


def test_sessions_created_in_one_millisecond_get_different_run_ids(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        "kedro.framework.session.session.generate_timestamp", lambda: SAME_MS
    )
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # a fresh claims file
    bootstrap_project(PROJECT)
    ids = []
    for _ in range(2):
        with KedroSession.create(project_path=PROJECT) as session:
            ids.append(session.store["session_id"])
    assert ids == [SAME_MS, next_version(SAME_MS)]
    assert claims_file(PROJECT).read_text() == ids[-1]
