"""Drift and quality of recent predictions, scored against the model card's reference.

Each feature keeps the bucket of its last `window` values in a ring buffer and
the count of each bucket, updated as values come and go, so an observation
costs a few list operations and a score costs O(buckets). Scores are computed
when Prometheus scrapes (`DriftTracker.collect`), never per request.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from mnist_serving.core.config import Settings
from mnist_serving.imaging.preprocess import IMAGE_FEATURES
from mnist_serving.model.card import DriftReference
from mnist_serving.monitoring.reference import REVIEW_BANDS

if TYPE_CHECKING:
    from mnist_serving.model.holder import ModelHolder
    from mnist_serving.model.runtime import DigitModel

SMOOTHING = 0.5  # added to each window bucket, so an empty bucket scores finitely


class BucketWindow:
    """Bucket counts of the last `size` values; adding evicts the oldest."""

    __slots__ = ("counts", "edges", "filled", "next", "ring", "size")

    def __init__(self, edges: list[float], size: int) -> None:
        self.edges = edges
        self.size = size
        self.ring = [0] * size
        self.counts = [0] * (len(edges) + 1)
        self.filled = 0
        self.next = 0

    def add(self, value: float) -> None:
        """Count `value` in its bucket (edges <= value), forgetting the oldest."""
        bucket = bisect_right(self.edges, value)
        if self.filled == self.size:
            self.counts[self.ring[self.next]] -= 1
        else:
            self.filled += 1
        self.ring[self.next] = bucket
        self.counts[bucket] += 1
        self.next = (self.next + 1) % self.size

    def shares(self) -> list[float]:
        """Each bucket's share of the window (a consistent copy of the counts)."""
        counts = list(self.counts)
        total = sum(counts) or 1
        return [count / total for count in counts]


def psi(counts: list[int], reference: list[float]) -> float:
    """Population stability index of window `counts` against reference shares.

    PSI = sum((p - q) * ln(p / q)) over buckets; the window's shares are
    smoothed by SMOOTHING per bucket. Below 0.1 is stable, above 0.25 is the
    usual sign of a shifted population.
    """
    total = sum(counts) + SMOOTHING * len(counts)
    score = 0.0
    for count, expected in zip(counts, reference, strict=True):
        share = (count + SMOOTHING) / total
        score += (share - expected) * math.log(share / expected)
    return score


@dataclass(frozen=True)
class Score:
    """One scrape's view of a monitor."""

    filled: int
    psi: dict[str, float]
    review_shares: dict[str, float]
    low_confidence_share: float


class DriftMonitor:
    """The windows of one model version: its card's features, reviews, confidence."""

    def __init__(
        self, reference: DriftReference, settings: Settings, window: int
    ) -> None:
        self.reference = reference
        self.window = window
        self.features = {
            name: BucketWindow(ref.edges, window)
            for name, ref in reference.features.items()
        }
        self.image = [
            (column, self.features[name])
            for column, name in enumerate(IMAGE_FEATURES)
            if name in self.features
        ]
        self.confidence = self.features.get("confidence")
        self.digit = self.features.get("digit")
        thresholds = [settings.review_secondary, settings.review_auto_approve]
        self.reviews = BucketWindow(thresholds, window)
        self.low = BucketWindow([reference.low_confidence_threshold], window)

    def observe(self, features: np.ndarray, probabilities: np.ndarray) -> None:
        """Add each row's image features (N, 4) and output (N, 10) to the windows."""
        confidences = probabilities.max(axis=1).tolist()
        digits = probabilities.argmax(axis=1).tolist()
        for row, confidence, digit in zip(
            features.tolist(), confidences, digits, strict=True
        ):
            for column, bucket_window in self.image:
                bucket_window.add(row[column])
            if self.confidence is not None:
                self.confidence.add(confidence)
            if self.digit is not None:
                self.digit.add(digit)
            self.reviews.add(confidence)
            self.low.add(confidence)

    def score(self) -> Score:
        """PSI of every feature and the window's shares (O(buckets), at scrape)."""
        refs = self.reference.features
        return Score(
            filled=self.low.filled,
            psi={
                name: psi(list(window.counts), refs[name].proportions)
                for name, window in self.features.items()
            },
            review_shares=dict(zip(REVIEW_BANDS, self.reviews.shares(), strict=True)),
            low_confidence_share=self.low.shares()[0],
        )


