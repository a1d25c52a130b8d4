"""The promotion gate: decisions, and a release that completes or changes nothing.

Real MLflow registry (SQLite in a temp folder), real files, serving's own loader.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from mnist_serving.model.location import locate_uri
from mnist_serving.model.runtime import load_model

from mnist_mlops.datasets import ChampionModelDataset, ChampionReleaseDataset
from mnist_mlops.datasets import champion as champion_module
from mnist_mlops.errors import PromotionError
from mnist_mlops.modeling.cnn import build_model
from mnist_mlops.modeling.litert import export_litert
from mnist_mlops.params import ModelParams
from mnist_mlops.pipelines.promotion import create_pipeline
from mnist_mlops.pipelines.promotion.nodes import decide_promotion, score_models
from tests.conftest import ROOT
from tests.registry import NAME, alias, fresh_registry, make_empty_store, register

FIXTURE = ROOT / "serving/tests/fixtures"
FLOORS = {
    "official_test_accuracy": 0.9,
    "drawn_test_accuracy": 0.8,
    "feedback_holdout_accuracy": 0.0,
}
PARAMS = {"tolerance": 0.01, "floors": FLOORS, "min_feedback_holdout": 50}


@pytest.fixture(scope="module")
def good() -> tuple[bytes, dict[str, Any]]:
    """The committed serving fixture model (~97% on its sample) and its card."""
    model = next((FIXTURE / "model/mnist_cnn.tflite").glob("*/mnist_cnn.tflite"))
    card = next((FIXTURE / "model/model_card.json").glob("*/model_card.json"))
    return model.read_bytes(), json.loads(card.read_text())


@pytest.fixture(scope="module")
def untrained() -> tuple[bytes, dict[str, Any]]:
    """An untrained CNN exported to LiteRT: a challenger that must be refused."""
    model_bytes = export_litert(build_model(ModelParams()))
    card = {
        "version": "2026-12-01T00.00.00.000Z",
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
    }
    return model_bytes, card


@pytest.fixture(scope="module")
def sample() -> dict[str, np.ndarray]:
    data = np.load(FIXTURE / "mnist_test_sample.npz")
    x = (data["images"].astype(np.float32) / 255.0)[..., np.newaxis]
    y = data["labels"]
    return {"x": x, "y": y}


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_empty_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def registry(tmp_path: Path, empty_store: Path) -> Iterator[mlflow.MlflowClient]:
    """A fresh MLflow tracking store and registry in a temp folder."""
    with fresh_registry(tmp_path, empty_store) as client:
        yield client


def _scores(challenger: dict, champion: dict | None = None) -> dict[str, Any]:
    scores = {
        "challenger": challenger,
        "samples": dict.fromkeys(challenger, 200),
        "challenger_version": "B",
        "champion_version": "A" if champion else None,
        "champion_registry_version": "1" if champion else None,
    }
    if champion:
        scores["champion"] = champion
    return scores


def _decide(challenger: dict, champion: dict | None = None) -> dict[str, Any]:
    _, report, _ = decide_promotion(
        _scores(challenger, champion), b"model", {"version": "B"}, PARAMS
    )
    return report


GOOD = {"official_test_accuracy": 0.97, "drawn_test_accuracy": 0.90}


def test_a_challenger_no_worse_within_tolerance_is_promoted() -> None:
    better = {"official_test_accuracy": 0.965, "drawn_test_accuracy": 0.93}
    report = _decide(better, GOOD)  # official drops 0.005 <= 0.01
    assert report["decision"] == "promote"
    assert report["reason"].startswith("Promoted over champion A")
    assert all(check["passed"] for check in report["checks"])


def test_a_drop_beyond_the_tolerance_is_refused_naming_the_metric() -> None:
    worse = {"official_test_accuracy": 0.975, "drawn_test_accuracy": 0.88}
    report = _decide(worse, GOOD)
    assert report["decision"] == "refuse"
    assert report["reason"] == (
        "Refused: drawn_test_accuracy dropped 0.0200 (champion 0.9000, challenger "
        "0.8800), more than the tolerance 0.0100."
    )


def test_a_challenger_below_a_floor_is_refused_even_if_better() -> None:
    champion = {"official_test_accuracy": 0.85, "drawn_test_accuracy": 0.70}
    challenger = {"official_test_accuracy": 0.89, "drawn_test_accuracy": 0.75}
    report = _decide(challenger, champion)
    assert report["decision"] == "refuse"
    assert "official_test_accuracy 0.8900 is below its floor 0.9000" in report["reason"]
    assert "drawn_test_accuracy 0.7500 is below its floor 0.8000" in report["reason"]


def test_the_first_model_is_judged_by_the_floors_alone() -> None:
    assert _decide(GOOD)["reason"] == (
        "Promoted: no champion yet, and every floor is met."
    )
    low = {"official_test_accuracy": 0.5, "drawn_test_accuracy": 0.9}
    assert _decide(low)["decision"] == "refuse"


def test_release_payload_carries_the_model_only_when_promoting() -> None:
    release, _, scalars = decide_promotion(
        _scores(GOOD), b"m", {"version": "B"}, PARAMS
    )
    assert release["promote"] is True
    assert release["model_bytes"] == b"m"
    assert scalars["promoted"]["value"] == 1.0
    low = {**GOOD, "drawn_test_accuracy": 0.1}
    release, _, _ = decide_promotion(_scores(low), b"m", {"version": "B"}, PARAMS)
    assert release["promote"] is False
    assert "model_bytes" not in release


def test_scores_use_the_same_sets_and_skip_a_small_holdout(good, sample) -> None:
    model, card = good
    x, y = sample["x"], sample["y"]
    champion = {"model_bytes": model, "card": card, "registry_version": "3"}
    scores = score_models(
        model, card, champion, x, y, x[:100], y[:100], x[:49], y[:49], PARAMS
    )
    assert set(scores["challenger"]) == {
        "official_test_accuracy",
        "drawn_test_accuracy",
    }
    assert scores["challenger"] == scores["champion"]
    assert scores["challenger"]["official_test_accuracy"] > 0.9
    scores = score_models(model, card, {}, x, y, x, y, x[:50], y[:50], PARAMS)
    assert "feedback_holdout_accuracy" in scores["challenger"]
    assert "champion" not in scores


def test_a_model_that_is_not_its_cards_is_never_scored(good, sample) -> None:
    model, card = good
    x, y = sample["x"], sample["y"]
    with pytest.raises(PromotionError, match="is not the one its card"):
        score_models(model[:-1] + b"\0", card, {}, x, y, x, y, x[:0], y[:0], PARAMS)


def _release(tmp_path: Path) -> ChampionReleaseDataset:
    return ChampionReleaseDataset(filepath=str(tmp_path / "champion"), model_name=NAME)


def _served(tmp_path: Path) -> tuple[str, str]:
    """(version, sha256) that serving's own loader finds under the champion root."""
    location = locate_uri(str(tmp_path / "champion" / "mnist_cnn.tflite"))
    model = load_model(location, 1)
    return model.version, model.sha256


