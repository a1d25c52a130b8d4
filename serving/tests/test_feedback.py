"""The feedback store, POST /feedback and the roles, on SQLite and on PostgreSQL.

Each test gets a new database (a SQLite file or a PostgreSQL database of the
session's real server) and an app whose lifespan migrates it.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy import create_engine, inspect, select, text

from conftest import KEY_A, KEY_B, KEY_C, make_settings, png, running
from mnist_serving.core.config import Settings
from mnist_serving.imaging.decode import open_image
from mnist_serving.imaging.preprocess import image_to_mnist
from mnist_serving.store.buffer import make_engine
from mnist_serving.store.migrate import upgrade
from mnist_serving.store.schema import predictions
from number_images import compose, first_of

PNG = {"content-type": "image/png"}
# KEY_A predicts (no roles written: the format from before roles), KEY_B gives
# feedback, KEY_C reviews.
KEYS = f"{KEY_A},{KEY_B}:feedback,{KEY_C}:review"
# Every confident prediction is still routed to review, so inputs are stored.
ALL_TO_REVIEW = {"review_auto_approve": 1.0, "review_secondary": 0.999999}


def rows(url: str) -> dict[str, dict]:
    """Every stored record by request id."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(select(predictions)).mappings().all()
    finally:
        engine.dispose()
    return {row["request_id"]: dict(row) for row in found}


def predict(client, image: bytes, key: str | None = KEY_A) -> dict:
    headers = {**PNG, **({"X-API-Key": key} if key else {})}
    response = client.post("/predict", content=image, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def feedback(client, request_id: str, label: object, key: str | None = KEY_B):
    headers = {"X-API-Key": key} if key else {}
    body = {"request_id": request_id, "label": label}
    return client.post("/feedback", json=body, headers=headers)


def test_each_prediction_is_recorded_with_the_input_of_review_items(
    store_url, sample, digit_png
):
    images = [png(image) for image in sample["images"][:3]]
    with running(database_url=store_url, api_keys=KEYS) as client:
        single = predict(client, digit_png)
        files = [
            ("files", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)
        ]
        batch = client.post("/predict-batch", files=files, headers={"X-API-Key": KEY_A})
        assert batch.status_code == 200
    # The app has stopped: its shutdown wrote the queue.
    stored = rows(store_url)
    batch_id = batch.json()["request_id"]
    assert set(stored) == {single["request_id"]} | {f"{batch_id}:{i}" for i in range(3)}
    record = stored[single["request_id"]]
    assert record["digit"] == single["digit"] == 7
    assert record["model_version"] == single["model_version"]
    assert record["client_id"].startswith("key-") and KEY_A not in record["client_id"]
    assert json.loads(record["probabilities"]) == pytest.approx(single["probabilities"])
    assert record["review"] == single["review"]
    for item in stored.values():
        routed = item["review"] != "auto_approved"
        assert (item["input"] is not None) == routed
        assert item["label"] is None and item["labelled_at"] is None
    created = record["created_at"]
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)


def test_the_input_is_the_models_own_28x28_uint8_input(store_url, sample):

    data = png(sample["images"][1])
    with running(database_url=store_url, **ALL_TO_REVIEW) as client:
        answer = predict(client, data, key=None)
    stored = rows(store_url)[answer["request_id"]]
    assert stored["client_id"] is None  # no keys configured: no client id stored
    assert len(stored["input"]) == 28 * 28
    expected = (image_to_mnist(open_image(data, 10**6)) * 255).round().astype("uint8")
    assert bytes(stored["input"]) == expected.tobytes()


def test_feedback_store_inputs_all_keeps_every_input(store_url, digit_png):
    with running(database_url=store_url, feedback_store_inputs="all") as client:
        answer = predict(client, digit_png, key=None)
    stored = rows(store_url)[answer["request_id"]]
    assert stored["review"] == "auto_approved"
    assert len(stored["input"]) == 28 * 28


