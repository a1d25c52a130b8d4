"""Every Prometheus metric of the service, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

REQUESTS = Counter(
    "mnist_http_requests_total",
    "HTTP requests by route, method and status code.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "mnist_http_request_duration_seconds",
    "Time from request start to the end of the response, by route.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
IN_FLIGHT = Gauge("mnist_http_requests_in_flight", "Predict requests being handled.")
PREDICTIONS = Counter(
    "mnist_predictions_total", "Predictions by predicted digit.", ["digit"]
)
CONFIDENCE = Histogram(
    "mnist_prediction_confidence",
    "Probability of the predicted digit.",
    buckets=(0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0),
)
REVIEWS = Counter(
    "mnist_prediction_review_total", "Predictions by review outcome.", ["review"]
)
MODEL_READY = Gauge("mnist_model_ready", "1 when a verified model is loaded.")
RELOADS = Counter(
    "mnist_model_reloads_total",
    "Model reload attempts by trigger and outcome.",
    ["trigger", "outcome"],
)
REJECTED = Counter(
    "mnist_rejected_requests_total",
    "Requests refused before the endpoint ran, by reason.",
    ["reason"],
)

# Pre-bound children: .labels() costs microseconds per call on the hot path.
DIGIT_COUNTERS = tuple(PREDICTIONS.labels(str(digit)) for digit in range(10))
# Every reload outcome exists from the start at 0, so that an alert on
# increase() sees the first failure (a series born at 1 shows no increase).
for _trigger in ("admin", "poll"):
    for _outcome in ("reloaded", "unchanged", "failed"):
        RELOADS.labels(_trigger, _outcome)
REVIEW_COUNTERS = {
    review: REVIEWS.labels(review)
    for review in ("auto_approved", "secondary_verification", "manual_review")
}


class ScrapeTimeMetrics:
    """A custom collector that asks `source` for its metrics on every scrape.

    The drift scores are computed only when Prometheus asks (monitoring.drift);
    the app sets `source` when it is built.
    """

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[Metric]] | None = None

    def describe(self) -> list[Metric]:
        """Nothing up front: the metrics depend on the served model's card."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The source's metrics, or none before an app exists."""
        return [] if self.source is None else self.source()


DRIFT = ScrapeTimeMetrics()
REGISTRY.register(DRIFT)

# The feedback store.
FEEDBACK_WRITTEN = Counter(
    "mnist_feedback_records_written_total", "Prediction records written to the store."
)
FEEDBACK_LOST = Counter(
    "mnist_feedback_records_lost_total",
    "Prediction records not stored: the store was down and its queue full.",
)
FEEDBACK_QUEUE = Gauge(
    "mnist_feedback_queue_records", "Prediction records waiting to be written."
)
FEEDBACK_STORE_UP = Gauge(
    "mnist_feedback_store_up", "1 when the last write to the feedback store worked."
)
FEEDBACK_PURGED = Counter(
    "mnist_feedback_records_purged_total", "Records deleted after their retention."
)
# Live accuracy per model version: correct / (correct + wrong) over labelled
# predictions, e.g. sum by (model_version) (rate(...{outcome="correct"}[1d]))
# divided by the same sum without the outcome filter.
FEEDBACK_LABELS = Counter(
    "mnist_feedback_labels_total",
    "Feedback labels recorded, by the predicting model's version and whether "
    "its digit was right.",
    ["model_version", "outcome"],
)
