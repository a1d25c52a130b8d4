"""Decompression bombs: images whose header declares far more pixels than allowed.

Each is a few hundred bytes; every endpoint must answer 413 naming the limit,
never decode it and never fail with a 500.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import pytest

from conftest import jpeg, png
from mnist_serving.core.config import Settings

LIMIT = Settings.model_fields["max_image_pixels"].default
FACTORS = {"1.01x": 1.01, "2x": 2.0, "100x": 100.0}


def side_for(factor: float) -> int:
    """A square side whose pixel count is at least `factor` times the limit."""
    return int(np.ceil(np.sqrt(LIMIT * factor)))


def png_bomb(side: int) -> bytes:
    """A PNG whose IHDR declares side x side gray pixels, with one tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def jpeg_bomb(side: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is rewritten to side x side."""
    data = bytearray(jpeg(np.full((8, 8), 255, np.uint8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    return bytes(data)


BOMBS = {"png": png_bomb, "jpeg": jpeg_bomb}


def send(client, path: str, data: bytes, kind: str):
    media = f"image/{kind}"
    if path == "multipart":
        return client.post("/predict", files={"file": (f"b.{kind}", data, media)})
    if path == "raw":
        return client.post("/predict", content=data, headers={"content-type": media})
    if path == "base64":
        text = f"data:{media};base64," + base64.b64encode(data).decode()
        return client.post("/predict-drawing", json={"image": text})
    files = [("files", ("ok.png", png(np.eye(28, dtype=np.uint8) * 255), "image/png"))]
    files.append(("files", (f"b.{kind}", data, media)))
    return client.post("/predict-batch", files=files)


@pytest.mark.parametrize("path", ["multipart", "raw", "base64", "batch"])
@pytest.mark.parametrize("kind", sorted(BOMBS))
@pytest.mark.parametrize("factor", list(FACTORS), ids=list(FACTORS))
def test_bomb_is_413_naming_the_limit(client, path, kind, factor):
    side = side_for(FACTORS[factor])
    data = BOMBS[kind](side)
    assert len(data) < 2_000  # a few hundred bytes claim billions of pixels
    response = send(client, path, data, kind)
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert f"limit of {LIMIT}" in detail
    assert "scale it down" in detail
    if path == "batch":
        assert detail.startswith(f"image 1 (b.{kind}):")
    assert client.get("/health/live").status_code == 200


def test_jpeg_at_the_hard_maximum_is_413(client):
    """65535 x 65535, the largest frame JPEG can declare."""
    response = send(client, "raw", jpeg_bomb(65535), "jpeg")
    assert response.status_code == 413
    assert f"limit of {LIMIT}" in response.json()["detail"]