def test_the_schema_is_the_contract(store_url):
    with running(database_url=store_url):
        pass
    engine = make_engine(store_url)
    try:
        inspector = inspect(engine)
        columns = {c["name"]: c for c in inspector.get_columns("predictions")}
        indexes = {
            tuple(i["column_names"]) for i in inspector.get_indexes("predictions")
        }
        version = inspector.get_table_names()
    finally:
        engine.dispose()
    assert list(columns) == [
        "request_id", "created_at", "model_version", "client_id", "digit",
        "confidence", "probabilities", "review", "input", "label",
        "labelled_at", "labelled_by",
    ]  # fmt: skip
    nullable = {name for name, column in columns.items() if column["nullable"]}
    assert nullable == {"client_id", "input", "label", "labelled_at", "labelled_by"}
    assert {("created_at",), ("label",)} <= indexes
    assert "alembic_version" in version


def test_feedback_right_after_the_prediction_is_recorded_once(store_url, digit_png):
    """The record is still queued (flushed every 60 s), yet the label finds it."""
    settings = {
        "database_url": store_url,
        "api_keys": KEYS,
        "feedback_flush_seconds": 60,
    }
    labels = REGISTRY.get_sample_value
    with running(**settings) as client:
        answer = predict(client, digit_png)
        version = answer["model_version"]
        before = (
            labels(
                "mnist_feedback_labels_total",
                {"model_version": version, "outcome": "correct"},
            )
            or 0
        )
        first = feedback(client, answer["request_id"], 7)
        assert first.status_code == 200, first.text
        assert first.json() == {
            "request_id": answer["request_id"],
            "label": 7,
            "status": "recorded",
            "model_version": version,
            "predicted_digit": 7,
            "correct": True,
        }
        again = feedback(client, answer["request_id"], 7)
        assert again.status_code == 200 and again.json()["status"] == "unchanged"
        conflict = feedback(client, answer["request_id"], 1)
        assert conflict.status_code == 409
        assert "already has the label 7, not 1" in conflict.json()["detail"]
        after = labels(
            "mnist_feedback_labels_total",
            {"model_version": version, "outcome": "correct"},
        )
    assert after == before + 1
    stored = rows(store_url)[answer["request_id"]]
    assert stored["label"] == 7  # kept, not overwritten by the conflicting label
    assert (
        stored["labelled_by"].startswith("key-") and KEY_B not in stored["labelled_by"]
    )
    assert stored["labelled_at"] is not None


def test_feedback_sent_to_another_replica_finds_the_queued_prediction(
    store_url, digit_png
):
    """Two replicas, one store: the label reaches B before A has written it."""
    settings = {"database_url": store_url, "api_keys": KEYS}
    settings["feedback_flush_seconds"] = 3.0  # both: B waits one interval of its own
    with running(**settings) as a, running(**settings) as b:
        assert a.portal.call(a.app.state.store.flush) is True  # migrated, then idle
        answer = predict(a, digit_png)
        assert answer["request_id"] not in rows(store_url)  # still in A's queue
        response = feedback(b, answer["request_id"], 7)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "recorded"
    assert rows(store_url)[answer["request_id"]]["label"] == 7


