"""Property-based API tests: schemathesis against the app's OpenAPI, in-process.

Two runs over every operation, each with a fixed seed:
- fuzzing in both generation modes (positive: valid by the schema; negative:
  broken on purpose), at least EXAMPLES requests per operation;
- stateful: sequences of calls chained through the OpenAPI links (a prediction's
  `request_id` sent on as the next call's `X-Request-ID`).
No response may be a 5xx, and every response must match the documented status
codes, content types and schemas.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from conftest import make_settings
from mnist_serving.main import create_app
from strategies import any_image_bytes, digit_images

SEED = 20261126
# SCHEMATHESIS_EXAMPLES lowers it for a quick local loop; CI runs the full count.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "1000"))
# Real drawings among the generated files, so that the positive mode reaches the
# model and the stateful run gets 200s to follow links from; the default binary
# strategy almost never yields an image with a digit in it.
schemathesis.openapi.format("binary", any_image_bytes())
schemathesis.openapi.format(
    "image-data-url",
    st.one_of(
        digit_images().map(lambda raw: base64.b64encode(raw).decode()),
        digit_images().map(
            lambda raw: "data:image/png;base64," + base64.b64encode(raw).decode()
        ),
        st.text(min_size=1),
    ),
)
# A real SQLite feedback store, so that POST /feedback answers 200/404/409/422.
# Writes every 20 ms: an unknown id's 404 waits 1.5 flush intervals (another
# replica's write), which at the default 0.5 s would add up over the examples.
STORE = Path(tempfile.mkdtemp(prefix="mnist-schemathesis-")) / "feedback.db"
APP = create_app(
    make_settings(
        max_batch_images=8,
        database_url=f"sqlite:///{STORE}",
        feedback_flush_seconds=0.02,
    )
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
)
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
SENT: Counter[str] = Counter()  # requests sent per operation, by the fuzzing test
STEPS: Counter[str] = Counter()  # stateful steps per operation
CHAINED: Counter[str] = Counter()  # stateful steps sent with an earlier request_id
ISSUED: set[str] = set()  # request ids of the stateful run's 200 answers
# Operations whose inputs can be varied (a body); the others take no parameters,
# so Hypothesis runs out of distinct cases long before EXAMPLES.
STEPS_PER_RUN = 10  # stateful steps per generated scenario (at most)
WITH_INPUT = (
    "POST /predict",
    "POST /predict-drawing",
    "POST /predict-batch",
    "POST /predict-number",
    "POST /predict-number-drawing",
)


@pytest.fixture(scope="module", autouse=True)
def _lifespan():
    """Keep the app's lifespan running (model loaded) while the cases run."""
    with TestClient(APP) as client:
        assert client.get("/health/ready").status_code == 200
        yield


@schema.parametrize()
@seed(SEED)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case):
    SENT[case.operation.label] += 1
    case.call_and_validate(checks=CHECKS)


def test_every_input_operation_got_its_share_of_requests():
    """The fuzzing above really sent EXAMPLES requests to each operation with input."""
    if not SENT:
        pytest.skip("test_api_conforms_to_its_schema did not run in this session")
    short = {op: SENT[op] for op in WITH_INPUT if SENT[op] < EXAMPLES}
    assert not short, f"operations that got fewer than {EXAMPLES} requests: {short}"


class Workflow(schema.as_state_machine()):
    """Chains of calls through the OpenAPI links, with the fuzzing test's checks.

    Not the default stateful checks: those include "schema-valid data must be
    accepted", which no image API can meet (any string is a valid base64 field
    by the schema, few are PNGs; those get their documented 422).
    """

    def after_call(self, response, case):
        STEPS[case.operation.label] += 1
        if (case.headers or {}).get("X-Request-ID") in ISSUED:
            CHAINED[case.operation.label] += 1  # a link carried an earlier id
        if response.status_code == 200:
            ISSUED.add(response.json().get("request_id"))
        super().after_call(response, case)

    def validate_response(self, response, case, additional_checks=None, **kwargs):
        case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)


Workflow.TestCase.settings = settings(
    # Scenarios run 1-STEPS_PER_RUN steps, about half on average: twice as many.
    max_examples=max(2 * EXAMPLES * len(WITH_INPUT) // STEPS_PER_RUN, 10),
    stateful_step_count=STEPS_PER_RUN,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# About 1,000 scenarios over five operations take two minutes or more here.
TestStateful = pytest.mark.timeout(600)(seed(SEED)(Workflow.TestCase))


def test_stateful_run_sent_enough_and_followed_the_links():
    """The stateful run above: EXAMPLES steps per operation, some through links."""
    if not STEPS:
        pytest.skip("TestStateful did not run in this session")
    short = {op: STEPS[op] for op in WITH_INPUT if STEPS[op] < EXAMPLES}
    assert not short, f"operations with fewer than {EXAMPLES} stateful steps: {short}"
    unlinked = [op for op in WITH_INPUT if not CHAINED[op]]
    assert not unlinked, f"no step reached {unlinked} through a link: {CHAINED}"
