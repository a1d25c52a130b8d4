"""The composed number test set and its evaluation through serving's number reader."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from mnist_serving.model.card import CardMetrics
from PIL import Image

from mnist_mlops.errors import ParameterError
from mnist_mlops.modeling.number_set import (
    INK,
    JITTER,
    ComposedNumber,
    compose_drawn_numbers,
    compose_number_owned,
    compose_numbers,
    number_metrics,
)
from mnist_mlops.pipelines.training.nodes import collect_metrics, evaluate_numbers

SERVING_FIXTURES = Path(__file__).parents[3] / "serving" / "tests" / "fixtures"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """200 official test digits (uint8) and labels, as serving's tests use."""
    data = np.load(SERVING_FIXTURES / "mnist_test_sample.npz")
    return data["images"], data["labels"]


def test_numbers_are_deterministic_and_varied(digits) -> None:
    images, labels = digits
    first = compose_numbers(images, labels, 200, seed=5)
    again = compose_numbers(images, labels, 200, seed=5)
    assert [n.label for n in first] == [n.label for n in again]
    assert all(
        np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True)
    )
    lengths = {len(n.label) for n in first}
    assert min(lengths) == 2 and max(lengths) == 12
    share = np.mean([n.touching for n in first])
    assert 0.15 < share < 0.35
    heights = {n.image.shape[0] for n in first}
    assert len(heights) > 5  # sizes and baselines vary


def test_drawn_numbers_are_written_like_uploads(digits) -> None:
    images, labels = digits
    first = compose_drawn_numbers(images, labels, 30, seed=5)
    again = compose_drawn_numbers(images, labels, 30, seed=5)
    assert [d for _, d in first] == [d for _, d in again]  # deterministic
    formats, dark_ink = set(), []
    for number, data in first:
        image = Image.open(io.BytesIO(data))
        formats.add(image.format)  # canvas PNGs and scanned JPEGs
        gray = np.asarray(image.convert("L"), dtype=np.float32)
        dark_ink.append(np.median(gray) > 128)  # the paper is the bulk
        assert image.width == number.image.shape[1] * 4  # the layout, enlarged
        assert 2 <= len(number.label) <= 12
    assert formats == {"PNG", "JPEG"}
    assert any(dark_ink) and not all(dark_ink)  # both polarities
    assert any(n.touching for n, _ in first)


def test_digits_of_a_number_share_a_centre_line(digits) -> None:
    """Digits of different sizes are centred on the number's line, as written
    ones are: a smaller digit does not ride high in the box of a larger one.
    """
    images, _ = digits
    worst = 0.0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(images), 6, replace=False)
        canvas, owners = compose_number_owned(images[picks], None, rng)
        lefts, centres = [], []
        for index in range(len(picks)):
            rows, columns = np.nonzero((owners == index) & (canvas > INK))
            lefts.append(columns.min())
            centres.append((rows.min() + rows.max()) / 2)
        line = np.polyval(np.polyfit(lefts, centres, 1), lefts)
        worst = max(worst, float(np.abs(np.asarray(centres) - line).max()))
    # The jitter, plus rounding; anchored at their tops, digits scaled 0.8-1.25x
    # were up to 6.7 px off the line.
    assert worst <= JITTER + 2


def test_touching_pairs_really_touch(digits) -> None:
    images, labels = digits
    numbers = [n for n in compose_numbers(images, labels, 120, seed=9) if n.touching]
    touching = 0
    for number in numbers:
        ink = np.concatenate(([0], (number.image > 64).any(axis=0), [0]))
        runs = np.count_nonzero(np.diff(ink.astype(int)) == 1)
        touching += runs < len(number.label)  # two digits share their columns
    assert touching >= 0.9 * len(numbers)


def test_metrics_count_missed_and_split_digits() -> None:
    blank = np.zeros((28, 60), np.uint8)
    numbers = [
        ComposedNumber(blank, "123", touching=False),
        ComposedNumber(blank, "4567", touching=True),
        ComposedNumber(blank, "89", touching=True),
    ]
    metrics = number_metrics(numbers, ["123", "45167", None])
    assert metrics["number_test_exact"] == pytest.approx(1 / 3)
    assert metrics["number_test_touching_exact"] == 0.0
    # 9 digits: one extra digit read (1 error), two refused (2 errors).
    assert metrics["number_test_digit_accuracy"] == pytest.approx(1 - 3 / 9)
    assert metrics["number_test_refused"] == 1
    assert metrics["number_test_touching_samples"] == 2


