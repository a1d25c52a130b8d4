"""MODEL_URI=abfs://... against a real Azure Blob emulator (Azurite) through adlfs.

The repository root installs Azurite from its npm lock (`make test` runs
`npm ci --prefix .ci` before this suite); without it these tests are skipped.
adlfs reads AZURE_STORAGE_CONNECTION_STRING: here Azurite's one development
account and its published key, as conf/azurite/credentials.yml uses them.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("adlfs", reason="the [azure] extra (adlfs) is not installed")
from azure.core.exceptions import ServiceRequestError
from azure.storage.blob import BlobServiceClient, ContainerClient

from conftest import MODEL_ROOT, running
from mnist_serving.model.location import locate_uri

AZURITE = Path(__file__).resolve().parents[2] / ".ci/node_modules/.bin/azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (public, documented; no real account's key).
DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw=="
)
MODELS = "06_models"  # the catalog's folder of the export, as on Blob storage

pytestmark = pytest.mark.skipif(
    not AZURITE.exists() or shutil.which("node") is None,
    reason=f"Azurite is not installed at {AZURITE} (or node is missing): run "
    "`npm ci --prefix .ci` at the repository root, or the root `make test`",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(service: BlobServiceClient, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"Azurite exited with {proc.returncode}: {log.read_text()}")
        try:
            service.get_service_properties(timeout=2)
            return
        except ServiceRequestError:
            if time.monotonic() > deadline:
                pytest.fail(f"Azurite did not answer in 30 s: {log.read_text()}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def blob_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh in-memory Azurite on a free loopback port; its connection string."""
    workdir = tmp_path_factory.mktemp("azurite")
    port = _free_port()
    log = workdir / "azurite.log"
    args = [
        str(AZURITE),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",  # the SDK may be newer than the emulator
        "--loose",
        "--disableTelemetry",
    ]  # fmt: skip
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    service = BlobServiceClient.from_connection_string(connection, retry_total=0)
    try:
        _wait_ready(service, proc, log)
        yield connection
    finally:
        service.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def container(
    blob_service: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ContainerClient]:
    """An empty container named after the test; adlfs pointed at Azurite."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", blob_service)
    name = request.node.name.replace("_", "-")[:63].strip("-").lower()
    with BlobServiceClient.from_connection_string(blob_service) as service:
        client = service.create_container(name)
        yield client


def upload_export(
    container: ContainerClient, version: str, card_changes: dict | None = None
) -> None:
    """The fixture model and card under 06_models/, in Kedro's versioned layout."""
    model_dir = next((MODEL_ROOT / "mnist_cnn.tflite").iterdir())
    model = (model_dir / "mnist_cnn.tflite").read_bytes()
    card_file = MODEL_ROOT / "model_card.json" / model_dir.name / "model_card.json"
    card = {**json.loads(card_file.read_text()), "version": version}
    card.update(card_changes or {})
    root = f"{MODELS}/mnist_cnn.tflite/{version}/mnist_cnn.tflite"
    container.upload_blob(root, model)
    card_blob = f"{MODELS}/model_card.json/{version}/model_card.json"
    container.upload_blob(card_blob, json.dumps(card).encode())


def test_model_from_blob_storage_is_verified_and_serves(container, digit_png):
    upload_export(container, "2026-01-01T00.00.00.000Z")
    upload_export(container, "2026-02-01T00.00.00.000Z")  # the newest one is served
    uri = f"abfs://{container.container_name}/{MODELS}/mnist_cnn.tflite"
    with running(model_uri=uri) as client:
        ready = client.get("/health/ready")
        answer = client.post("/predict", files={"file": ("d.png", digit_png)})
        info = client.get("/model-info").json()
    assert ready.status_code == 200, ready.text
    assert ready.json()["model_version"] == "2026-02-01T00.00.00.000Z"
    assert answer.status_code == 200, answer.text
    assert answer.json()["digit"] == 7
    assert info["source"] == (
        f"abfs://{container.container_name}/{MODELS}/mnist_cnn.tflite/"
        "2026-02-01T00.00.00.000Z/mnist_cnn.tflite"
    )
    assert info["sha256_verified"] is True


def test_tampered_card_on_blob_storage_is_not_ready_with_the_reason(container):
    upload_export(container, "2026-03-01T00.00.00.000Z", {"model_sha256": "0" * 64})
    uri = f"abfs://{container.container_name}/{MODELS}/mnist_cnn.tflite"
    with running(model_uri=uri) as client:
        ready = client.get("/health/ready")
        predict = client.post("/predict", files={"file": ("d.png", b"\x89PNG")})
        info = client.get("/model-info")
    assert ready.status_code == 503
    assert ready.json()["detail"] == "not ready: model_invalid"  # public: a code
    assert info.status_code == 503
    reason = info.json()["detail"]  # the operator's view: where and why
    assert f"abfs://{container.container_name}/{MODELS}/mnist_cnn.tflite/" in reason
    assert f"its card abfs://{container.container_name}/{MODELS}/model_card.json/" in (
        reason
    )
    assert "records " + "0" * 64 in reason
    assert predict.status_code == 503


def test_a_version_uploaded_later_is_found_by_the_next_lookup(container):
    """What a reload (POST /admin/reload, MODEL_POLL_SECONDS) relies on."""
    uri = f"abfs://{container.container_name}/{MODELS}/mnist_cnn.tflite"
    upload_export(container, "2026-04-01T00.00.00.000Z")
    assert locate_uri(uri).version == "2026-04-01T00.00.00.000Z"
    upload_export(container, "2026-05-01T00.00.00.000Z")
    assert locate_uri(uri).version == "2026-05-01T00.00.00.000Z"
