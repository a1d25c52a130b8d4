"""Quality-assurance routing: which review band a confidence goes to.

Standard library only: the training image installs this package without its
server dependencies and bands its evaluations with these same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Review = Literal["auto_approved", "secondary_verification", "manual_review"]


class ReviewThresholds(Protocol):
    """Where the review bands start: serving's `Settings`, or `Thresholds`."""

    @property
    def review_auto_approve(self) -> float: ...

    @property
    def review_secondary(self) -> float: ...


@dataclass(frozen=True)
class Thresholds:
    """Review thresholds without the rest of the settings: what the training
    pipeline uses to band its evaluations exactly as serving would."""

    review_auto_approve: float
    review_secondary: float


def review_for(confidence: float, thresholds: ReviewThresholds) -> Review:
    """The seed's quality-assurance rule."""
    if confidence >= thresholds.review_auto_approve:
        return "auto_approved"
    if confidence >= thresholds.review_secondary:
        return "secondary_verification"
    return "manual_review"


def number_review(
    confidence: float, doubts: list[str], thresholds: ReviewThresholds
) -> Review:
    """The band of the number's confidence, one band lower when a split is doubtful.

    The confidence is the product of the digits' confidences, each times the
    probability that its crop is one whole digit, so it is never above the
    weakest digit's and the band is never better than that digit's band.
    """
    review = review_for(confidence, thresholds)
    if doubts and review == "auto_approved":
        return "secondary_verification"
    if doubts:
        return "manual_review"
    return review
