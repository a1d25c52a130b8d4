"""Drift features, windows and PSI, the card's reference and the exported gauges."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from conftest import CARD_FILE, MODEL_FILE, png
from drift_streams import noisy_rotated, thick
from mnist_serving.core.config import Settings
from mnist_serving.imaging.preprocess import IMAGE_FEATURES, grays_to_mnist
from mnist_serving.model.card import CardError, ModelCard, parse_card
from mnist_serving.monitoring.drift import BucketWindow, psi
from mnist_serving.monitoring.reference import reference_of, served_features
from serve_process import export_version, kedro_project

WINDOW = 200  # the smallest DRIFT_WINDOW, so that tests fill it fast
V1, V2 = "2026-12-01T00.00.00.000Z", "2026-12-02T00.00.00.000Z"


def features_of(images: np.ndarray) -> np.ndarray:
    """The drift features of uint8 images, as serving finds them."""
    return served_features(images.astype(np.float32))[1]


def gauges(text: str, name: str) -> dict[str, float]:
    """The samples of one metric in Prometheus text, keyed by their labels."""
    pattern = re.compile(rf"^{name}\{{(.*)\}} (\S+)$", re.MULTILINE)
    return {labels: float(value) for labels, value in pattern.findall(text)}


def psi_of(text: str) -> dict[str, float]:
    """mnist_drift_psi by feature."""
    found = gauges(text, "mnist_drift_psi")
    return {re.search(r'feature="(\w+)"', k).group(1): v for k, v in found.items()}


def test_window_counts_match_a_recount_after_evictions():
    rng = np.random.default_rng(1)
    edges = [0.2, 0.5, 0.9]
    window = BucketWindow(edges, size=50)
    values = rng.random(173).tolist()
    for value in values:
        window.add(value)
    recount = np.bincount(
        np.searchsorted(edges, values[-50:], side="right"), minlength=4
    )
    assert window.counts == recount.tolist()
    assert window.filled == 50


def test_psi_is_small_for_the_reference_and_large_for_a_shift():
    reference = [0.25, 0.25, 0.25, 0.25]
    assert psi([250, 250, 250, 250], reference) < 1e-3
    assert psi([700, 100, 100, 100], reference) > 0.25
    assert psi([1000, 0, 0, 0], reference) > 1  # an empty bucket stays finite


def test_features_of_mnist_digits(sample):
    features = features_of(sample["images"])
    ink, width, scale, offset = features.T
    assert 0.05 < ink.mean() < 0.2
    assert 1.5 < width.mean() < 2.5
    assert np.abs(scale).max() < 0.2
    assert offset.max() < 0.15


def test_features_see_thick_strokes_large_scans_and_off_centre_digits(sample):
    images = sample["images"][:20]
    base = features_of(images)
    thicker = features_of(thick(images))
    assert (thicker[:, 1] > base[:, 1]).mean() > 0.9
    assert (thicker[:, 0] > base[:, 0]).all()
    large = np.stack([np.kron(image, np.ones((10, 10), np.uint8)) for image in images])
    assert np.allclose(features_of(large)[:, 2], base[:, 2] - np.log2(10), atol=0.1)
    corner = np.zeros((20, 84, 84), np.uint8)
    corner[:, :28, :28] = images
    assert (features_of(corner)[:, 3] > 0.3).all()


def test_features_do_not_change_the_model_input(sample):
    grays = sample["images"][:10].astype(np.float32)
    with_features = grays_to_mnist(grays, np.empty((10, len(IMAGE_FEATURES))))
    assert np.array_equal(with_features, grays_to_mnist(grays))


def test_reference_needs_enough_images(sample):
    features = features_of(sample["images"][:10])
    with pytest.raises(ValueError, match="at least 50 images"):
        reference_of(features, np.full((10, 10), 0.1), (0.95, 0.8))


def card_with(**changes: object) -> dict:
    card = json.loads(CARD_FILE.read_text())
    card["drift_reference"] = {**card["drift_reference"], **changes}
    return card


@pytest.mark.parametrize(
    ("features", "problem"),
    [
        (
            {"ink_fraction": {"edges": [0.2, 0.1], "proportions": [0.3, 0.3, 0.4]}},
            "edges must increase strictly",
        ),
        (
            {"ink_fraction": {"edges": [0.1], "proportions": [0.3, 0.3, 0.4]}},
            "1 edges make 2 buckets, but 3 proportions",
        ),
        (
            {"ink_fraction": {"edges": [0.1], "proportions": [0.0, 1.0]}},
            "proportions must be > 0 and sum to 1",
        ),
        ({"pen_colour": {"edges": [0.1], "proportions": [0.5, 0.5]}}, "pen_colour"),
        (
            {"ink_fraction": {"edges": list(range(10**5)), "proportions": [1]}},
            "at most 100 items",
        ),
    ],
)
def test_bad_reference_is_refused_with_the_fix(features, problem):
    raw = json.dumps(card_with(features=features))
    with pytest.raises(CardError, match="re-export the model") as caught:
        parse_card(raw, "card.json")
    assert problem in str(caught.value)
    assert "drift_reference" in str(caught.value)


def old_card_copy(tmp_path) -> str:
    """The fixture model with a card from before drift references."""
    card = json.loads(CARD_FILE.read_text())
    del card["drift_reference"]
    shutil.copy(MODEL_FILE, tmp_path / "mnist_cnn.tflite")
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    return str(tmp_path)


def test_card_without_reference_serves_with_drift_off(tmp_path, client_with, sample):
    assert ModelCard.model_validate(json.loads(CARD_FILE.read_text())).drift_reference
    with client_with(model_uri=old_card_copy(tmp_path), drift_window=WINDOW) as c:
        for image in sample["images"][:WINDOW]:
            assert (
                c.post(
                    "/predict",
                    content=png(image),
                    headers={"Content-Type": "image/png"},
                ).status_code
                == 200
            )
        info = c.get("/model-info").json()["drift_monitoring"]
        text = c.get("/metrics").text
    assert info["enabled"] is False
    assert "no drift_reference" in info["reason"] and "re-export" in info["reason"]
    assert list(gauges(text, "mnist_drift_monitoring_enabled").values()) == [0]
    assert "mnist_drift_psi{" not in text


def post_all(client, images: np.ndarray) -> None:
    for image in images:
        response = client.post(
            "/predict", content=png(image), headers={"Content-Type": "image/png"}
        )
        assert response.status_code == 200, response.text


def test_gauges_once_the_window_is_full(client_with, sample):
    images = sample["images"]
    with client_with(drift_window=WINDOW) as client:
        post_all(client, images[: WINDOW - 1])
        filling = client.get("/metrics").text
        post_all(client, images[WINDOW - 1 : 2 * WINDOW])
        mnist = client.get("/metrics").text
        info = client.get("/model-info").json()
        post_all(client, thick(images[:WINDOW], radius=1))
        thicker = client.get("/metrics").text
        files = [
            ("files", (f"{i}.png", png(im), "image/png"))
            for i, im in enumerate(noisy_rotated(images[:WINDOW]))
        ]
        assert client.post("/predict-batch", files=files).status_code == 200
        rotated = client.get("/metrics").text
    assert "mnist_drift_psi{" not in filling  # no score from a partial window
    assert list(gauges(filling, "mnist_drift_window_predictions").values()) == [
        WINDOW - 1
    ]
    scores = psi_of(mnist)
    assert set(scores) == {*IMAGE_FEATURES, "confidence", "digit"}
    assert max(scores.values()) < 0.25, scores
    assert info["drift_monitoring"]["enabled"] is True
    assert info["drift_monitoring"]["predictions_in_window"] == WINDOW
    assert psi_of(thicker)["stroke_width"] > 1, psi_of(thicker)
    assert psi_of(rotated)["ink_fraction"] > 0.25, psi_of(rotated)
    shares = gauges(mnist, "mnist_review_share")
    assert len(shares) == 6
    window = {k: v for k, v in shares.items() if 'source="window"' in k}
    assert sum(window.values()) == pytest.approx(1)
    assert len(gauges(mnist, "mnist_low_confidence_share")) == 2
    assert list(gauges(mnist, "mnist_model_info").values()) == [1]


def test_a_reloaded_model_starts_its_own_window(client_with, sample, tmp_path):
    project = kedro_project(tmp_path / "project")
    export_version(project, V1)
    token = "t0ken-for-tests-0123456789abcdef"  # noqa: S105 - a test token
    settings = {"model_uri": None, "project_dir": project, "admin_token": token}
    with client_with(drift_window=WINDOW, **settings) as client:
        post_all(client, sample["images"])
        before = client.get("/metrics").text
        export_version(project, V2)
        reload = client.post(
            "/admin/reload", headers={"Authorization": f"Bearer {token}"}
        )
        assert reload.status_code == 200, reload.text
        after_reload = client.get("/metrics").text
        post_all(client, sample["images"][:10])
        info = client.get("/model-info").json()["drift_monitoring"]
        later = client.get("/metrics").text
    assert all(f'model_version="{V1}"' in k for k in gauges(before, "mnist_drift_psi"))
    assert psi_of(after_reload) == {}  # V1's scores are gone with V1
    counts = gauges(after_reload, "mnist_drift_window_predictions")
    assert counts == {f'model_version="{V2}",window="{WINDOW}"': 0}
    assert list(gauges(later, "mnist_drift_window_predictions").values()) == [10]
    assert info["predictions_in_window"] == 10
    assert list(gauges(later, "mnist_model_info")) == [f'version="{V2}"']


@pytest.mark.parametrize(
    ("window", "problem"),
    [(10**9, "less than or equal to 100000"), (199, "greater than or equal to 200")],
)
def test_drift_window_outside_its_range_stops_the_server(window, problem):
    with pytest.raises(ValidationError, match="drift_window") as caught:
        Settings(drift_window=window)
    assert problem in str(caught.value)
