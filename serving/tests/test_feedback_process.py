"""The feedback store in a real `mnist-serve`: the database stopped mid-run, shutdown.

PostgreSQL is the session's real server, stopped (immediate mode, as in a
crash) while predictions flow, then started again.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from conftest import MODEL_URI
from mnist_serving.store.buffer import make_engine
from mnist_serving.store.schema import predictions
from serve_process import running_server, start_server

pytestmark = pytest.mark.reliability
PNG = {"content-type": "image/png"}


def count_rows(url: str) -> int:
    """Records stored in the database at `url`."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(predictions)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def wait_for(check: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll `check` until it holds; fail naming `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"not within {limit} s: {what}"
        time.sleep(0.1)


def predict(url: str, image: bytes) -> httpx.Response:
    return httpx.post(f"{url}/predict", content=image, headers=PNG, timeout=10)


def test_database_stopped_mid_run(tmp_path, postgres, digit_png):
    """Predictions keep answering; records wait, then are counted lost; feedback 503."""
    database = postgres.create_database()
    env = {
        "MODEL_URI": MODEL_URI,
        "DATABASE_URL": database,
        "FEEDBACK_QUEUE_SIZE": "20",
        "FEEDBACK_FLUSH_SECONDS": "0.1",
        "SHUTDOWN_DELAY_SECONDS": "0",
    }
    with running_server(tmp_path, env) as server:
        first = [predict(server.url, digit_png).json()["request_id"] for _ in range(5)]
        wait_for(lambda: count_rows(database) == 5, "the first 5 records stored")
        postgres.stop()
        try:
            statuses = [predict(server.url, digit_png).status_code for _ in range(60)]
            assert statuses == [200] * 60
            health = lambda: httpx.get(f"{server.url}/health").json()  # noqa: E731
            wait_for(lambda: health()["feedback_store"] == "unavailable", "store down")
            state = health()
            assert state["status"] == "ok"  # predictions do not need the store
            assert state["feedback_records_lost"] == 40  # 60 made, 20 wait in the queue
            assert httpx.get(f"{server.url}/health/ready").status_code == 200
            metrics = httpx.get(f"{server.url}/metrics").text
            assert "mnist_feedback_records_lost_total 40.0" in metrics
            assert "mnist_feedback_store_up 0.0" in metrics
            refused = httpx.post(
                f"{server.url}/feedback", json={"request_id": first[0], "label": 7}
            )
            assert refused.status_code == 503
            assert (
                "cannot be reached, so the label was not recorded; retry later"
                in refused.json()["detail"]
            )
        finally:
            postgres.start()
        # Back: the 20 queued records are written, feedback works again.
        wait_for(lambda: count_rows(database) == 25, "the queued records written")
        wait_for(lambda: health()["feedback_store"] == "ok", "store up again")
        accepted = httpx.post(
            f"{server.url}/feedback", json={"request_id": first[0], "label": 7}
        )
        assert accepted.status_code == 200, accepted.text
        assert server.stop() == 0
    events = [line.get("event") for line in server.log_lines()]
    assert "feedback_store_down" in events
    assert "feedback_records_lost" in events
    assert "feedback_store_up" in events


def test_sigterm_writes_the_queue_before_exiting(tmp_path, digit_png):
    """Records still queued at SIGTERM (flushed only every 60 s) are all stored.

    DATABASE_URL unset: the default store, a SQLite file under the working
    directory's data/feedback/, as `make serve` uses it. The store writes once
    at start, with the schema; predictions wait for that write (the store
    `ok`), so that all 30 are still queued at SIGTERM.
    """
    url = f"sqlite:///{tmp_path / 'data' / 'feedback' / 'feedback.db'}"
    env = {
        "MODEL_URI": MODEL_URI,
        "DATABASE_URL": "",  # the default
        "FEEDBACK_FLUSH_SECONDS": "60",
        "SHUTDOWN_DELAY_SECONDS": "0",
    }
    with running_server(tmp_path, env) as server:
        store = lambda: httpx.get(f"{server.url}/health").json()["feedback_store"]  # noqa: E731
        wait_for(lambda: store() == "ok", "the store's first write (the schema)")
        for _ in range(30):
            assert predict(server.url, digit_png).status_code == 200
        assert count_rows(url) == 0
        assert server.stop() == 0
    assert count_rows(url) == 30


def test_a_database_that_never_answers_delays_neither_start_nor_predictions(
    tmp_path, digit_png
):
    """A PostgreSQL address that accepts connections and then says nothing."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        env = {
            "MODEL_URI": MODEL_URI,
            "DATABASE_URL": f"postgresql://serving@127.0.0.1:{port}/feedback",
            "SHUTDOWN_DELAY_SECONDS": "0",
        }
        server = start_server(tmp_path, env)
        try:
            assert server.wait_ready() < 10  # the driver's timeout is 15 s
            slowest = 0.0
            for _ in range(20):
                started = time.monotonic()
                assert predict(server.url, digit_png).status_code == 200
                slowest = max(slowest, time.monotonic() - started)
            assert slowest < 2, f"a prediction took {slowest:.1f} s"
            state = httpx.get(f"{server.url}/health", timeout=5).json()
            assert state["status"] == "ok"
            assert state["feedback_store"] == "starting"  # still waiting
            started = time.monotonic()
            assert server.stop() == 0
            # The queued records get 5 s to be written, then count as lost; the
            # exit then waits for the driver's threads to time out (15 s), still
            # within the pod's grace period (35 s).
            assert time.monotonic() - started < 25
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
    events = [line.get("event") for line in server.log_lines()]
    assert "feedback_records_lost" in events
