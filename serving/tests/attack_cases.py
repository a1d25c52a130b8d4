"""The attacks of the attack suite: small requests meant to cost the server a lot.

Each case builds its requests up front (so building them costs no time while
the server is measured); `send` posts them and returns the status codes, a
connection the server closed counting as 0. Attacks come from 127.0.0.2 with a
valid API key (a paying client gone rogue), so that per-address limits tell
them from the legitimate client on 127.0.0.1; only key_guessing has no key.

PROXY_CASES are attacks on the connection itself (header floods, half-sent
headers, slow bodies), which need no key: the pod's nginx stops them, uvicorn
has no limits or timeouts for them, so they are run only through the proxy.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import zlib
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image, ImageDraw

ATTACKER = "127.0.0.2"
CLOSED = 0


Request = dict[str, Any]


def send(url: str, requests: list[Request], api_key: str) -> list[int]:
    """POST each request from ATTACKER with `api_key` unless it has its own."""
    statuses = []
    transport = httpx.HTTPTransport(local_address=ATTACKER)
    with httpx.Client(transport=transport, timeout=30) as client:
        for request in requests:
            options = {k: v for k, v in request.items() if k != "path"}
            options["headers"] = {"X-API-Key": api_key, **options.get("headers", {})}
            try:
                response = client.post(url + request["path"], **options)
                statuses.append(response.status_code)
            except httpx.HTTPError:
                statuses.append(CLOSED)
    return statuses


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _raw(data: bytes, kind: str = "png") -> Request:
    return {
        "path": "/predict",
        "content": data,
        "headers": {"content-type": f"image/{kind}"},
    }


def thin_images() -> list[Request]:
    """40 one-pixel-high PNGs of distinct widths (once: 905 MB resident)."""
    requests = []
    for index in range(40):
        image = Image.new("L", (262_144 - index, 1), 0)
        image.putpixel((1000, 0), 255)
        requests.append(_raw(_png(image)))
    return requests


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_chunk_flood() -> list[Request]:
    """A 5000x5000 header followed by 400,000 empty ancillary chunks (4.8 MB)."""
    header = struct.pack(">IIBBBBB", 5000, 5000, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"teXt", b"") * 400_000
    )
    return [_raw(data) for _ in range(3)]


def png_small_header_flood() -> list[Request]:
    """A 28x28 header followed by 400,000 empty chunks (4.8 MB): opened in a child."""
    header = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"teXt", b"") * 400_000
    )
    return [_raw(data) for _ in range(3)]


def jpeg_scan_bomb() -> list[Request]:
    """A 512x512 progressive JPEG whose last scan repeats until the body is ~4 MB."""
    image = Image.new("L", (512, 512), 255)
    ImageDraw.Draw(image).line((100, 100, 400, 400), fill=0, width=30)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    scan = data[data.rindex(b"\xff\xda") : -2]
    bomb = data[:-2] + scan * (4_000_000 // len(scan)) + data[-2:]
    return [_raw(bomb, "jpeg") for _ in range(3)]


def json_key_flood() -> list[Request]:
    """Drawing bodies of 500,000 unknown keys (4.9 MB) and 40,000 (0.5 MB)."""
    requests = []
    for keys in (500_000, 40_000):
        body = json.dumps({f"k{i}": 1 for i in range(keys)}).encode()
        requests.append(
            {
                "path": "/predict-drawing",
                "content": body,
                "headers": {"content-type": "application/json"},
            }
        )
    return requests


def nested_json() -> list[Request]:
    """JSON nested 200,000 deep (RecursionError in the parser)."""
    body = b"[" * 200_000 + b"]" * 200_000
    headers = {"content-type": "application/json"}
    return [{"path": "/predict-drawing", "content": body, "headers": headers}]


def batch_amplification() -> list[Request]:
    """150 4096x4096 PNGs in one batch, a few MB for 2.5 billion pixels."""
    big = Image.new("L", (4096, 4096), 0)
    ImageDraw.Draw(big).line((0, 0, 4095, 4095), fill=255, width=40)
    data = _png(big)
    files = [("files", (f"b{i}.png", data, "image/png")) for i in range(150)]
    return [{"path": "/predict-batch", "files": files}]


def big_rgba() -> list[Request]:
    """The largest allowed image, 4096x4096 RGBA: a valid request, at its cost.

    It may be answered (200); what matters is the memory it takes.
    """
    rgba = Image.new("RGBA", (4096, 4096), (255, 255, 255, 0))
    ImageDraw.Draw(rgba).line((0, 4095, 4095, 0), fill=(0, 0, 0, 255), width=60)
    return [_raw(_png(rgba))]


def scribble(blocks: int) -> bytes:
    """A PNG of zigzags, dark on light, each 8 line heights wide: few strokes,
    each cut at every turn."""
    image = Image.new("L", (blocks * 420 + 40, 90), 255)
    draw = ImageDraw.Draw(image)
    for block in range(blocks):
        left = 20 + block * 420
        points = [(left + x, 20 + 50 * ((x // 13) % 2)) for x in range(0, 400, 13)]
        draw.line(points, fill=0, width=3)
    return _png(image)


def number_scribble() -> list[Request]:
    """Zigzag scribbles to /predict-number. 40 zigzags (3.9 KB) made 7,080
    candidate digit crops (once: 643 MB peak, 1.1 s of CPU); 7 zigzags (1 KB),
    3,465 crops, pass the check of the ink's width and are cut before the
    candidates are counted."""
    requests = []
    for blocks in (40, 7):
        requests += [{**_raw(scribble(blocks)), "path": "/predict-number"}] * 10
    return requests


def key_guessing() -> list[Request]:
    """200 wrong API keys in a row."""
    image = _png(Image.fromarray(np.eye(28, dtype=np.uint8) * 255))
    requests = [
        {
            **_raw(image),
            "headers": {"content-type": "image/png", "X-API-Key": f"guess-{i:016d}"},
        }
        for i in range(200)
    ]
    return requests


# The answers each case may get; every other case must get only 4xx.
ALLOWED: dict[str, set[int]] = {"big_rgba": {200}}
CASES: dict[str, Callable[[], list[Request]]] = {
    "thin_images": thin_images,
    "png_chunk_flood": png_chunk_flood,
    "png_small_header_flood": png_small_header_flood,
    "jpeg_scan_bomb": jpeg_scan_bomb,
    "json_key_flood": json_key_flood,
    "nested_json": nested_json,
    "batch_amplification": batch_amplification,
    "big_rgba": big_rgba,
    "key_guessing": key_guessing,
    "number_scribble": number_scribble,
}


def attacker_socket(url: str) -> socket.socket:
    """A connection to `url`'s port from ATTACKER."""
    port = urlsplit(url).port
    return socket.create_connection(
        ("127.0.0.1", port), timeout=30, source_address=(ATTACKER, 0)
    )


