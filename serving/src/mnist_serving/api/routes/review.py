"""The reviewer page (/review) and the items it shows (GET /review/items).

The page is static and public; its data is not: /review/items needs a key
with the `review` role (when keys are set). The page asks for the key, keeps
it in the tab's sessionStorage and sends it as X-API-Key, as any API client
does; labels go to POST /feedback, which the `review` role may call.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from mnist_serving.api.deps import RoleCaller
from mnist_serving.api.routes.feedback import StoreDep
from mnist_serving.api.routes.page import CSP
from mnist_serving.api.schemas import ErrorBody

MAX_ITEMS = 100


# A key with the `review` role (when keys are set), rate-limited.
reviewer = RoleCaller("review")


class Guess(BaseModel):
    """One of the model's best guesses."""

    digit: int
    probability: float


class ReviewItem(BaseModel):
    """A prediction waiting for a reviewer."""

    request_id: str
    created_at: datetime
    model_version: str
    review: str
    digit: int
    confidence: float
    guesses: list[Guess] = Field(description="The model's three best digits.")
    input: str = Field(
        description="The model's 28x28 input: 784 bytes (0 = background, 255 = "
        "ink), row-major, base64."
    )


class ReviewItems(BaseModel):
    """The oldest waiting items and how many wait in all."""

    pending: int
    items: list[ReviewItem]


router = APIRouter(tags=["review"])


@lru_cache
def _page() -> str:
    return (files("mnist_serving") / "static" / "review.html").read_text("utf-8")


@router.get("/review", response_class=HTMLResponse, summary="The reviewer page")
async def review_page() -> HTMLResponse:
    """Label the predictions routed to review, one keystroke each."""
    return HTMLResponse(_page(), headers={"Content-Security-Policy": CSP})


@router.get(
    "/review/items",
    dependencies=[Depends(reviewer)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API key."},
        403: {"model": ErrorBody, "description": "The key lacks the review role."},
        429: {"model": ErrorBody, "description": "Rate limit exceeded."},
        503: {"model": ErrorBody, "description": "The feedback store is down."},
    },
)
async def review_items(
    store: StoreDep, limit: Annotated[int, Query(ge=1, le=MAX_ITEMS)] = 50
) -> ReviewItems:
    """The oldest review-routed predictions with a stored input and no label yet."""
    found = await store.pending_review(limit)
    items = [
        ReviewItem(
            **{
                **item,
                "created_at": _utc(item["created_at"]),
                "input": base64.b64encode(item["input"]).decode(),
            }
        )
        for item in found["items"]
    ]
    return ReviewItems(pending=found["pending"], items=items)


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
