"""Which model is loaded (catalog or MODEL_URI) and what happens when it is bad."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import fsspec
import pytest

from conftest import CARD_FILE, FIXTURE_VERSION, MODEL_FILE, MODEL_ROOT, running
from mnist_serving.core.config import Settings
from mnist_serving.core.errors import ModelLoadError
from mnist_serving.model.location import locate_model, locate_uri
from mnist_serving.model.runtime import load_model

CATALOG = """\
litert_model:
  type: mnist_mlops.datasets.BytesDataset
  filepath: {model}
  versioned: true
model_card:
  type: json.JSONDataset
  filepath: {card}
  versioned: true
"""


def export(models_dir: Path, version: str, *, card: bool = True) -> None:
    """Copy the fixture model (and card) into Kedro's layout under `version`."""
    target = models_dir / "mnist_cnn.tflite" / version
    target.mkdir(parents=True)
    shutil.copy(MODEL_FILE, target / "mnist_cnn.tflite")
    if card:
        card_dir = models_dir / "model_card.json" / version
        card_dir.mkdir(parents=True)
        data = json.loads(CARD_FILE.read_text())
        data["version"] = version
        (card_dir / "model_card.json").write_text(json.dumps(data))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A Kedro-like project with two complete versions and a newer half export."""
    base = tmp_path / "conf" / "base"
    base.mkdir(parents=True)
    (base / "catalog.yml").write_text(
        CATALOG.format(
            model="data/06_models/mnist_cnn.tflite",
            card="data/06_models/model_card.json",
        )
    )
    models = tmp_path / "data" / "06_models"
    export(models, "2026-01-01T00.00.00.000Z")
    export(models, "2026-02-01T00.00.00.000Z")
    export(models, "2026-03-01T00.00.00.000Z", card=False)  # run still writing
    return tmp_path


def test_catalog_newest_complete_version(project):
    location = locate_model(Settings(project_dir=project))
    assert location.version == "2026-02-01T00.00.00.000Z"
    assert location.model_path.endswith(
        "06_models/mnist_cnn.tflite/2026-02-01T00.00.00.000Z/mnist_cnn.tflite"
    )
    model = load_model(location)
    assert model.version == "2026-02-01T00.00.00.000Z"


def test_catalog_env_overrides_base(project):
    local = project / "conf" / "prod"
    local.mkdir()
    (local / "catalog.yml").write_text(
        CATALOG.format(
            model="${globals:models}/mnist_cnn.tflite",
            card="${globals:models}/model_card.json",
        )
    )
    (local / "globals.yml").write_text("models: other/models\n")
    export(project / "other" / "models", "2025-12-24T00.00.00.000Z")
    location = locate_model(Settings(project_dir=project, kedro_env="prod"))
    assert location.version == "2025-12-24T00.00.00.000Z"
    assert "other/models" in location.model_path


def test_unversioned_catalog_entries(tmp_path):
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "base" / "catalog.yml").write_text(
        "litert_model:\n  filepath: m/mnist_cnn.tflite\n"
        "model_card:\n  filepath: m/model_card.json\n"
    )
    (tmp_path / "m").mkdir()
    shutil.copy(MODEL_FILE, tmp_path / "m" / "mnist_cnn.tflite")
    shutil.copy(CARD_FILE, tmp_path / "m" / "model_card.json")
    location = locate_model(Settings(project_dir=tmp_path))
    assert location.version is None
    assert load_model(location).version == FIXTURE_VERSION  # from the card


def test_no_catalog_says_what_to_do(tmp_path):
    with pytest.raises(ModelLoadError, match="set PROJECT_DIR, or set MODEL_URI"):
        locate_model(Settings(project_dir=tmp_path))


def test_missing_entry_says_what_to_do(tmp_path):
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "base" / "catalog.yml").write_text("other:\n  type: x\n")
    with pytest.raises(
        ModelLoadError, match="'litert_model' with a filepath is missing"
    ):
        locate_model(Settings(project_dir=tmp_path))


def test_no_export_yet_says_run_kedro(project):
    shutil.rmtree(project / "data")
    with pytest.raises(ModelLoadError, match="run `kedro run`"):
        locate_model(Settings(project_dir=project))


@pytest.mark.parametrize(
    "uri",
    [
        str(MODEL_FILE),  # the file in a version folder
        str(MODEL_ROOT / "mnist_cnn.tflite"),  # the versioned root
        str(MODEL_ROOT / "mnist_cnn.tflite" / FIXTURE_VERSION),  # one version folder
        str(MODEL_ROOT),  # the models folder holding both roots
        f"file://{MODEL_FILE}",
    ],
)
def test_model_uri_forms(uri):
    location = locate_uri(uri)
    assert location.version == FIXTURE_VERSION
    assert location.card_path.endswith(f"{FIXTURE_VERSION}/model_card.json")


def test_model_uri_flat_folder(tmp_path):
    shutil.copy(MODEL_FILE, tmp_path / "mnist_cnn.tflite")
    shutil.copy(CARD_FILE, tmp_path / "model_card.json")
    assert load_model(locate_uri(str(tmp_path))).version == FIXTURE_VERSION


def test_model_uri_through_fsspec_memory():
    fs = fsspec.filesystem("memory")
    fs.pipe(
        f"/bucket/06_models/mnist_cnn.tflite/{FIXTURE_VERSION}/mnist_cnn.tflite",
        MODEL_FILE.read_bytes(),
    )
    fs.pipe(
        f"/bucket/06_models/model_card.json/{FIXTURE_VERSION}/model_card.json",
        CARD_FILE.read_bytes(),
    )
    location = locate_uri("memory://bucket/06_models/mnist_cnn.tflite")
    assert location.version == FIXTURE_VERSION
    assert location.model_uri.startswith("memory://")
    assert (
        load_model(location).sha256 == json.loads(CARD_FILE.read_text())["model_sha256"]
    )


def test_model_uri_missing():
    with pytest.raises(ModelLoadError, match="does not exist"):
        locate_uri("/nowhere/mnist_cnn.tflite")


def test_card_missing_beside_model(tmp_path):
    shutil.copy(MODEL_FILE, tmp_path / "mnist_cnn.tflite")
    with pytest.raises(ModelLoadError, match=r"model card for .* not found"):
        locate_uri(str(tmp_path / "mnist_cnn.tflite"))


def tampered_copy(
    tmp_path: Path, *, model: bytes | None = None, card: dict | None = None
):
    shutil.copy(MODEL_FILE, tmp_path / "mnist_cnn.tflite")
    shutil.copy(CARD_FILE, tmp_path / "model_card.json")
    if model is not None:
        (tmp_path / "mnist_cnn.tflite").write_bytes(model)
    if card is not None:
        (tmp_path / "model_card.json").write_text(json.dumps(card))
    return str(tmp_path)


def test_tampered_model_is_refused_and_not_ready(tmp_path, digit_png):
    content = bytearray(MODEL_FILE.read_bytes())
    content[-100] ^= 0xFF
    uri = tampered_copy(tmp_path, model=bytes(content))
    with running(model_uri=uri) as client:
        ready = client.get("/health/ready")
        live = client.get("/health/live")
        predict = client.post(
            "/predict", files={"file": ("a.png", digit_png, "image/png")}
        )
        health = client.get("/health")
        info = client.get("/model-info")
        metrics = client.get("/metrics").text
    assert ready.status_code == 503
    assert ready.json()["detail"] == "not ready: model_invalid"  # public: a code
    assert live.status_code == 200
    assert predict.status_code == 503
    assert predict.json()["detail"].startswith("model not ready (model_invalid)")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert health.json()["reason"] == "model_invalid"
    assert info.status_code == 503  # the operator's view says why
    assert "sha256" in info.json()["detail"]
    assert "re-export" in info.json()["detail"]
    assert "mnist_model_ready 0.0" in metrics


def test_corrupt_model_with_matching_card_is_refused(tmp_path):
    garbage = b"not a flatbuffer" * 100
    card = json.loads(CARD_FILE.read_text())
    card["model_sha256"] = hashlib.sha256(garbage).hexdigest()
    uri = tampered_copy(tmp_path, model=garbage, card=card)
    with running(model_uri=uri) as client:
        ready = client.get("/health/ready")
        info = client.get("/model-info")
    assert ready.status_code == 503
    assert "cannot be opened by LiteRT" in info.json()["detail"]


def test_invalid_card_is_refused(tmp_path):
    card = json.loads(CARD_FILE.read_text())
    card["input_shape"] = [32, 32, 3]
    with running(model_uri=tampered_copy(tmp_path, card=card)) as client:
        detail = client.get("/model-info").json()["detail"]
    assert "model card" in detail and "input_shape must be [28, 28, 1]" in detail


def test_version_mismatch_between_folder_and_card(tmp_path):
    export(tmp_path, "2026-05-05T00.00.00.000Z")
    card_file = (
        tmp_path / "model_card.json" / "2026-05-05T00.00.00.000Z" / "model_card.json"
    )
    card = json.loads(card_file.read_text())
    card["version"] = "1999-01-01T00.00.00.000Z"
    card_file.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="is for version 1999"):
        load_model(locate_uri(str(tmp_path / "mnist_cnn.tflite")))


def test_missing_model_logs_the_fix(caplog):
    with caplog.at_level("ERROR"), running(model_uri="/nowhere/model.tflite") as client:
        assert client.get("/health/ready").status_code == 503
    assert any("run `kedro run`" in record.getMessage() for record in caplog.records)


def test_catalog_with_a_champion_release_serves_the_champion(project):
    """Only a promoted model is served: the champion folder wins over new exports."""
    with (project / "conf" / "base" / "catalog.yml").open("a") as fh:
        fh.write(
            "champion_release:\n"
            "  type: mnist_mlops.datasets.ChampionReleaseDataset\n"
            "  filepath: data/06_models/champion\n"
        )
    champion = project / "data" / "06_models" / "champion"
    export(champion, "2026-01-01T00.00.00.000Z")
    export(champion, "2026-01-15T00.00.00.000Z", card=False)  # promotion writing
    location = locate_model(Settings(project_dir=project))
    assert location.version == "2026-01-01T00.00.00.000Z"  # not 2026-02's export
    assert location.model_path.startswith(str(champion))
    assert load_model(location).version == "2026-01-01T00.00.00.000Z"
    shutil.rmtree(champion)
    with pytest.raises(ModelLoadError, match=r"no exported model at .*champion"):
        locate_model(Settings(project_dir=project))
