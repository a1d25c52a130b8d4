"""Small requests that would cost the server far more than they cost the sender.

Each gets a 4xx that says why, quickly, and nothing it sends grows a cache.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import png
from mnist_serving.imaging.decode import MAX_ASPECT, MAX_JPEG_SCANS
from serve_process import running_server

MODEL = str(Path(__file__).parent / "fixtures/model/mnist_cnn.tflite")

JSON = {"content-type": "application/json"}


def raw(client, data: bytes, kind: str = "png"):
    return client.post(
        "/predict", content=data, headers={"content-type": f"image/{kind}"}
    )


def chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def thin_png(width: int, height: int) -> bytes:
    """A real gray PNG of width x height, one ink pixel in the middle."""
    image = Image.new("L", (width, height), 0)
    image.putpixel((width // 2, height // 2), 255)
    return png(image)


@pytest.mark.parametrize(("width", "height"), [(262_144, 1), (1, 16_777_216)])
def test_absurd_aspect_ratio_is_422(client, width, height):
    started = time.perf_counter()
    response = raw(client, thin_png(width, height))
    assert response.status_code == 422
    assert (
        f"more than {MAX_ASPECT} times longer than it is wide"
        in (response.json()["detail"])
    )
    assert time.perf_counter() - started < 2


def test_batch_of_thin_images_is_422_at_the_first(client):
    data = thin_png(262_144, 1)
    files = [("files", (f"t{i}.png", data, "image/png")) for i in range(20)]
    response = client.post("/predict-batch", files=files)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("image 0 (t0.png):")


def test_wide_but_sane_image_is_classified(client, sample):
    """64:1 is allowed: a digit in a long strip is still found and read."""
    strip = np.zeros((64, 4096), np.uint8)
    strip[18:46, 2000:2028] = sample["images"][0]
    response = raw(client, png(strip))
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == sample["labels"][0]


def progressive_jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", progressive=True, quality=90)
    return buffer.getvalue()


def test_progressive_jpeg_is_read(client, sample):
    data = progressive_jpeg(sample["images"][0])
    assert 1 < data.count(b"\xff\xda") <= MAX_JPEG_SCANS
    response = raw(client, data, "jpeg")
    assert response.status_code == 200
    assert response.json()["digit"] == sample["labels"][0]


@pytest.mark.parametrize("extra", [MAX_JPEG_SCANS, 10_000])
def test_jpeg_of_many_scans_is_refused_before_decoding(client, sample, extra):
    data = progressive_jpeg(sample["images"][0])
    last_scan = data.rindex(b"\xff\xda")
    scan = data[last_scan:-2]  # the last scan, up to the end-of-image marker
    bomb = data[:-2] + scan * extra + data[-2:]  # just past the bound, far past
    assert len(bomb) < 5 * 1024 * 1024
    started = time.perf_counter()
    response = raw(client, bomb, "jpeg")
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        f"JPEG has more than {MAX_JPEG_SCANS} scans (start-of-scan markers); save "
        "it as a baseline JPEG"
    )
    assert time.perf_counter() - started < 1


def test_png_chunk_flood_behind_a_big_header_is_413_at_once(client_with):
    header = struct.pack(">IIBBBBB", 5000, 5000, 8, 0, 0, 0, 0)
    flood = chunk(b"teXt", b"") * 430_000  # 5 MB of empty ancillary chunks
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + flood
    with_limit = {"max_image_pixels": 1_000_000, "max_body_bytes": 8 * 1024 * 1024}
    with client_with(**with_limit) as small:
        started = time.perf_counter()
        response = raw(small, data)
        elapsed = time.perf_counter() - started
    assert response.status_code == 413
    assert "25000000 pixels" in response.json()["detail"]
    assert elapsed < 0.5


@pytest.mark.parametrize("path", ["/predict-drawing", "/predict-number-drawing"])
@pytest.mark.parametrize(
    ("body", "separators"),
    [
        ({f"k{i}": 1 for i in range(40_000)}, 79_999),  # 0.5 MB of keys
        ({"image": [1] * 100_000}, 100_000),  # an array instead of a string
        ({"image": "iVBO", **{f"k{i}": "" for i in range(32)}}, 65),  # just past
    ],
)
def test_json_of_many_parts_is_refused_before_parsing(client, path, body, separators):
    data = json.dumps(body).encode()
    assert len(data) < 512 * 1024  # below the JSON body limit: the count refuses it
    response = client.post(path, content=data, headers=JSON)
    assert response.status_code == 422
    assert len(response.content) < 1_000
    assert response.json()["detail"] == (
        f"JSON body has {separators} ',' and ':' separators, above the limit of 64 "
        f"for {path}; send one object {{'image': '<base64 PNG or JPEG, or a data "
        "URL>'}"
    )


def test_a_few_unknown_keys_get_one_short_error(client):
    body = {"image": "iVBO", **{f"k{i}": 1 for i in range(20)}}
    response = client.post("/predict-drawing", content=json.dumps(body), headers=JSON)
    assert response.status_code == 422
    assert "body has 21 keys" in response.text


def test_deeply_nested_json_is_400(client):
    body = b"[" * 200_000 + b"]" * 200_000
    response = client.post(
        "/predict-drawing", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "send UTF-8 JSON" in response.json()["detail"]


def test_batch_pixels_in_all_are_capped(client_with):
    big = png(np.zeros((4096, 4096), np.uint8))
    files = [("files", (f"b{i}.png", big, "image/png")) for i in range(2)]
    with client_with(max_batch_pixels=20_000_000) as client:
        response = client.post("/predict-batch", files=files)
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert detail.startswith("image 1 (b1.png): the batch's images so far hold")
    assert "above the limit of 20000000" in detail


def small_header_flood(megabytes: float) -> bytes:
    """A 28x28 PNG header followed by empty ancillary chunks and no image data:
    Pillow reads every chunk while it opens the file, before any pixel check."""
    header = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    count = int(megabytes * 1024 * 1024) // 12
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"teXt", b"") * count


@pytest.mark.parametrize("path", ["/predict", "/predict-number"])
def test_png_chunk_flood_behind_a_small_header_is_opened_in_a_child(client, path):
    response = client.post(
        path, content=small_header_flood(4.5), headers={"content-type": "image/png"}
    )
    assert response.status_code == 400
    assert "send a complete PNG or JPEG file" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/predict", "/predict-number"])
def test_decoding_past_its_cpu_budget_is_422(client_with, path):
    limits = {"decode_cpu_seconds": 1, "max_body_bytes": 64 * 1024 * 1024}
    with client_with(**limits) as client:
        response = client.post(
            path,
            content=small_header_flood(48),  # several seconds of Pillow's time
            headers={"content-type": "image/png"},
        )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("image needs more than 1 s of CPU time to decode")


def test_batch_images_past_the_cpu_budget_are_422_naming_the_image(client_with):
    limits = {"decode_cpu_seconds": 1, "max_body_bytes": 64 * 1024 * 1024}
    files = [("files", ("flood.png", small_header_flood(48), "image/png"))]
    with client_with(**limits) as client:
        response = client.post("/predict-batch", files=files)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "image 0 (flood.png): image needs more than 1 s of CPU time"
    )


def first_bytes_answer(
    port: int, path: str, body: bytes, declared: int
) -> tuple[int, str]:
    """Send headers declaring `declared` bytes but only `body`: status and detail."""
    kind = "png" if body.startswith(b"\x89PNG") else "jpeg"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/{kind}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        # The rest of the body is never sent: a timeout here means no answer.
        answer = sock.makefile("rb")
        status = int(answer.readline().split()[1])
        length = 0
        while (line := answer.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, json.loads(answer.read(length))["detail"]


@pytest.mark.parametrize("path", ["/predict", "/predict-number"])
def test_a_body_condemned_by_its_first_bytes_is_refused_before_the_rest(
    tmp_path, sample, path
):
    """The server answers after 128 KiB of a 4.8 MB flood or scan bomb."""
    header = struct.pack(">IIBBBBB", 5000, 5000, 8, 0, 0, 0, 0)
    flood = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"teXt", b"") * 400_000
    )
    image = Image.fromarray(sample["images"][0])
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", progressive=True)
    jpeg = buffer.getvalue()
    scan = jpeg[jpeg.rindex(b"\xff\xda") : -2]
    bomb = jpeg[:-2] + scan * (4_000_000 // len(scan)) + jpeg[-2:]
    with running_server(tmp_path, {"MODEL_URI": MODEL}) as server:
        for data, status, detail in (
            (flood, 413, "25000000 pixels"),
            (bomb, 422, f"JPEG has more than {MAX_JPEG_SCANS} scans"),
        ):
            got = first_bytes_answer(server.port, path, data[:131_072], len(data))
            assert got[0] == status and detail in got[1], got
        # A big valid image is read whole, past the first check.
        big = Image.fromarray(sample["images"][0]).resize((1400, 1400))
        noisy = np.asarray(big, dtype=np.uint8) | np.random.default_rng(0).integers(
            0, 8, (1400, 1400), dtype=np.uint8
        )
        data = png(Image.fromarray(noisy))
        assert len(data) > 4 * 65536
        response = httpx.post(
            server.url + path, content=data, headers={"content-type": "image/png"}
        )
        assert response.status_code == 200, response.text
