"""The hand-written multipart reader against httpx's encoder and odd bodies."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from python_multipart.multipart import parse_options_header

from mnist_serving.multipart import (
    MultipartError,
    TooManyFilesError,
    boundary_of,
    disposition_options,
    file_parts,
)


def encoded(files: list, data: dict | None = None) -> tuple[bytes, str]:
    """Body and Content-Type as httpx (the TestClient's encoder) builds them."""
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    return request.read(), request.headers["content-type"]


def parse(body: bytes, content_type: str, max_files: int = 10) -> list:
    boundary = boundary_of(content_type)
    assert boundary is not None
    return file_parts(body, boundary, max_files=max_files, max_fields=5)


def test_files_in_order_with_names_and_exact_bytes():
    blobs = [b"\x89PNG\r\n\x1a\n\r\n--not-the-boundary\r\n", b"", b"\xff" * 3000]
    files = [("files", (f"d{i}.png", b, "image/png")) for i, b in enumerate(blobs)]
    body, content_type = encoded(files, data={"note": "kept out"})
    parts = parse(body, content_type)
    assert [(p.field, p.filename, p.data) for p in parts] == [
        ("files", f"d{i}.png", blob) for i, blob in enumerate(blobs)
    ]


def test_quoted_boundary_preamble_padding_and_epilogue():
    body = (
        b"preamble to ignore\r\n"
        b"--a;b  \r\n"
        b'Content-Disposition: form-data; name="file"; filename="x \\"y\\".png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
        b"DATA\r\n"
        b"--a;b--\r\nepilogue"
    )
    (part,) = parse(body, 'multipart/form-data; boundary="a;b"')
    assert (part.field, part.filename, part.data) == ("file", 'x "y".png', b"DATA")


def test_utf8_filename():
    body, content_type = encoded([("file", ("chiffre-é.png", b"x", "image/png"))])
    assert parse(body, content_type)[0].filename == "chiffre-é.png"


def test_other_content_types_are_not_multipart():
    assert boundary_of("application/json") is None
    assert boundary_of(None) is None


def test_missing_boundary_is_an_error():
    with pytest.raises(MultipartError, match="no boundary"):
        boundary_of("multipart/form-data")


NO_NAME = b'--b\r\nContent-Disposition: form-data; filename="a"\r\n\r\nx\r\n--b--'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"no delimiter at all", "does not contain its boundary"),
        (b'--b\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n', "part"),
        (b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\nx', "closing"),
        (b"--b junk\r\n\r\nx\r\n--b--", "malformed part header"),
        (NO_NAME, "name"),
    ],
    ids=["no-boundary", "cut-in-headers", "cut-in-data", "junk-after-line", "no-name"],
)
def test_malformed_bodies_are_refused(body, message):
    with pytest.raises(MultipartError, match=message):
        parse(body, "multipart/form-data; boundary=b")


def test_reading_stops_after_max_files():
    files = [("files", (f"{i}.png", b"x", "image/png")) for i in range(5)]
    body, content_type = encoded(files)
    assert len(parse(body, content_type, max_files=5)) == 5
    with pytest.raises(TooManyFilesError):
        parse(body, content_type, max_files=4)


def test_too_many_plain_fields_are_refused():
    body, content_type = encoded(
        [("file", ("a.png", b"x", "image/png"))], data={f"k{i}": "v" for i in range(6)}
    )
    with pytest.raises(MultipartError, match="more than 5 non-file fields"):
        parse(body, content_type)


VALUE_TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12)


@seed(20261126)
@settings(max_examples=500, deadline=None, database=None)
@given(
    name=VALUE_TEXT,
    filename=st.none() | VALUE_TEXT,
    kind=st.sampled_from(["form-data", "Form-Data", "attachment"]),
    spacing=st.sampled_from(["; ", ";", " ;  ", ";\t"]),
    tail=st.sampled_from(["", " ", ";", "; x=1"]),
)
def test_disposition_options_are_python_multiparts(name, filename, kind, spacing, tail):
    """The regex shortcut and parse_options_header read every value alike."""
    text = f'{kind}{spacing}name="{name}"'
    if filename is not None:
        text += f'{spacing}filename="{filename}"'
    value = (text + tail).encode()
    expected = parse_options_header(value.decode("latin-1"))[1]
    assert disposition_options(value) == expected
