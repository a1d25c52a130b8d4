"""The champion release on Blob (Azurite): files, then alias; a failure leaves none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from mnist_mlops.datasets import ChampionReleaseDataset
from mnist_mlops.datasets import champion as champion_module
from mnist_mlops.errors import PromotionError
from tests.azure.azurite import Azurite, connection_string
from tests.conftest import ROOT
from tests.registry import NAME, alias, fresh_registry, make_empty_store, register

FIXTURE = ROOT / "serving/tests/fixtures/model"
CONTAINER = "mnist"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[mlflow.MlflowClient]:
    empty = make_empty_store(tmp_path)
    (tmp_path / "run").mkdir()
    with fresh_registry(tmp_path / "run", empty) as client:
        yield client


def _blob_setup(azurite: Azurite) -> tuple[bytes, dict]:
    """Create the container; the serving fixture model and its card."""
    azurite.service.create_container(CONTAINER)
    model = next(FIXTURE.glob("mnist_cnn.tflite/*/mnist_cnn.tflite")).read_bytes()
    card = json.loads(
        next(FIXTURE.glob("model_card.json/*/model_card.json")).read_text()
    )
    return model, card


def test_blob_release_publishes_then_rolls_back_a_failed_promotion(
    azurite: Azurite, registry: mlflow.MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, card = _blob_setup(azurite)

    def release() -> ChampionReleaseDataset:
        return ChampionReleaseDataset(
            filepath=f"abfs://{CONTAINER}/releases/champion",
            model_name=NAME,
            credentials={"connection_string": connection_string(azurite.port)},
        )

    card_a = register(registry, model, card, "2026-12-01T10.00.00.000Z")
    first = {"promote": True, "model_bytes": model, "card": card_a}
    release().save({**first, "champion_registry_version": None})
    a = "2026-12-01T10.00.00.000Z"
    published = [
        f"releases/champion/mnist_cnn.tflite/{a}/mnist_cnn.tflite",
        f"releases/champion/model_card.json/{a}/model_card.json",
    ]
    assert azurite.blob_names(CONTAINER) == published
    assert azurite.read(CONTAINER, published[0]) == model
    assert alias(registry) == "1"

    card_b = register(registry, model + b"\0", card, "2026-12-01T11.00.00.000Z")
    failing = release()

    def unreachable(version: str) -> None:
        raise ConnectionError("registry unreachable")

    monkeypatch.setattr(failing, "set_alias", unreachable)
    with pytest.raises(PromotionError, match="previous champion stays in place"):
        failing.save(
            {
                "promote": True,
                "model_bytes": model + b"\0",
                "card": card_b,
                "champion_registry_version": "1",
            }
        )
    assert azurite.blob_names(CONTAINER) == published  # nothing of B, nor the lock
    assert alias(registry) == "1"
    assert release().load()["version"] == a


def test_blob_promotions_take_turns_under_a_lock_blob(
    azurite: Azurite, registry: mlflow.MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, card = _blob_setup(azurite)
    release = ChampionReleaseDataset(
        filepath=f"abfs://{CONTAINER}/releases/champion",
        model_name=NAME,
        credentials={"connection_string": connection_string(azurite.port)},
    )
    card_a = register(registry, model, card, "2026-12-01T10.00.00.000Z")
    data = {"promote": True, "model_bytes": model, "card": card_a}
    monkeypatch.setattr(champion_module, "LOCK_WAIT_SECONDS", 1.0)
    with release.lock():  # another promotion, in the middle of its steps
        with pytest.raises(PromotionError, match="Another promotion holds"):
            release.save({**data, "champion_registry_version": None})
        assert azurite.blob_names(CONTAINER) == ["releases/champion/promotion.lock"]
    release.save({**data, "champion_registry_version": None})  # its turn now
    assert alias(registry) == "1"
    assert "releases/champion/promotion.lock" not in azurite.blob_names(CONTAINER)