def _promote(
    release: ChampionReleaseDataset,
    model: bytes,
    card: dict,
    champion: str | None = None,
) -> None:
    """Publish `card`'s model, as scored against registry version `champion`."""
    release.save(
        {
            "promote": True,
            "model_bytes": model,
            "card": card,
            "champion_registry_version": champion,
        }
    )


def test_promotion_publishes_files_then_sets_the_alias(
    registry, good, tmp_path: Path
) -> None:
    model, card = good
    champion = ChampionModelDataset(model_name=NAME)
    assert champion.load() == {}  # the first model
    card_a = register(registry, model, card, "2026-12-01T10.00.00.000Z")
    _promote(_release(tmp_path), model, card_a)
    assert alias(registry) == "1"
    assert _served(tmp_path) == (card_a["version"], card_a["model_sha256"])
    loaded = champion.load()
    assert loaded["registry_version"] == "1"
    assert loaded["model_bytes"] == model
    assert loaded["card"]["version"] == card_a["version"]
    release = _release(tmp_path)
    release.save({"promote": False, "reason": "Refused: worse."})  # changes nothing
    assert alias(registry) == "1"
    assert release.load()["version"] == card_a["version"]


@pytest.mark.parametrize("fails", ["write_card", "set_alias"])
def test_a_failed_promotion_leaves_the_old_champion_files_and_alias(  # noqa: PLR0913, PLR0917 - fixtures
    registry, good, untrained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails
) -> None:
    model, card = good
    card_a = register(registry, model, card, "2026-12-01T10.00.00.000Z")
    _promote(_release(tmp_path), model, card_a)
    card_b = register(registry, untrained[0], card, "2026-12-01T11.00.00.000Z")
    release = _release(tmp_path)
    if fails == "set_alias":

        def broken(version: str) -> None:
            raise ConnectionError("registry unreachable")

        monkeypatch.setattr(release, "set_alias", broken)
    else:
        write = release.write

        def broken_card(path: str, payload: bytes) -> None:
            if path.endswith("model_card.json"):
                raise OSError("disk full")
            write(path, payload)

        monkeypatch.setattr(release, "write", broken_card)
    with pytest.raises(PromotionError) as err:
        _promote(release, untrained[0], card_b, champion="1")
    assert "version 2 failed" in str(err.value)
    assert "the previous champion stays in place" in str(err.value)
    assert alias(registry) == "1"
    assert _served(tmp_path) == (card_a["version"], card_a["model_sha256"])
    for root in ("mnist_cnn.tflite", "model_card.json"):
        assert sorted(p.name for p in (tmp_path / "champion" / root).iterdir()) == [
            card_a["version"]
        ], "nothing of B is left"


