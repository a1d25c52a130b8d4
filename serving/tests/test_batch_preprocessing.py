"""Vectorised batch preprocessing: the per-image result, bit for bit, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import jpeg, png
from mnist_serving.api.routes import predict
from mnist_serving.batch_preprocessing import BlankImageError, grays_to_mnist
from mnist_serving.errors import InvalidInputError
from mnist_serving.preprocessing import gray_to_mnist


def drawings(count: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """Random strokes of random gray on random paper, as float32 0-255."""
    rng = np.random.default_rng(seed)
    images = []
    while len(images) < count:
        paper, ink = rng.integers(0, 256, 2)
        if abs(int(paper) - int(ink)) < 80:
            continue
        image = Image.new("L", size, int(paper))
        points = [tuple(int(v) for v in rng.integers(0, size)) for _ in range(3)]
        ImageDraw.Draw(image).line(points, fill=int(ink), width=int(rng.integers(2, 9)))
        gray = np.asarray(image, dtype=np.float32)
        try:  # keep the ones with ink by the per-image rules
            gray_to_mnist(gray.copy())
        except InvalidInputError:
            continue
        images.append(gray)
    return np.stack(images)


@pytest.mark.parametrize(
    "grays",
    [
        pytest.param("sample", id="mnist"),
        pytest.param("inverted", id="dark-on-light"),
        pytest.param(drawings(64, (60, 45), seed=1), id="drawings-60x45"),
    ],
)
def test_same_as_one_by_one(sample, grays):
    if isinstance(grays, str):
        images = sample["images"].astype(np.float32)
        grays = images if grays == "sample" else 255 - images
    one_by_one = np.stack([gray_to_mnist(gray.copy()) for gray in grays])
    np.testing.assert_array_equal(grays_to_mnist(grays.copy()), one_by_one)


def test_first_blank_image_is_named(sample):
    grays = sample["images"][:6].astype(np.float32)
    grays[2] = 0
    grays[4] = 128
    with pytest.raises(BlankImageError) as caught:
        grays_to_mnist(grays)
    assert caught.value.index == 2
    assert caught.value.status_code == 422


def test_batch_endpoint_names_a_blank_image(client, sample):
    images = [png(image) for image in sample["images"][:4]]
    images[3] = png(np.zeros((28, 28), np.uint8))
    files = [
        ("files", (f"d{i}.png", data, "image/png")) for i, data in enumerate(images)
    ]
    response = client.post("/predict-batch", files=files)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("image 3 (d3.png): no ink found")


def test_mixed_batch_gives_the_single_image_answers(client, sample):
    """JPEGs, RGB and other sizes take the per-image path; answers are the same."""
    images = sample["images"][:3]
    datas = [png(images[0]), jpeg(images[1]), png(images[2], mode="RGB")]
    files = [("files", (f"d{i}", data, "image/*")) for i, data in enumerate(datas)]
    batch = client.post("/predict-batch", files=files).json()["predictions"]
    for data, answer in zip(datas, batch, strict=True):
        single = client.post("/predict", files={"file": ("d", data, "image/*")}).json()
        assert answer["digit"] == single["digit"]
        assert answer["probabilities"] == pytest.approx(
            single["probabilities"], abs=1e-5
        )


def test_large_images_are_not_stacked(client, sample, monkeypatch):
    """Above MAX_VECTOR_PIXELS each image goes alone: no batch-sized big array."""
    stacked = []
    monkeypatch.setattr(
        predict, "grays_to_mnist", lambda grays: stacked.append(grays.shape)
    )
    big = [Image.fromarray(image).resize((200, 200)) for image in sample["images"][:2]]
    files = [
        ("files", (f"d{i}.png", png(image), "image/png")) for i, image in enumerate(big)
    ]
    response = client.post("/predict-batch", files=files)
    assert response.status_code == 200, response.text
    assert stacked == []
    digits = [answer["digit"] for answer in response.json()["predictions"]]
    assert digits == sample["labels"][:2].tolist()
