"""Turn probabilities into responses, metrics and audit log lines."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_serving.core.config import Settings
from mnist_serving.core.log_config import AUDIT_FIELD
from mnist_serving.core.metrics import CONFIDENCE, DIGIT_COUNTERS, REVIEW_COUNTERS
from mnist_serving.model.review import Review, review_for

audit_log = logging.getLogger("mnist_serving.audit")


@dataclass(frozen=True)
class AuditContext:
    """Who asked, through which endpoint, and when the request started."""

    request_id: str
    client_id: str
    endpoint: str
    started: float


def to_predictions(
    probabilities: np.ndarray, settings: Settings, context: AuditContext
) -> list[dict[str, Any]]:
    """A prediction dict per row, with metrics and an audit entry each (no image).

    The entries go out in one log call per request; the JSON formatter writes
    one line per prediction (see logging_setup.JsonFormatter).
    """
    latency_ms = round((time.perf_counter() - context.started) * 1000, 3)
    results = []
    audit = []
    digits = probabilities.argmax(axis=1).tolist()  # first maximum, as max() does
    reviews: Counter[Review] = Counter()
    for index, (row, digit) in enumerate(
        zip(probabilities.tolist(), digits, strict=True)
    ):
        confidence = row[digit]
        review = review_for(confidence, settings)
        reviews[review] += 1
        CONFIDENCE.observe(confidence)
        audit.append(
            {
                "event": "prediction",
                "request_id": context.request_id,
                "client_id": context.client_id,
                "endpoint": context.endpoint,
                "index": index,
                "digit": digit,
                "confidence": round(confidence, 6),
                "review": review,
                "latency_ms": latency_ms,
            }
        )
        results.append(
            {
                "digit": digit,
                "confidence": confidence,
                "probabilities": row,
                "review": review,
            }
        )
    # Counted once per request, not per row: a batch has up to 256 rows.
    for digit, count in enumerate(np.bincount(digits, minlength=10).tolist()):
        if count:
            DIGIT_COUNTERS[digit].inc(count)
    for review, count in reviews.items():
        REVIEW_COUNTERS[review].inc(count)
    audit_log.info("prediction", extra={AUDIT_FIELD: audit})
    return results