def answer_of(sock: socket.socket) -> int:
    """The status the server answered on `sock`, or CLOSED if it only closed."""
    try:
        head = sock.recv(64)
    except (ConnectionResetError, TimeoutError):
        return CLOSED
    return int(head.split()[1]) if head.startswith(b"HTTP/") else CLOSED


@cache
def _flood_requests() -> tuple[bytes, bytes]:
    """Built once, so that each attack costs the attacker only the sending."""
    start = b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
    return (
        start + b"X-Big: " + b"a" * (20 * 1024 * 1024) + b"\r\n",
        start + b"".join(b"X-%d: a\r\n" % i for i in range(100_000)),
    )


def header_flood(url: str) -> list[int]:
    """A 20 MiB header to /health/live, then 100,000 headers: no key needed."""
    statuses = []
    for request in _flood_requests():
        with attacker_socket(url) as sock:
            try:
                sock.sendall(request)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered and closed before the flood was sent
            statuses.append(answer_of(sock))
    return statuses


def _held(url: str, count: int, start: bytes) -> list[int]:
    """`count` connections that send `start` and wait: what each finally got."""
    socks = []
    try:
        for _ in range(count):
            sock = attacker_socket(url)
            sock.sendall(start)
            socks.append(sock)
        return [answer_of(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


# A request that announces 100,000 bytes of body and sends 4.
SLOW_BODY = (
    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
    b"Content-Length: 100000\r\n\r\n\x89PNG"
)


def half_sent_headers(url: str) -> list[int]:
    """300 connections that stop in the middle of their headers (slowloris)."""
    return _held(url, 300, b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")


def slow_bodies(url: str) -> list[int]:
    """50 requests that announce 100,000 bytes of body and send 4 of them."""
    return _held(url, 50, SLOW_BODY)


# Attacks on connections, as functions of the base URL; through the proxy only.
PROXY_CASES: dict[str, Callable[[str], list[int]]] = {
    "header_flood": header_flood,
    "half_sent_headers": half_sent_headers,
    "slow_bodies": slow_bodies,
}