class DriftTracker:
    """The monitor of the model being served: a new model version starts afresh.

    One per app. Requests hand it the model they used, so a reload is noticed
    on the first prediction of the new model; Prometheus reads it through
    `collect` (a custom collector: scores are computed on scrape).
    """

    def __init__(self, holder: ModelHolder, settings: Settings) -> None:
        self.holder = holder
        self.settings = settings
        self.window = settings.drift_window
        self.model: DigitModel | None = None
        self.monitor: DriftMonitor | None = None

    def _monitor_for(self, model: DigitModel) -> DriftMonitor | None:
        if self.model is not model:
            reference = model.card.drift_reference
            self.monitor = (
                None
                if reference is None
                else DriftMonitor(reference, self.settings, self.window)
            )
            self.model = model
        return self.monitor

    def observe(
        self, model: DigitModel, features: np.ndarray, probabilities: np.ndarray
    ) -> None:
        """Count one request's predictions for the model that made them."""
        monitor = self._monitor_for(model)
        if monitor is not None:
            monitor.observe(features, probabilities)

    def current(self, model: DigitModel) -> DriftMonitor | None:
        """The monitor of `model` if it has made predictions yet, without creating one.

        The scrape may run in prometheus-client's own thread (METRICS_PORT), so
        it only reads; monitors are created on the event loop by `observe`.
        """
        return self.monitor if self.model is model else None

    def status(self, model: DigitModel) -> dict[str, object]:
        """Whether drift is monitored for `model`, and why not (for /model-info)."""
        reference = model.card.drift_reference
        if reference is None:
            return {
                "enabled": False,
                "reason": "the model card has no drift_reference; re-export the "
                "model with the current training pipeline to monitor drift",
            }
        monitor = self.current(model)
        status: dict[str, object] = {
            "enabled": True,
            "window": self.window,
            "predictions_in_window": 0 if monitor is None else monitor.low.filled,
            "features": sorted(reference.features),
        }
        card = reference.review_thresholds
        serving = {
            "auto_approve": self.settings.review_auto_approve,
            "secondary": self.settings.review_secondary,
        }
        if card != serving:
            status["warning"] = (
                f"review thresholds {serving} differ from the reference's {card}: "
                "review shares are not comparable with the reference shares"
            )
        return status

    def collect(self) -> Iterator[Metric]:
        """The gauges: model version, drift scores and shares (see README)."""
        model = self.holder.model
        version = [] if model is None else [model.version]
        info = GaugeMetricFamily(
            "mnist_model_info", "1 for the model version served.", labels=["version"]
        )
        if model is not None:
            info.add_metric(version, 1)
        yield info
        enabled = GaugeMetricFamily(
            "mnist_drift_monitoring_enabled",
            "1 when the served model's card has a drift reference.",
            labels=["model_version"],
        )
        if model is None:
            yield enabled
            return
        reference = model.card.drift_reference
        enabled.add_metric(version, 0 if reference is None else 1)
        yield enabled
        if reference is not None:
            yield from self._scores(reference, self.current(model), version[0])

    def _scores(
        self, reference: DriftReference, monitor: DriftMonitor | None, version: str
    ) -> Iterator[Metric]:
        window = str(self.window)
        score = None if monitor is None else monitor.score()
        count = 0 if score is None else score.filled
        filled = GaugeMetricFamily(
            "mnist_drift_window_predictions",
            "Predictions in the drift window; scores are exported once it is full.",
            labels=["model_version", "window"],
        )
        filled.add_metric([version, window], count)
        yield filled
        drift = GaugeMetricFamily(
            "mnist_drift_psi",
            "Population stability index of a feature over the window vs the card.",
            labels=["feature", "model_version", "window"],
        )
        reviews = GaugeMetricFamily(
            "mnist_review_share",
            "Share of each review band: over the window, and in the card's reference.",
            labels=["review", "source", "model_version"],
        )
        low = GaugeMetricFamily(
            "mnist_low_confidence_share",
            "Share of predictions below the reference's low-confidence threshold.",
            labels=["source", "model_version"],
        )
        for review, share in reference.review_shares.items():
            reviews.add_metric([review, "reference", version], share)
        low.add_metric(["reference", version], reference.low_confidence_share)
        if score is not None and count >= self.window:
            for feature, value in score.psi.items():
                drift.add_metric([feature, version, window], value)
            for review, share in score.review_shares.items():
                reviews.add_metric([review, "window", version], share)
            low.add_metric(["window", version], score.low_confidence_share)
        yield from (drift, reviews, low)