def test_each_digit_of_a_number_is_a_prediction_that_takes_feedback(store_url, sample):
    image = compose(first_of(sample, "4071")).image
    settings = {"database_url": store_url, "api_keys": KEYS, **ALL_TO_REVIEW}
    with running(**settings) as client:
        headers = {**PNG, "X-API-Key": KEY_A}
        response = client.post(
            "/predict-number", content=png(255 - image), headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        request_id = body["request_id"]
        corrected = feedback(client, f"{request_id}:2", 1)  # the clerk reads a 1
        assert corrected.status_code == 200, corrected.text
        assert corrected.json()["correct"] is False
        assert feedback(client, request_id, 4).status_code == 404  # the number itself
    stored = rows(store_url)
    places = [f"{request_id}:{place}" for place in range(4)]
    assert set(stored) == set(places)
    assert [stored[p]["digit"] for p in places] == [4, 0, 7, 1]
    assert {stored[p]["review"] for p in places} == {body["review"]}
    for place, digit in zip(places, body["digits"], strict=True):
        assert len(stored[place]["input"]) == 28 * 28  # each digit's model input
        probabilities = json.loads(stored[place]["probabilities"])
        assert probabilities == pytest.approx(digit["probabilities"], abs=1e-6)
    assert [stored[p]["label"] for p in places] == [None, None, 1, None]


def test_a_batch_image_takes_feedback_by_its_index(store_url, sample):
    files = [
        ("files", (f"{i}.png", png(sample["images"][i]), "image/png")) for i in range(2)
    ]
    with running(database_url=store_url, api_keys=KEYS) as client:
        batch = client.post("/predict-batch", files=files, headers={"X-API-Key": KEY_A})
        request_id = batch.json()["request_id"]
        wrong = feedback(client, f"{request_id}:1", 3)
        assert wrong.status_code == 200
        assert wrong.json()["correct"] is False  # sample 1 is a 2, predicted 2
        assert feedback(client, request_id, 3).status_code == 404  # the batch itself
    assert rows(store_url)[f"{request_id}:1"]["label"] == 3


@pytest.mark.parametrize(
    "request_id",
    [
        "no-such-request",
        "' OR '1'='1",
        "x'; DROP TABLE predictions; --",
        "%",
        "*",
    ],
)
def test_unknown_and_sql_looking_ids_are_just_unknown(request_id, digit_png, store_url):
    url = store_url
    with running(database_url=url, api_keys=KEYS) as client:
        kept = predict(client, digit_png)
        response = feedback(client, request_id, 7)
        assert response.status_code == 404
        detail = response.json()["detail"]
        assert f"no prediction with request id {request_id!r}" in detail
        assert "request_id" in detail  # the fix: which id to send
    stored = rows(url)
    assert set(stored) == {kept["request_id"]}  # the table is intact
    assert stored[kept["request_id"]]["label"] is None


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        (10, "less than or equal to 9"),
        (-1, "greater than or equal to 0"),
        ("7", "valid integer"),
        (7.0, "valid integer"),
        (True, "valid integer"),
        (None, "valid integer"),
        (10**100, "less than or equal to 9"),
    ],
)
def test_labels_must_be_integers_0_to_9(label, problem, digit_png, tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with running(database_url=url, api_keys=KEYS) as client:
        answer = predict(client, digit_png)
        response = feedback(client, answer["request_id"], label)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "label"]
    assert problem in error["msg"]
    assert rows(url)[answer["request_id"]]["label"] is None


