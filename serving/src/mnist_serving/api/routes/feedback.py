"""POST /feedback: the true digit of a prediction, for live accuracy and training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from mnist_serving.api.deps import PredictContext, RoleCaller
from mnist_serving.api.schemas import ErrorBody
from mnist_serving.core.security import Caller
from mnist_serving.store.buffer import FeedbackStore

MAX_BODY_BYTES = 4096  # an id and a digit
MAX_REQUEST_ID = 80  # 64 characters of X-Request-ID, ":" and a batch index


def record(
    ctx: PredictContext,
    images: np.ndarray,
    results: Sequence[dict[str, Any]],
    *,
    batch: bool,
) -> None:
    """Queue the store's records of a prediction (one call per predict route)."""
    store: FeedbackStore = ctx.request.app.state.store
    client_id = ctx.caller.id if ctx.caller.authenticated else None
    store.record(
        ctx.request_id, client_id, ctx.model.version, images, results, batch=batch
    )


# A key with the `feedback` or `review` role (when keys are set), rate-limited.
feedback_caller = RoleCaller("feedback", "review")


async def get_store(request: Request) -> FeedbackStore:
    """The app's feedback store."""
    store: FeedbackStore = request.app.state.store
    return store


CallerDep = Annotated[Caller, Depends(feedback_caller)]
StoreDep = Annotated[FeedbackStore, Depends(get_store)]


class FeedbackRequest(BaseModel):
    """The true digit of one prediction (strict: the label is a JSON integer)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(
        min_length=1,
        max_length=MAX_REQUEST_ID,
        description="The prediction's request_id; `<request_id>:<index>` for the "
        "image at `index` of a batch.",
    )
    label: int = Field(ge=0, le=9, description="The digit actually written.")


class FeedbackResponse(BaseModel):
    """What the label did: recorded now, or already there (the same label)."""

    request_id: str
    label: int
    status: Literal["recorded", "unchanged"]
    model_version: str
    predicted_digit: int
    correct: bool


router = APIRouter(tags=["feedback"])
RESPONSES = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "The body is not JSON.",
        401: "Missing or invalid API key.",
        403: "The API key lacks the feedback (or review) role.",
        404: "No prediction with that request id within retention.",
        409: "The prediction already has a different label (kept).",
        413: "Body above its limit.",
        422: "Label not an integer 0-9, or a malformed body.",
        429: "Rate limit exceeded; see Retry-After.",
        503: "The feedback store is off or cannot be reached.",
    }.items()
}


@router.post("/feedback", response_model=FeedbackResponse, responses=RESPONSES)
async def give_feedback(
    body: FeedbackRequest, caller: CallerDep, store: StoreDep
) -> FeedbackResponse:
    """Record the true digit of a prediction made within FEEDBACK_RETENTION_DAYS.

    The first label stays: the same label again answers 200 `unchanged`, a
    different one 409. Works a moment after the prediction too, before its
    record has been written.
    """
    labelled_by = caller.id if caller.authenticated else None
    outcome = await store.label(body.request_id, body.label, labelled_by)
    return FeedbackResponse(
        request_id=body.request_id,
        label=body.label,
        status="recorded" if outcome.status == "recorded" else "unchanged",
        model_version=str(outcome.model_version),
        predicted_digit=int(outcome.digit or 0),
        correct=outcome.digit == body.label,
    )
