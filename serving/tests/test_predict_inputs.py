"""Bodies the framework parses: FastAPI's validation errors and our clear 4xx."""

from __future__ import annotations

import pytest

from conftest import KEY_A

CUT = (
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
    b"half an upload"
)


@pytest.mark.parametrize(
    ("content", "content_type", "loc", "kind"),
    [
        (b"", "application/json", ["body"], "missing"),
        (b'{"image": "abc"}', None, ["body"], "model_attributes_type"),
        (b'{"image": "abc"}', "text/plain", ["body"], "model_attributes_type"),
        (b'{"image": ', "application/json", ["body", 10], "json_invalid"),
        (b"[1, 2]", "application/json", ["body"], "model_attributes_type"),
        (b'{"image": 5}', "application/json", ["body", "image"], "string_type"),
        (b'{"image": ""}', "application/json", ["body", "image"], "string_too_short"),
    ],
    ids=["empty", "no-type", "text", "bad-json", "list", "number", "empty-image"],
)
def test_drawing_body_errors_are_fastapis(client, content, content_type, loc, kind):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/predict-drawing", content=content, headers=headers)
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert (problem["loc"], problem["type"]) == (loc, kind)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "detail"),
    [
        # JSON subtypes are JSON: the body is read, and its bad base64 named.
        (b'{"image": "%%%"}', "application/vnd.mnist+json", 422, "not valid base64"),
        (b'{"image": "\xff"}', "application/json", 400, "send UTF-8 JSON"),
    ],
    ids=["json-subtype", "not-utf8"],
)
def test_drawing_body_errors(client, body, content_type, status, detail):
    response = client.post(
        "/predict-drawing", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == status
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("content_type", "body", "problem"),
    [
        ("multipart/form-data", b"x", "Missing boundary"),
        ("multipart/form-data; boundary=b", b"--b\r\nno headers\r\n", "Invalid"),
        (
            "multipart/form-data; boundary=b",
            b"".join(
                b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i
                for i in range(10_000)
            )
            + b"--b--\r\n",
            "Too many fields",
        ),
    ],
)
def test_a_multipart_body_the_parser_refuses_is_400_with_the_fix(
    client, content_type, body, problem
):
    """The parser's reason, then what to send instead."""
    response = client.post(
        "/predict", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("multipart body cannot be read: ")
    assert problem in detail
    assert "curl -F file=@digit.png" in detail


def test_multipart_cut_short_has_no_file(client):
    """python-multipart drops the unfinished part: no file arrived."""
    response = client.post(
        "/predict",
        content=CUT,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "multipart field 'file' with a PNG or JPEG file is required"
    )


def test_text_in_the_file_field_is_422(client):
    response = client.post("/predict", data={"file": "not a file"})
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "file"]


def test_key_is_checked_before_the_body_is_read(client_with):
    with client_with(api_keys=KEY_A) as client:
        response = client.post("/predict", content=CUT, headers={"content-type": "x"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "ApiKey"