def test_exact_bound_counts_numbers_whose_digits_are_read_right_alone() -> None:
    blank = np.zeros((28, 60), np.uint8)
    numbers = [
        ComposedNumber(blank, "12", touching=False, picks=(0, 1)),
        ComposedNumber(blank, "34", touching=True, picks=(2, 3)),
        ComposedNumber(blank, "56", touching=True, picks=(1, 4)),
    ]
    alone = np.array([True, True, True, False, True])  # image 3 is misread alone
    metrics = number_metrics(numbers, ["12", "34", "56"], alone=alone)
    assert metrics["number_test_exact_bound"] == pytest.approx(2 / 3)
    assert metrics["number_test_touching_exact_bound"] == 0.5
    assert "number_test_exact_bound" not in number_metrics(numbers, ["12"] * 3)


def test_review_bands_count_the_numbers_read_wrong_in_each() -> None:
    blank = np.zeros((28, 60), np.uint8)
    numbers = [ComposedNumber(blank, label, touching=False) for label in "12345"]
    readings = ["1", "7", "3", "4", None]
    bands = ["auto_approved", "auto_approved", "manual_review", "manual_review", None]
    routed = number_metrics(numbers, readings, bands=bands)["number_test_review_bands"]
    assert routed["auto_approved"] == {
        "share": 0.4,
        "count": 2,
        "errors": 1,
        "error_rate": 0.5,
    }
    assert routed["secondary_verification"]["count"] == 0
    assert routed["manual_review"]["error_rate"] == 0.0  # the refused one is in none


def test_composed_numbers_name_the_images_they_hold(digits) -> None:
    images, labels = digits
    for number in compose_numbers(images, labels, 30, seed=4):
        assert "".join(str(labels[i]) for i in number.picks) == number.label


def test_node_reads_numbers_as_serving_does(digits, model_bytes) -> None:
    images, labels = digits
    x_official = (images / 255.0).astype(np.float32)[..., None]
    params = {"numbers": {"count": 40, "seed": 3}}
    metrics = evaluate_numbers(model_bytes, x_official, labels, params)
    assert metrics["number_test_samples"] == 40
    assert metrics["number_test_exact"] >= 0.6
    assert metrics["number_test_digit_accuracy"] >= 0.9
    assert 0.6 <= metrics["number_test_exact_bound"] <= 1.0
    routed = metrics["number_test_review_bands"]
    assert (
        sum(b["count"] for b in routed.values()) == 40 - metrics["number_test_refused"]
    )
    wrong = round((1 - metrics["number_test_exact"]) * 40)
    assert sum(b["errors"] for b in routed.values()) <= wrong
    evaluation = {"per_class_accuracy": {}, "review_bands_official": {}}
    drawn = {"review_bands_drawn": {}}
    collected, scalars = collect_metrics(evaluation, drawn, {}, metrics)
    assert collected["number_test_exact"] == metrics["number_test_exact"]
    assert "number_test_exact" in scalars
    assert (
        scalars["number_test_auto_approved_share"]["value"]
        == (routed["auto_approved"]["share"])
    )
    card = CardMetrics(test_accuracy=0.9, official_test_accuracy=0.9, **metrics)
    assert card.model_dump()["number_test_digit_accuracy"] > 0


def test_node_reads_drawn_numbers_too(digits, model_bytes) -> None:
    images, labels = digits
    x_official = (images / 255.0).astype(np.float32)[..., None]
    params = {"numbers": {"count": 10, "seed": 3, "drawn_count": 30}}
    metrics = evaluate_numbers(model_bytes, x_official, labels, params)
    assert metrics["number_test_samples"] == 10
    assert metrics["number_drawn_samples"] == 30
    assert metrics["number_drawn_refused"] == 0
    assert metrics["number_drawn_digit_accuracy"] >= 0.8
    card = CardMetrics(test_accuracy=0.9, official_test_accuracy=0.9, **metrics)
    assert card.model_dump()["number_drawn_exact"] == metrics["number_drawn_exact"]


def test_count_zero_skips_and_bad_count_names_the_key(digits, model_bytes) -> None:
    images, labels = digits
    x_official = (images / 255.0)[..., None]
    assert (
        evaluate_numbers(model_bytes, x_official, labels, {"numbers": {"count": 0}})
        == {}
    )
    with pytest.raises(ParameterError, match=r"numbers\.count"):
        evaluate_numbers(model_bytes, x_official, labels, {"numbers": {"count": -1}})