def test_malformed_and_oversized_bodies(digit_png, tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with running(database_url=url, api_keys=KEYS) as client:
        headers = {"X-API-Key": KEY_B}
        long_id = client.post(
            "/feedback", json={"request_id": "x" * 81, "label": 1}, headers=headers
        )
        assert long_id.status_code == 422
        assert long_id.json()["detail"][0]["loc"] == ["body", "request_id"]
        huge = client.post(
            "/feedback", json={"request_id": "x" * 10**7, "label": 1}, headers=headers
        )
        assert huge.status_code == 413
        assert "above the limit of 4096 bytes for /feedback" in huge.json()["detail"]
        extra = client.post(
            "/feedback", json={"request_id": "a", "label": 1, "x": 1}, headers=headers
        )
        assert extra.status_code == 422
        missing = client.post("/feedback", json={"label": 1}, headers=headers)
        assert missing.status_code == 422
        not_json = client.post(
            "/feedback",
            content=b"{",
            headers={**headers, "content-type": "application/json"},
        )
        assert not_json.status_code in {400, 422}


def test_roles_are_checked_both_ways(digit_png, tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with running(database_url=url, api_keys=KEYS) as client:
        answer = predict(client, digit_png, key=KEY_A)
        predict_only = feedback(client, answer["request_id"], 7, key=KEY_A)
        assert predict_only.status_code == 403
        detail = predict_only.json()["detail"]
        assert (
            "lacks the role 'feedback' or 'review' that POST /feedback needs" in detail
        )
        assert KEY_A not in detail and "API_KEYS" in detail
        for key in (KEY_B, KEY_C):  # feedback and review keys cannot predict
            refused = client.post(
                "/predict", content=digit_png, headers={**PNG, "X-API-Key": key}
            )
            assert refused.status_code == 403
            assert (
                "lacks the role 'predict' that POST /predict needs"
                in refused.json()["detail"]
            )
        assert feedback(client, answer["request_id"], 7, key=None).status_code == 401
        assert (
            feedback(
                client, answer["request_id"], 7, key="wrong-key-0123456789"
            ).status_code
            == 401
        )
        assert feedback(client, answer["request_id"], 7, key=KEY_C).status_code == 200


def test_no_keys_means_feedback_is_open_as_prediction_is(digit_png, tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with running(database_url=url) as client:
        answer = predict(client, digit_png, key=None)
        assert feedback(client, answer["request_id"], 7, key=None).status_code == 200
    assert rows(url)[answer["request_id"]]["labelled_by"] is None


def test_expired_records_take_no_feedback_and_are_purged(store_url, digit_png):
    now = [datetime.now(UTC)]
    with running(database_url=store_url, feedback_retention_days=90) as client:
        store = client.app.state.store
        store.clock = lambda: now[0]
        old = predict(client, digit_png, key=None)
        now[0] += timedelta(days=60)
        recent = predict(client, digit_png, key=None)
        assert client.portal.call(store.flush) is True
        now[0] += timedelta(days=31)  # old is 91 days old, recent 31
        expired = feedback(client, old["request_id"], 7, key=None)
        assert expired.status_code == 404
        assert "in the last 90 days" in expired.json()["detail"]
        assert client.portal.call(store.purge) == 1
        assert client.portal.call(store.purge) == 0
        assert feedback(client, recent["request_id"], 7, key=None).status_code == 200
    assert set(rows(store_url)) == {recent["request_id"]}


def test_without_a_store_feedback_says_how_to_turn_it_on(digit_png):
    with running(database_url="none") as client:
        answer = predict(client, digit_png, key=None)
        response = feedback(client, answer["request_id"], 7, key=None)
        health = client.get("/health").json()
    assert response.status_code == 503
    assert "feedback store is off" in response.json()["detail"]
    assert "set DATABASE_URL" in response.json()["detail"]
    assert health["feedback_store"] == "off"


def test_health_reports_the_store(store_url):
    with running(database_url=store_url) as client:
        # The start does not wait for the database; the first write migrates.
        assert client.portal.call(client.app.state.store.flush) is True
        health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["feedback_store"] == "ok"
    assert health["feedback_records_lost"] == 0


def test_the_default_store_is_a_sqlite_file_under_the_project(tmp_path):
    settings = make_settings(database_url="", project_dir=tmp_path)
    assert settings.store_url == f"sqlite:///{tmp_path / 'data/feedback/feedback.db'}"
    engine = make_engine("postgresql://u:p@h/db?sslmode=verify-full")
    assert engine.url.drivername == "postgresql+pg8000"
    assert "sslmode" not in engine.url.query


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mysql://u@h/db", "scheme 'mysql', which the feedback store does not support"),
        ("postgres://u@h/db", "use sqlite:///path/to/file.db or postgresql://"),
        ("feedback.db", "does not support"),
    ],
)
def test_unsupported_database_urls_fail_at_start(value, message):
    with pytest.raises(ValidationError, match=message):
        Settings(database_url=value)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (f"{KEY_A}:admin", r"unknown roles \['admin'\]"),
        (f"{KEY_A}:", "unknown roles"),
        (f"{KEY_A}:predict+", "unknown roles"),
        ("short:feedback", "has 5 characters, fewer than 16"),
    ],
)
def test_bad_roles_fail_at_start(keys, message):
    with pytest.raises(ValidationError, match=message):
        Settings(api_keys=keys)


def test_keys_get_roles_in_the_keys_file(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"{KEY_A}\n{KEY_B}:predict+feedback+review\n")
    settings = Settings(api_keys_file=keys_file)
    assert settings.api_keys == [KEY_A, KEY_B]
    assert settings.key_roles == {
        KEY_A: {"predict"},
        KEY_B: {"predict", "feedback", "review"},
    }


def test_database_url_file_wins_when_it_exists(tmp_path):
    """The optional Secret's file, when mounted, overrides the image's 'none'."""
    secret = tmp_path / "database_url"
    absent = make_settings(database_url="none", database_url_file=secret)
    assert absent.store_url is None
    secret.write_text("postgresql://app:pw@db.example:5432/feedback\n")
    mounted = make_settings(database_url="none", database_url_file=secret)
    assert mounted.store_url == "postgresql://app:pw@db.example:5432/feedback"
    assert "pw" not in repr(mounted)
    secret.write_text("mysql://x")
    with pytest.raises(ValidationError, match="DATABASE_URL has the scheme 'mysql'"):
        make_settings(database_url_file=secret)


