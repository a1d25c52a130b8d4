"""The reviewer page in real headless Chromium: ten items labelled by keyboard.

A real uvicorn serves the fixture model with a SQLite feedback store; MNIST test
digits are predicted through the API (every one routed to review), then the
page labels them with keystrokes and the test reads the labels back from the
database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from conftest import KEY_A, KEY_C, make_settings, png, uvicorn_in_thread
from mnist_serving.store.buffer import make_engine
from mnist_serving.store.schema import predictions
from test_browser import ARTIFACTS, browser  # noqa: F401 - the module's fixture

pytestmark = pytest.mark.browser
REVIEWED = 10


@pytest.fixture(scope="module")
def review_server(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of a real uvicorn with the review role set up."""
    database = f"sqlite:///{tmp_path_factory.mktemp('review') / 'feedback.db'}"
    settings = make_settings(
        database_url=database,
        api_keys=f"{KEY_A},{KEY_C}:review",
        review_auto_approve=1.0,  # every prediction is routed to review
        review_secondary=0.999999,
        feedback_flush_seconds=0.1,
    )
    with uvicorn_in_thread(settings) as url:
        yield url, database


def labels_in(database: str) -> dict[str, int | None]:
    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(predictions.c.request_id, predictions.c.label)
            ).all()
    finally:
        engine.dispose()
    return dict(rows)


def test_ten_items_reviewed_by_keyboard(review_server, browser, sample):  # noqa: F811
    base_url, database = review_server
    truth = {}
    for index in range(REVIEWED + 2):
        response = httpx.post(
            f"{base_url}/predict",
            content=png(sample["images"][index]),
            headers={"content-type": "image/png", "X-API-Key": KEY_A},
        )
        assert response.status_code == 200
        assert response.json()["review"] != "auto_approved"
        truth[response.json()["request_id"]] = int(sample["labels"][index])

    context = browser.new_context(viewport={"width": 600, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The page's first call, without a key, gets its 401 (how the page learns
    # that this server wants one); Chromium logs that. Anything else is an error.
    expected = "status of 401 (Unauthorized)"
    page.on(
        "console",
        lambda msg: (
            msg.type == "error" and expected not in msg.text and errors.append(msg.text)
        ),
    )
    response = page.goto(f"{base_url}/review")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#login")).to_be_visible()  # no key yet: the page asks
    page.fill("#key", KEY_C)
    page.press("#key", "Enter")
    work = page.locator("#work")
    expect(work).to_be_visible()
    expect(page.locator("#guesses li")).to_have_count(3)
    expect(page.locator("#progress")).to_have_text(
        f"0 reviewed · 0 skipped · {REVIEWED + 2} waiting"
    )
    skipped = work.get_attribute("data-request-id")
    page.keyboard.press("s")
    expect(work).not_to_have_attribute("data-request-id", skipped)
    answered = []
    for _ in range(REVIEWED):
        request_id = work.get_attribute("data-request-id")
        assert request_id in truth and request_id != skipped
        page.keyboard.press(str(truth[request_id]))
        expect(work).not_to_have_attribute("data-request-id", request_id)
        answered.append(request_id)
    expect(page.locator("#progress")).to_have_text(
        f"{REVIEWED} reviewed · 1 skipped · 1 waiting"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)
    assert page.evaluate("sessionStorage.getItem('mnist-review-key')") == KEY_C
    context.close()
    assert errors == []

    stored = labels_in(database)
    assert {rid: stored[rid] for rid in answered} == {
        rid: truth[rid] for rid in answered
    }
    assert stored[skipped] is None
    assert sum(label is not None for label in stored.values()) == REVIEWED


def test_a_key_without_the_review_role_is_told_so(review_server, browser):  # noqa: F811
    base_url, _ = review_server
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base_url}/review")
    page.fill("#key", KEY_A)
    page.press("#key", "Enter")
    expect(page.locator("#error")).to_have_text(
        re.compile(r"lacks the role 'review' that GET /review/items needs")
    )
    expect(page.locator("#login")).to_be_visible()
    context.close()
