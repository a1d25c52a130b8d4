"""The bucketed reference of the drift features, computed once by training.

Training calls `reference_of` on its validation images as serving would see
them and writes the result into the model card; serving scores its windows
against it (monitoring.drift). It needs NumPy, Pillow and pydantic only, as
the training project's use of serving's preprocessing does.
"""

from __future__ import annotations

import numpy as np

from mnist_serving.imaging.preprocess import IMAGE_FEATURES, grays_to_mnist
from mnist_serving.model.card import DriftReference, FeatureReference

BUCKETS = 10  # quantile buckets per continuous feature
MIN_SHARE = 1e-4  # a reference bucket is never empty, so PSI stays finite
LOW_CONFIDENCE = 0.5
REVIEW_BANDS = ("manual_review", "secondary_verification", "auto_approved")
DIGIT_EDGES = [digit + 0.5 for digit in range(9)]  # one bucket per digit
MIN_IMAGES = 50  # below it a reference is mostly noise (1-epoch smoke runs hold ~80)


def require_images(count: int) -> None:
    """A reference of fewer than MIN_IMAGES images would be mostly noise."""
    if count < MIN_IMAGES:
        msg = (
            f"a drift reference needs at least {MIN_IMAGES} images, got {count} "
            "images; compute it on a larger validation set"
        )
        raise ValueError(msg)


def served_features(grays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) gray 0-255 images to the model inputs and their image features."""
    features = np.empty((len(grays), len(IMAGE_FEATURES)), dtype=np.float64)
    fields = grays_to_mnist(grays.astype(np.float32, copy=False), features)
    return fields, features


def bucket_reference(values: np.ndarray, edges: list[float]) -> FeatureReference:
    """Each bucket's share of `values` (floored at MIN_SHARE, renormalised)."""
    buckets = np.searchsorted(np.asarray(edges), values, side="right")
    counts = np.bincount(buckets, minlength=len(edges) + 1).astype(np.float64)
    shares = np.maximum(counts / counts.sum(), MIN_SHARE)
    shares /= shares.sum()
    return FeatureReference(edges=edges, proportions=shares.tolist())


def quantile_edges(values: np.ndarray, buckets: int = BUCKETS) -> list[float]:
    """Edges at the reference's quantiles, its minimum and just above its maximum.

    The outer buckets hold what the reference never saw (below its minimum,
    above its maximum), so a shift out of its range scores even when the
    reference is one repeated value; repeated quantiles give fewer buckets.
    """
    quantiles = np.quantile(values, np.arange(1, buckets) / buckets)
    top = np.nextafter(values.max(), np.inf)
    edges = np.unique(np.concatenate(([values.min()], quantiles, [top])))
    return [float(edge) for edge in edges]


def reference_of(
    features: np.ndarray,
    probabilities: np.ndarray,
    review_thresholds: tuple[float, float],
) -> DriftReference:
    """The drift reference of N validation images: (N, 4) features, (N, 10) outputs.

    `review_thresholds` is (auto_approve, secondary), serving's review rule.
    """
    require_images(len(features))
    if len(features) != len(probabilities):
        msg = (
            f"{len(features)} images but {len(probabilities)} probability rows; "
            "pass the model's output for exactly these images"
        )
        raise ValueError(msg)
    confidence = probabilities.max(axis=1)
    columns = {name: features[:, i] for i, name in enumerate(IMAGE_FEATURES)}
    columns["confidence"] = confidence
    refs = {
        name: bucket_reference(values, quantile_edges(values))
        for name, values in columns.items()
    }
    refs["digit"] = bucket_reference(probabilities.argmax(axis=1), DIGIT_EDGES)
    auto, secondary = review_thresholds
    bands = np.searchsorted([secondary, auto], confidence, side="right")
    shares = np.bincount(bands, minlength=3) / len(bands)
    return DriftReference(
        size=len(features),
        features=refs,
        review_thresholds={"auto_approve": auto, "secondary": secondary},
        review_shares=dict(zip(REVIEW_BANDS, shares.tolist(), strict=True)),
        low_confidence_threshold=LOW_CONFIDENCE,
        low_confidence_share=float((confidence < LOW_CONFIDENCE).mean()),
    )
