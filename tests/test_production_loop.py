"""The production loop end to end, with real processes only.

Serve model A (the first champion); send predictions; label them through
`POST /feedback`; run the feedback, training and promotion pipelines; see model
B promoted and the running service switch to it without a failed request; then
see a model made worse on purpose refused, with A's successor left in place.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from PIL import Image

from tests.conftest import copy_project
from tests.pipelines.kedro_process import finish, load_json, start_run, versions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SERVE = Path(sys.executable).parent / "mnist-serve"
REPORT = "data/08_reporting/promotion_report.json"
FEEDBACK_REPORT = "data/08_reporting/feedback_report.json"
REGISTERED = "mnist-digit-classifier"
CHAMPION = Path("data/06_models/champion/model_card.json")
FEEDBACK = 250  # labelled predictions: 200 training examples, a 50-example holdout
# Floors open (1-epoch models on a sample are no candidates); the gate's own
# tolerance stays as shipped. Model A is weak on purpose (one slow epoch), B
# trains longer, the refused one learns slower than both.
OPEN = (
    "data_processing.split.official_test_rows=300,"
    "training.quality_gate.min_official_test_accuracy=0,"
    "training.quality_gate.min_drawn_test_accuracy=0,"
    "training.min_parity_agreement=0.9,training.numbers.count=20,training.numbers.drawn_count=10,"
    "promotion.floors.official_test_accuracy=0,"
    "promotion.floors.drawn_test_accuracy=0,"
    "promotion.min_feedback_holdout=20,"
)
MODEL_A = OPEN + "training.epochs=1,training.learning_rate=0.0002"
MODEL_B = OPEN + "training.epochs=3"
WORSE = OPEN + "training.epochs=1,training.learning_rate=0.00005"


def kedro_run(project: Path, params: str, name: str) -> dict:
    """`kedro run` (every pipeline) in `project`; its promotion report."""
    log = project / f"{name}.log"
    proc = start_run(project, ["--params", params], log)
    output = finish(proc, log, timeout=900)
    assert proc.returncode == 0, output[-4000:]
    return newest_json(project, REPORT)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Traffic:
    """Predictions sent back to back while the model changes; every answer kept."""

    url: str
    image: bytes
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"content-type": "image/png"}
        with requests.Session() as client:
            while not self.stop.is_set():
                try:
                    response = client.post(
                        f"{self.url}/predict",
                        data=self.image,
                        headers=headers,
                        timeout=10,
                    )
                except requests.RequestException as exc:
                    self.errors.append(repr(exc))
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.versions[response.json()["model_version"]] += 1
                time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def served_version(url: str) -> str:
    return requests.get(f"{url}/model-info", timeout=5).json()["model_version"]


def wait_for(condition, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {limit} s: {what}")


@pytest.fixture
def project(tmp_path: Path, mnist_table: pd.DataFrame) -> Path:
    """A project copy whose raw CSV is 1,700 training rows and 300 test rows."""
    table = pd.concat([mnist_table.head(1700), mnist_table.tail(300)])
    return copy_project(tmp_path / "project", table)


@contextmanager
def serving(project: Path) -> Iterator[str]:
    """mnist-serve on the project's champion, polling it, storing every input."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PROJECT_DIR": str(project),
        "FEEDBACK_STORE_INPUTS": "all",
        "MODEL_POLL_SECONDS": "1",
        "API_KEYS": "",
        "RATE_LIMIT": "",
    }
    log_path = project / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(SERVE), "--port", str(port)], env=env, stdout=log, stderr=log
        )
    try:
        wait_for(lambda: _ready(url), 60, "mnist-serve ready\n" + _tail(log_path))
        yield url
    finally:
        server.terminate()
        server.wait(30)


def predict_and_label(url: str, images: np.ndarray, labels: np.ndarray) -> Counter:
    """Each image predicted (request id loop-<i>), then labelled; the review bands."""
    bands: Counter[str] = Counter()
    with requests.Session() as client:
        for i, image in enumerate(images):
            answer = client.post(
                f"{url}/predict",
                data=png(image),
                headers={"content-type": "image/png", "X-Request-ID": f"loop-{i}"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            bands[answer.json()["review"]] += 1
        for i, label in enumerate(labels):
            given = client.post(
                f"{url}/feedback",
                json={"request_id": f"loop-{i}", "label": int(label)},
                timeout=10,
            )
            assert given.status_code == 200, given.text
    return bands


def newest_json(project: Path, root: str) -> dict:
    return load_json(project, root, versions(project, Path(root))[-1])


def test_feedback_trains_a_better_model_that_serving_switches_to(
    project: Path, mnist_table: pd.DataFrame
) -> None:
    # 1. Model A: the first model, promoted on the floors alone.
    first = kedro_run(project, MODEL_A, "model-a")
    assert first["decision"] == "promote", first
    version_a = first["challenger_version"]

    with serving(project) as url:  # 2. serving the champion
        assert served_version(url) == version_a

        # 3. Predictions (rows the training sample never saw), then their labels.
        rows = mnist_table.iloc[20_000 : 20_000 + FEEDBACK]
        images = rows.drop(columns="label").to_numpy().reshape(-1, 28, 28)
        bands = predict_and_label(url, images, rows["label"].to_numpy())
        assert bands["auto_approved"] < FEEDBACK, bands  # some went to review

        # 4-6. Feedback, training and promotion while traffic flows: B replaces A.
        traffic = Traffic(url, png(images[0]))
        sender = threading.Thread(target=traffic.run)
        sender.start()
        try:
            second = kedro_run(project, MODEL_B, "model-b")
            assert second["decision"] == "promote", second
            assert second["champion_version"] == version_a
            version_b = second["challenger_version"]
            wait_for(lambda: served_version(url) == version_b, 30, "serving B")
            time.sleep(1)
        finally:
            traffic.stop.set()
            sender.join(30)
        assert traffic.errors == [] and set(traffic.statuses) == {200}, traffic
        assert traffic.versions[version_a] > 0 and traffic.versions[version_b] > 0
        used = newest_json(project, FEEDBACK_REPORT)
        assert used["training_examples"] + used["holdout_examples"] == FEEDBACK, used

        # A model made worse on purpose is refused: B stays, files and alias.
        third = kedro_run(project, WORSE, "worse")
        assert third["decision"] == "refuse", third
        time.sleep(3)  # three polls: serving would have moved by now
        assert served_version(url) == version_b
    newest = newest_json(project, str(CHAMPION))
    assert newest["version"] == version_b
    registry = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    champion = registry.get_model_version_by_alias(REGISTERED, "champion")
    assert champion.run_id == newest["mlflow_run_id"]  # the alias names B too


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/health/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]
