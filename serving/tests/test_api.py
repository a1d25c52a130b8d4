"""API tests through TestClient: every happy path and each bad input's 4xx."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURE_VERSION, KEY_A, KEY_B, KEY_C, MODEL_ROOT, jpeg, png
from mnist_serving.api.routes import predict
from mnist_serving.core.config import Settings
from mnist_serving.core.log_config import JsonFormatter
from mnist_serving.core.workers import IMAGE_THREAD_NICE
from mnist_serving.model.review import review_for


def files_for(data: bytes, name: str = "digit.png", kind: str = "image/png"):
    return {"file": (name, data, kind)}


def assert_prediction(body: dict, digit: int | None = None) -> None:
    assert set(body) >= {
        "digit",
        "confidence",
        "probabilities",
        "review",
        "model_version",
        "request_id",
    }
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["confidence"] == max(body["probabilities"])
    if digit is not None:
        assert body["digit"] == digit


# --- happy paths -------------------------------------------------------------


def test_predict_png_classifies_mnist_test_digits(client, sample):
    correct = 0
    for image, label in zip(sample["images"][:60], sample["labels"][:60], strict=True):
        response = client.post("/predict", files=files_for(png(image)))
        assert response.status_code == 200, response.text
        correct += response.json()["digit"] == label
    assert correct >= 58


def test_predict_response_fields(client, digit_png):
    response = client.post("/predict", files=files_for(digit_png))
    body = response.json()
    assert_prediction(body, digit=7)
    assert body["review"] == "auto_approved"
    assert body["model_version"] == FIXTURE_VERSION
    assert response.headers["x-request-id"] == body["request_id"]


def test_predict_dark_on_light_jpeg(client, sample):
    photo = np.asarray(Image.fromarray(255 - sample["images"][1]).resize((300, 300)))
    response = client.post(
        "/predict", files=files_for(jpeg(photo), "scan.jpg", "image/jpeg")
    )
    assert response.status_code == 200, response.text
    assert_prediction(response.json(), digit=int(sample["labels"][1]))


def test_large_image_goes_through_the_worker_thread(client_with, sample):
    big = np.asarray(Image.fromarray(sample["images"][4]).resize((1200, 1200)))
    with client_with(inline_pixels=10_000) as client:
        response = client.post("/predict", files=files_for(png(big)))
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == sample["labels"][4]


def test_large_images_are_prepared_on_low_priority_threads(
    client_with, sample, monkeypatch
):
    """A big image is decoded in a child process (tests/test_decode_process.py)
    and prepared on a worker thread; a small one on the event loop."""

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: list[tuple[str, str, int]] = []

    def spy(name: str, function):
        def spied(*args):
            seen.append((name, threading.current_thread().name, nice()))
            return function(*args)

        return spied

    for name, step in (("image_to_mnist", "opened"), ("gray_to_mnist", "decoded")):
        monkeypatch.setattr(predict, name, spy(step, getattr(predict, name)))
    small = sample["images"][4]
    big = np.asarray(Image.fromarray(small).resize((1200, 1200)))
    with client_with(inline_pixels=10_000) as client:
        for image in (big, small):
            response = client.post("/predict", files=files_for(png(image)))
            assert response.status_code == 200, response.text
            assert response.json()["digit"] == sample["labels"][4]
    (big_step, worker, worker_nice), (small_step, loop, loop_nice) = seen
    assert big_step == "decoded"  # by the child; never opened in this process
    assert worker.startswith("mnist-image")
    assert worker_nice == max(nice(), IMAGE_THREAD_NICE)
    assert small_step == "opened"
    assert not loop.startswith("mnist-image")  # small images stay on the loop
    assert loop_nice == nice()  # whose priority is the process's


def test_predict_drawing_with_data_url_and_bare_base64(client, sample):
    text = base64.b64encode(png(255 - sample["images"][2])).decode()
    for image in (f"data:image/png;base64,{text}", text):
        response = client.post("/predict-drawing", json={"image": image})
        assert response.status_code == 200, response.text
        assert_prediction(response.json(), digit=int(sample["labels"][2]))


def test_predict_batch_answers_in_order(client, sample):
    images = sample["images"][:32]
    files = [
        ("files", (f"{i}.png", png(im), "image/png")) for i, im in enumerate(images)
    ]
    response = client.post("/predict-batch", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 32
    digits = [item["digit"] for item in body["predictions"]]
    assert (
        sum(d == label for d, label in zip(digits, sample["labels"][:32], strict=True))
        >= 31
    )
    single = client.post("/predict", files=files_for(png(images[5]))).json()
    assert body["predictions"][5]["probabilities"] == pytest.approx(
        single["probabilities"], abs=1e-5
    )


def test_request_id_from_caller_is_kept(client, digit_png):
    response = client.post(
        "/predict", files=files_for(digit_png), headers={"X-Request-ID": "scan-42"}
    )
    assert response.json()["request_id"] == "scan-42"
    assert response.headers["x-request-id"] == "scan-42"


def test_health_endpoints(client):
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["model_loaded"] is True
    assert health["reason"] is None


def test_model_info_is_the_card_plus_version(client):
    card_file = next((MODEL_ROOT / "model_card.json").glob("*/model_card.json"))
    card = json.loads(card_file.read_text())
    info = client.get("/model-info").json()
    assert info["model_version"] == card["version"]
    for key in (
        "name",
        "classes",
        "input_shape",
        "preprocessing",
        "metrics",
        "model_sha256",
        "created_at",
        "git_commit",
    ):
        assert info[key] == card[key]
    assert info["sha256_verified"] is True


def test_metrics_count_requests_digits_and_confidence(client, digit_png):
    client.post("/predict", files=files_for(digit_png))
    text = client.get("/metrics").text
    assert 'mnist_predictions_total{digit="7"}' in text
    assert "mnist_prediction_confidence_bucket" in text
    assert (
        'mnist_http_requests_total{method="POST",route="/predict",status="200"}' in text
    )
    assert (
        'mnist_http_request_duration_seconds_bucket{le="0.005",route="/predict"}'
        in text
    )
    assert "mnist_model_ready 1.0" in text


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/predict",
        "/predict-drawing",
        "/predict-batch",
        "/health",
        "/health/live",
        "/health/ready",
        "/model-info",
        "/metrics",
        "/",
    ):
        assert path in paths


def test_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    assert '<canvas id="pad" width="280" height="280"' in html
    assert "http://" not in html and "https://" not in html
    assert "default-src 'none'" in response.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        body = client.get(asset)
        assert body.status_code == 200
        assert "http://" not in body.text and "https://" not in body.text


def test_audit_log_line_has_no_image_data(client, digit_png, caplog):
    with caplog.at_level(logging.INFO, logger="mnist_serving.audit"):
        client.post(
            "/predict", files=files_for(digit_png), headers={"X-Request-ID": "a1"}
        )
    records = [r for r in caplog.records if r.name == "mnist_serving.audit"]
    assert len(records) == 1
    (entry,) = records[0].audit_entries
    assert entry["request_id"] == "a1"
    assert entry["client_id"] == "testclient"
    assert (entry["digit"], entry["review"]) == (7, "auto_approved")
    assert entry["confidence"] > 0.95
    assert entry["latency_ms"] >= 0
    assert set(entry) == {
        "event",
        "request_id",
        "client_id",
        "endpoint",
        "index",
        "digit",
        "confidence",
        "review",
        "latency_ms",
    }


def test_batch_audit_is_one_json_line_per_prediction(client, sample, caplog):
    files = [
        ("files", (f"{i}.png", png(sample["images"][i]), "image/png")) for i in range(3)
    ]
    with caplog.at_level(logging.INFO, logger="mnist_serving.audit"):
        client.post("/predict-batch", files=files)
    (record,) = [r for r in caplog.records if r.name == "mnist_serving.audit"]
    lines = JsonFormatter().format(record).splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1, 2]
    assert all(json.loads(line)["level"] == "INFO" for line in lines)


@pytest.mark.parametrize(
    ("confidence", "review"),
    [
        (0.99, "auto_approved"),
        (0.95, "auto_approved"),
        (0.9, "secondary_verification"),
        (0.80, "secondary_verification"),
        (0.79, "manual_review"),
    ],
)
def test_review_thresholds(confidence, review):
    assert review_for(confidence, Settings()) == review


def test_review_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="must be below"):
        Settings(review_auto_approve=0.8, review_secondary=0.9)


# --- bad input: each maps to its own 4xx ---------------------------------------


def test_unsupported_type_is_415(client):
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="GIF")
    response = client.post("/predict", files=files_for(buffer.getvalue(), "a.gif"))
    assert response.status_code == 415
    assert "send a PNG or JPEG" in response.json()["detail"]


def test_corrupt_png_is_400(client, digit_png):
    response = client.post("/predict", files=files_for(digit_png[:70]))
    assert response.status_code == 400
    assert "could not be decoded" in response.json()["detail"]


def test_blank_image_is_422_no_ink(client):
    response = client.post(
        "/predict", files=files_for(png(np.zeros((28, 28), np.uint8)))
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("no ink found")


def test_missing_file_field_is_422(client):
    response = client.post("/predict", files={"other": ("a.png", b"x", "image/png")})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "multipart field 'file' with a PNG or JPEG file is required"
    )


def test_bad_base64_is_422(client):
    response = client.post("/predict-drawing", json={"image": "%%%"})
    assert response.status_code == 422
    assert "not valid base64" in response.json()["detail"]


def test_drawing_extra_field_is_422_without_echoing_input(client):
    response = client.post("/predict-drawing", json={"image": "abcd", "x": "secret"})
    assert response.status_code == 422
    assert "secret" not in response.text


def test_drawing_not_json_is_422(client):
    response = client.post(
        "/predict-drawing", content=b"{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("count", "message"),
    [(4, "4 images, above the limit of 3"), (9, "more than 3 images")],
    ids=["counted", "stopped-reading-early"],
)
def test_too_many_batch_images_is_422(client_with, digit_png, count, message):
    with client_with(max_batch_images=3) as client:
        files = [("files", (f"{i}.png", digit_png, "image/png")) for i in range(count)]
        response = client.post("/predict-batch", files=files)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_bad_image_in_batch_names_its_index(client, digit_png):
    files = [
        ("files", ("ok.png", digit_png, "image/png")),
        ("files", ("bad.png", b"GIF89a", "image/png")),
    ]
    response = client.post("/predict-batch", files=files)
    assert response.status_code == 415
    assert response.json()["detail"].startswith("image 1 (bad.png):")


def test_body_over_limit_is_413_by_content_length(client_with):
    with client_with(max_body_bytes=2048) as client:
        response = client.post("/predict", files=files_for(b"\x89PNG" + b"0" * 5000))
    assert response.status_code == 413
    assert "above the limit of 2048 bytes" in response.json()["detail"]


def test_chunked_body_over_limit_is_413_while_reading(client_with):
    def chunks():
        yield b"--b\r\nContent-Disposition: form-data; "
        yield b'name="file"; filename="a"\r\n\r\n'
        for _ in range(10):
            yield b"0" * 1024

    with client_with(max_body_bytes=4096) as client:
        response = client.post(
            "/predict",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
    assert response.status_code == 413
    assert "above the limit of 4096 bytes" in response.json()["detail"]


def test_base64_over_cap_is_413(client_with, digit_png):
    text = base64.b64encode(digit_png).decode()
    with client_with(max_base64_chars=100) as client:
        response = client.post("/predict-drawing", json={"image": text})
    assert response.status_code == 413
    assert "characters, above the limit of 100" in response.json()["detail"]


def test_pixel_bomb_is_413(client_with):
    bomb = png(Image.new("1", (5000, 5000)))
    with client_with(max_image_pixels=1_000_000) as client:
        response = client.post("/predict", files=files_for(bomb))
    assert response.status_code == 413
    assert "25000000 pixels" in response.json()["detail"]


def test_api_key_required_when_configured(client_with, digit_png):
    with client_with(api_keys=f"{KEY_A},{KEY_B}") as client:
        missing = client.post("/predict", files=files_for(digit_png))
        wrong = client.post(
            "/predict", files=files_for(digit_png), headers={"X-API-Key": KEY_C}
        )
        right = client.post(
            "/predict", files=files_for(digit_png), headers={"X-API-Key": KEY_B}
        )
        health = client.get("/health/ready")
    assert missing.status_code == 401
    assert "missing API key" in missing.json()["detail"]
    assert wrong.status_code == 401
    assert "invalid API key" in wrong.json()["detail"]
    assert right.status_code == 200
    assert health.status_code == 200


def test_api_keys_from_a_mounted_secret_file(client_with, digit_png, tmp_path):
    secret = tmp_path / "api_keys"
    secret.write_text(f"{KEY_A}\n{KEY_B}\n")
    with client_with(api_keys_file=secret) as client:
        ok = client.post(
            "/predict", files=files_for(digit_png), headers={"X-API-Key": KEY_B}
        )
        refused = client.post("/predict", files=files_for(digit_png))
    assert (ok.status_code, refused.status_code) == (200, 401)


def test_empty_api_keys_file_fails_at_start(tmp_path):
    secret = tmp_path / "api_keys"
    secret.write_text(" \n")
    with pytest.raises(ValueError, match="holds no keys"):
        Settings(api_keys_file=secret)


def test_missing_api_keys_file_fails_at_start(tmp_path):
    with pytest.raises(ValueError, match="mount the Secret there or unset"):
        Settings(api_keys_file=tmp_path / "absent")


def test_rate_limit_is_429_with_retry_after(client_with, digit_png):
    with client_with(rate_limit="2/minute", api_keys=f"{KEY_A},{KEY_B}") as c:
        statuses = [
            c.post("/predict", files=files_for(digit_png), headers={"X-API-Key": KEY_A})
            for _ in range(3)
        ]
        other_key = c.post(
            "/predict", files=files_for(digit_png), headers={"X-API-Key": KEY_B}
        )
    assert [s.status_code for s in statuses] == [200, 200, 429]
    assert 1 <= int(statuses[2].headers["retry-after"]) <= 60
    assert "the rate limit is 2 per 1 minute" in statuses[2].json()["detail"]
    assert other_key.status_code == 200


def test_unknown_path_and_wrong_method_are_json(client):
    assert client.get("/nope").json() == {"detail": "Not Found"}
    response = client.get("/predict")
    assert response.status_code == 405
    assert "detail" in response.json()


def test_internal_error_is_500_without_stack_trace(client, digit_png, monkeypatch):
    model = client.app.state.holder.model

    def broken(_images):
        raise RuntimeError("interpreter exploded at 0xdeadbeef")

    monkeypatch.setattr(model, "predict", broken)
    response = client.post("/predict", files=files_for(digit_png))
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail.startswith("internal error; quote request id ")
    assert "Traceback" not in response.text and "deadbeef" not in response.text


def test_batch_names_a_blank_image(client, sample):
    images = [png(image) for image in sample["images"][:4]]
    images[3] = png(np.zeros((28, 28), np.uint8))
    files = [
        ("files", (f"d{i}.png", data, "image/png")) for i, data in enumerate(images)
    ]
    response = client.post("/predict-batch", files=files)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("image 3 (d3.png): no ink found")


def test_mixed_batch_gives_the_single_image_answers(client, sample):
    """PNG, JPEG, RGB and other sizes in one batch: each answer is the single one."""
    images = sample["images"][:4]
    big = Image.fromarray(images[3]).resize((200, 200))
    datas = [png(images[0]), jpeg(images[1]), png(images[2], mode="RGB"), png(big)]
    files = [("files", (f"d{i}", data, "image/*")) for i, data in enumerate(datas)]
    batch = client.post("/predict-batch", files=files).json()["predictions"]
    for data, answer in zip(datas, batch, strict=True):
        single = client.post("/predict", files={"file": ("d", data, "image/*")}).json()
        assert answer["digit"] == single["digit"]
        assert answer["probabilities"] == pytest.approx(
            single["probabilities"], abs=1e-5
        )


def test_metrics_label_is_the_route(client, digit_png):
    client.post("/predict", files=files_for(digit_png))
    text = client.get("/metrics").text
    assert (
        'mnist_http_requests_total{method="POST",route="/predict",status="200"}' in text
    )