def test_a_promotion_killed_before_the_alias_is_finished_by_the_next_run(
    registry, good, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, card = good
    card_a = register(registry, model, card, "2026-12-01T10.00.00.000Z")
    release = _release(tmp_path)
    model_path, card_path = release.paths(card_a["version"])
    release.write(model_path, model)  # as a run killed after step 3
    release.write(card_path, json.dumps(card_a).encode())
    _promote(_release(tmp_path), model, card_a)
    assert alias(registry) == "1"
    other = {**card_a, "model_sha256": "0" * 64}
    with pytest.raises(PromotionError, match="already holds another model"):
        _promote(_release(tmp_path), model, other, champion="1")


@pytest.mark.parametrize("run_id", ["0" * 32, None, "x' or name != '"])
def test_an_unregistered_challenger_changes_nothing(
    registry, good, tmp_path: Path, run_id: str | None
) -> None:
    model, card = good
    register(registry, model, card, "2026-12-01T10.00.00.000Z")  # another run's
    card = {**card, "mlflow_run_id": run_id}
    with pytest.raises(PromotionError, match="is not a registered version"):
        _promote(_release(tmp_path), model, card)
    assert not (tmp_path / "champion").exists()


def test_a_challenger_scored_against_a_former_champion_changes_nothing(
    registry, good, untrained, tmp_path: Path
) -> None:
    model, card = good
    card_a = register(registry, model, card, "2026-12-01T10.00.00.000Z")
    card_b = register(registry, untrained[0], card, "2026-12-01T11.00.00.000Z")
    _promote(_release(tmp_path), model, card_a)  # A won while B was being scored
    with pytest.raises(PromotionError) as err:
        _promote(_release(tmp_path), untrained[0], card_b)  # scored against none
    assert "now names version 1, not none" in str(err.value)
    assert "Run `kedro run --pipeline promotion` again" in str(err.value)
    assert alias(registry) == "1"
    assert _served(tmp_path) == (card_a["version"], card_a["model_sha256"])
    assert not (tmp_path / "champion" / "promotion.lock").exists()


def test_an_older_model_is_never_published_over_a_newer_one(
    registry, good, untrained, tmp_path: Path
) -> None:
    model, card = good
    card_new = register(registry, model, card, "2026-12-01T11.00.00.000Z")
    card_old = register(registry, untrained[0], card, "2026-12-01T10.00.00.000Z")
    _promote(_release(tmp_path), model, card_new)
    with pytest.raises(PromotionError, match="newer than challenger"):
        _promote(_release(tmp_path), untrained[0], card_old, champion="1")
    assert alias(registry) == "1"
    assert _served(tmp_path)[0] == card_new["version"]


def test_two_promotions_at_once_take_turns_and_the_second_stops(
    registry, good, untrained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both were scored against no champion; exactly one may publish."""
    model, card = good
    cards = [
        (model, register(registry, model, card, "2026-12-01T10.00.00.000Z")),
        (
            untrained[0],
            register(registry, untrained[0], card, "2026-12-01T11.00.00.000Z"),
        ),
    ]
    write = ChampionReleaseDataset.write

    def slow_write(self: ChampionReleaseDataset, path: str, payload: bytes) -> None:
        time.sleep(0.3)  # widen the window in which the two could interleave
        write(self, path, payload)

    monkeypatch.setattr(ChampionReleaseDataset, "write", slow_write)
    outcomes: list[str] = []

    def promote(model_bytes: bytes, card: dict) -> None:
        try:
            _promote(_release(tmp_path), model_bytes, card)
            outcomes.append("promoted " + card["version"])
        except PromotionError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=promote, args=pair) for pair in cards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [o.removeprefix("promoted ") for o in outcomes if o.startswith("promoted ")]
    assert len(won) == 1, outcomes
    assert any("another promotion finished meanwhile" in o for o in outcomes)
    winner = next(c for _, c in cards if c["version"] == won[0])
    registered = registry.get_model_version_by_alias(NAME, "champion")
    assert registered.run_id == winner["mlflow_run_id"]  # alias and files agree
    assert _served(tmp_path) == (winner["version"], winner["model_sha256"])
    assert not (tmp_path / "champion" / "promotion.lock").exists()


@pytest.mark.parametrize("written", ["whole", "empty"])
def test_a_held_lock_waits_then_stops_and_a_stale_one_is_taken_over(  # noqa: PLR0913, PLR0917 - fixtures
    registry, good, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog, written
) -> None:
    """Stale by its `since`; an unreadable lock (one being written) by its file time."""
    model, card = good
    card_a = register(registry, model, card, "2026-12-01T10.00.00.000Z")
    lock = tmp_path / "champion" / "promotion.lock"
    lock.parent.mkdir()
    now = datetime.now(UTC)
    held = json.dumps({"owner": "other:1", "since": now.isoformat()}).encode()
    lock.write_bytes(held if written == "whole" else b"")
    monkeypatch.setattr(champion_module, "LOCK_WAIT_SECONDS", 1.0)
    with pytest.raises(
        PromotionError, match=r"Another promotion holds .*promotion\.lock"
    ):
        _promote(_release(tmp_path), model, card_a)
    assert lock.exists() and not (tmp_path / "champion" / "model_card.json").exists()
    stale = now - timedelta(seconds=champion_module.LOCK_STALE_SECONDS + 60)
    if written == "whole":
        lock.write_text(json.dumps({"owner": "gone:2", "since": stale.isoformat()}))
    else:
        os.utime(lock, (stale.timestamp(), stale.timestamp()))
    with caplog.at_level(logging.WARNING):
        _promote(_release(tmp_path), model, card_a)
    assert ("held by gone:2" if written == "whole" else "held by ?") in caplog.text
    assert alias(registry) == "1" and not lock.exists()


def test_the_lock_is_held_by_one_promotion_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many takers starting together: never two inside, and all get their turn."""
    monkeypatch.setattr(champion_module, "LOCK_POLL_SECONDS", 0.01)
    start = threading.Barrier(8)
    inside: list[int] = []
    most = 0
    guard = threading.Lock()

    def take(n: int) -> None:
        nonlocal most
        release = _release(tmp_path)
        start.wait()
        with release.lock():
            with guard:
                inside.append(n)
                most = max(most, len(inside))
            time.sleep(0.02)
            with guard:
                inside.remove(n)

    for _ in range(5):
        threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert most == 1
    assert not (tmp_path / "champion" / "promotion.lock").exists()


class KeptDataset(MemoryDataset):
    def _release(self) -> None:
        pass


def test_the_pipeline_promotes_a_first_model_and_refuses_a_worse_one(
    registry, good, untrained, sample, tmp_path: Path
) -> None:
    model, card = good
    x, y = sample["x"], sample["y"]

    def run(model_bytes: bytes, card: dict) -> dict[str, Any]:
        catalog = DataCatalog(
            {
                "litert_model": MemoryDataset(model_bytes, copy_mode="assign"),
                "model_card": MemoryDataset(card),
                "champion_model": ChampionModelDataset(model_name=NAME),
                "champion_release": _release(tmp_path),
                "promotion_report": KeptDataset(),
                "promotion_metrics_mlflow": MemoryDataset(),
                "params:promotion": MemoryDataset(PARAMS),
            }
        )
        for name in ("x_official_test", "x_drawn_test", "x_feedback_holdout"):
            catalog[name] = MemoryDataset(x)
            catalog[name.replace("x_", "y_", 1)] = MemoryDataset(y)
        SequentialRunner().run(create_pipeline(), catalog)
        return catalog.load("promotion_report")

    card_a = register(registry, model, card, "2026-12-01T10.00.00.000Z")
    first = run(model, card_a)
    assert first["decision"] == "promote"
    assert first["champion_version"] is None
    card_b = register(registry, untrained[0], card, "2026-12-01T11.00.00.000Z")
    second = run(untrained[0], card_b)
    assert second["decision"] == "refuse"
    assert second["champion_version"] == card_a["version"]
    assert {c["metric"] for c in second["checks"]} == {
        "official_test_accuracy",
        "drawn_test_accuracy",
        "feedback_holdout_accuracy",
    }
    assert alias(registry) == "1"
    assert _served(tmp_path)[0] == card_a["version"]
    shutil.rmtree(tmp_path / "champion")