@pytest.mark.parametrize("setting", ["database_url_file", "admin_token_file"])
def test_a_secret_file_that_cannot_be_read_stops_the_start(setting, tmp_path):
    mounted_wrong = tmp_path / "secret"
    mounted_wrong.mkdir()  # a folder where the Secret's file should be
    with pytest.raises(ValidationError) as err:
        make_settings(**{setting: mounted_wrong})
    name = setting.upper()
    assert f"{name} {mounted_wrong} cannot be read" in str(err.value)
    assert f"fix the Secret's mount or unset {name}" in str(err.value)


def test_tls_to_postgresql_as_sslmode_asks(postgres, digit_png):
    """sslmode=require encrypts; verify-full refuses the test server's own cert."""
    database = postgres.create_database()
    with running(database_url=f"{database}?sslmode=require") as client:
        answer = predict(client, digit_png, key=None)
        assert feedback(client, answer["request_id"], 7, key=None).status_code == 200
        assert client.get("/health").json()["feedback_store"] == "ok"
    engine = make_engine(f"{database}?sslmode=require")
    try:
        with engine.connect() as connection:
            encrypted = connection.execute(
                text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).scalar_one()
    finally:
        engine.dispose()
    assert encrypted is True
    with running(database_url=f"{database}?sslmode=verify-full") as client:
        assert client.portal.call(client.app.state.store.flush) is False
        health = client.get("/health").json()
        assert health["status"] == "ok"  # predictions go on
        assert health["feedback_store"] == "unavailable"  # self-signed: refused


def test_unknown_sslmode_fails_at_start():
    with pytest.raises(ValidationError, match="sslmode='prefer'; use one of disable"):
        Settings(database_url="postgresql://u@h/db?sslmode=prefer")


def test_review_items_for_reviewer_keys_only(store_url, sample):
    settings = {"database_url": store_url, "api_keys": KEYS, **ALL_TO_REVIEW}
    with running(**settings) as client:
        answers = [predict(client, png(sample["images"][i])) for i in range(3)]
        assert feedback(client, answers[0]["request_id"], 7).status_code == 200
        reviewer = {"X-API-Key": KEY_C}
        waiting = client.get("/review/items", headers=reviewer)
        assert waiting.status_code == 200, waiting.text
        body = waiting.json()
        assert body["pending"] == 2  # the labelled one is done
        first = body["items"][0]
        assert first["request_id"] == answers[1]["request_id"]  # oldest first
        assert first["guesses"][0]["digit"] == answers[1]["digit"]
        assert len(first["guesses"]) == 3
        assert len(base64.b64decode(first["input"])) == 28 * 28
        assert first["created_at"].endswith(("Z", "+00:00"))
        one = client.get("/review/items?limit=1", headers=reviewer).json()
        assert len(one["items"]) == 1 and one["pending"] == 2
        for key in (KEY_A, KEY_B):  # predict and feedback keys
            refused = client.get("/review/items", headers={"X-API-Key": key})
            assert refused.status_code == 403
            assert "lacks the role 'review'" in refused.json()["detail"]
        assert client.get("/review/items").status_code == 401
        for limit in (0, 101, 10**30, "x"):
            bad = client.get(f"/review/items?limit={limit}", headers=reviewer)
            assert bad.status_code == 422
        page = client.get("/review")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="/static/review.js"></script>' in page.text


def test_review_items_without_a_store_say_so():
    with running(database_url="none") as client:
        response = client.get("/review/items")
    assert response.status_code == 503
    assert "feedback store is off" in response.json()["detail"]


def test_a_restart_keeps_the_records_and_migrates_nothing_twice(store_url, digit_png):
    answers = []
    for _ in range(2):  # two lifetimes of the service on one database
        with running(database_url=store_url) as client:
            answers.append(predict(client, digit_png, key=None)["request_id"])
    assert set(rows(store_url)) == set(answers)
    engine = make_engine(store_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(
                text("SELECT version_num FROM alembic_version")
            ).all()
    finally:
        engine.dispose()
    assert [row[0] for row in versions] == ["0001"]


def test_migrations_of_several_stores_at_once_in_one_process(tmp_path):
    """Alembic's context is process-global: concurrent upgrades must not collide."""
    engines = [create_engine(f"sqlite:///{tmp_path / f's{i}.db'}") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upgrade, engines))
    assert all(inspect(e).has_table("predictions") for e in engines)
