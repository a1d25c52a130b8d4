"""Shared fixtures: the committed fixture model, MNIST samples and app clients."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import ExifTags, Image

from mnist_serving.core.config import Settings
from mnist_serving.main import create_app

FIXTURES = Path(__file__).parent / "fixtures"
# API keys of the tests: at least 16 characters, as the settings require.
KEY_A, KEY_B, KEY_C = (
    "alpha-key-0123456789",
    "beta-key-0123456789",
    "gamma-key-012345678",
)
MODEL_ROOT = FIXTURES / "model"
MODEL_URI = str(MODEL_ROOT / "mnist_cnn.tflite")
# The committed fixture export: one Kedro version of the model and its card.
FIXTURE_VERSION = next((MODEL_ROOT / "mnist_cnn.tflite").iterdir()).name
MODEL_FILE = MODEL_ROOT / "mnist_cnn.tflite" / FIXTURE_VERSION / "mnist_cnn.tflite"
CARD_FILE = MODEL_ROOT / "model_card.json" / FIXTURE_VERSION / "model_card.json"


def require_tool(tool: str, package: str) -> str:
    """The path of a system tool a test needs; a failure naming the fix if missing.

    A missing tool fails the test rather than skipping it: `make test` installs
    every package of .ci/apt-packages.txt first (`make system-deps`, as root).
    """
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not installed: apt-get install -y {package} "
            "(or `make system-deps` as root at the repository root)"
        )
    return path


def png(image: np.ndarray | Image.Image, mode: str | None = None) -> bytes:
    """PNG bytes of an array or image."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# How a camera stores an upright picture for each EXIF orientation: the
# inverse of the turn that shows it (6 and 8 undo each other; the rest, self).
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def turned(
    upright: Image.Image, orientation: int, kind: str = "JPEG"
) -> tuple[Image.Image, bytes]:
    """(the pixels as stored, the file) of a photo tagged with `orientation`."""
    turn = STORED[orientation]
    stored = upright if turn is None else upright.transpose(turn)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    buffer = io.BytesIO()
    options = {"quality": 95} if kind == "JPEG" else {}
    stored.save(buffer, kind, exif=exif.tobytes(), **options)
    return stored, buffer.getvalue()


@pytest.fixture(scope="session")
def sample() -> dict[str, np.ndarray]:
    """The first 200 official MNIST test images (uint8) and labels."""
    data = np.load(FIXTURES / "mnist_test_sample.npz")
    return {"images": data["images"], "labels": data["labels"]}


@pytest.fixture(scope="session")
def digit_png(sample: dict[str, np.ndarray]) -> bytes:
    """A 28x28 PNG of MNIST test image 0 (a 7)."""
    return png(sample["images"][0])


def make_settings(**overrides: Any) -> Settings:
    """Test settings: the fixture model, no rate limit unless asked."""
    values: dict[str, Any] = {
        "model_uri": MODEL_URI,
        "rate_limit": "",
        "database_url": "none",
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running(**overrides: Any) -> Iterator[TestClient]:
    """A TestClient whose lifespan (model load) has run."""
    app = create_app(make_settings(**overrides))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """A client of an app serving the fixture model with default limits."""
    with running() as test_client:
        yield test_client


@pytest.fixture
def client_with() -> Callable[..., Any]:
    """Factory for a client with setting overrides: `with client_with(x=1) as c:`."""
    return running


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the session (Debian's `postgresql`)."""
    from postgres import remove_cluster, start_cluster  # noqa: PLC0415

    cluster = start_cluster()
    yield cluster
    remove_cluster(cluster)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty feedback database: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    cluster = request.getfixturevalue("postgres")
    return str(cluster.create_database())


@contextmanager
def uvicorn_in_thread(settings: Settings) -> Iterator[str]:
    """A real uvicorn with `settings`' app on loopback, in a thread: its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
