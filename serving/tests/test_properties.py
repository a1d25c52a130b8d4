"""Property tests of the preprocessing: any bytes or text in, MNIST out or our own 4xx.

Hypothesis draws raw bytes, real PNG/JPEG drawings of every size, mode and
polarity, and damaged (truncated, overwritten) files. Nothing may escape but
the service's ServingError with a 4xx status, which the API maps to its JSON
error; everything accepted must look like an MNIST digit.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from mnist_serving.core.errors import InvalidInputError, ServingError
from mnist_serving.imaging.decode import decode_base64_image
from mnist_serving.imaging.preprocess import preprocess
from strategies import any_image_bytes, digit_images

SEED = 20261126
MAX_PIXELS = 50_000  # low, so drawn images also cross the pixel limit
PROPERTY_SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def data_url(pair: tuple[str, bytes]) -> str:
    """A data URL of `bytes` declared as media type `str`."""
    return f"data:{pair[0]};base64,{base64.b64encode(pair[1]).decode()}"


def outcome(data: bytes) -> np.ndarray | ServingError:
    """The preprocessed array, or the ServingError it was refused with."""
    try:
        return preprocess(data, MAX_PIXELS)
    except ServingError as exc:
        return exc


def assert_mnist_like(array: np.ndarray) -> None:
    """28x28 float32 in [0, 1]; ink in at most 20x20, centred by its mass.

    The centre of mass sits within a pixel of (14, 14), except on an axis where
    that would push the ink off the field: there the ink touches the border.
    """
    assert array.shape == (28, 28)
    assert array.dtype == np.float32
    assert np.isfinite(array).all()
    assert array.min() >= 0.0
    assert array.max() <= 1.0
    mass = array.sum()
    assert mass > 0
    for axis in (0, 1):
        profile = array.sum(axis=1 - axis)
        inked = np.flatnonzero(profile)
        assert inked[-1] - inked[0] + 1 <= 20, inked
        centre = float(profile @ np.arange(28)) / float(profile.sum())
        touches = inked[0] == 0 or inked[-1] == 27
        assert abs(centre - 14) <= 1.0 or touches, (axis, centre, inked)


@seed(SEED)
@PROPERTY_SETTINGS
@given(any_image_bytes())
def test_any_bytes_give_mnist_or_a_4xx(data: bytes) -> None:
    result = outcome(data)
    if isinstance(result, ServingError):
        assert 400 <= result.status_code < 500, result
        assert result.detail
    else:
        assert_mnist_like(result)


@seed(SEED)
@PROPERTY_SETTINGS
@given(digit_images())
def test_drawings_are_accepted_unless_blank(data: bytes) -> None:
    """A real drawing is classified, or refused as blank, too big or too thin."""
    result = outcome(data)
    event(type(result).__name__)  # --hypothesis-show-statistics shows the mix
    if isinstance(result, ServingError):
        assert result.status_code in (413, 422), result
        if isinstance(result, InvalidInputError):
            reasons = ("no ink", "longer than it is wide")
            assert any(reason in result.detail for reason in reasons), result.detail
    else:
        assert_mnist_like(result)


@seed(SEED)
@PROPERTY_SETTINGS
@given(
    st.one_of(
        st.text(max_size=2000),
        any_image_bytes().map(lambda raw: base64.b64encode(raw).decode()),
        st.tuples(
            st.sampled_from(["image/png", "image/jpeg", "image/gif", "", "text/html"]),
            any_image_bytes(),
        ).map(
            lambda pair: f"data:{pair[0]};base64,{base64.b64encode(pair[1]).decode()}"
        ),
    )
)
def test_any_text_gives_image_bytes_or_a_4xx(text: str) -> None:
    """The drawing endpoint's decoder: bytes back, or our own 4xx."""
    try:
        data = decode_base64_image(text, max_chars=1000)
    except ServingError as exc:
        assert 400 <= exc.status_code < 500, exc
        return
    assert isinstance(data, bytes)
    result = outcome(data)
    if isinstance(result, ServingError):
        assert 400 <= result.status_code < 500, result


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_polarity_does_not_change_the_result(mode: str) -> None:
    """Dark-on-light and light-on-dark copies of one drawing preprocess alike."""
    arrays = []
    for background, ink in ((0, 255), (255, 0)):
        image = Image.new("L", (90, 120), background)
        ImageDraw.Draw(image).line([(20, 20), (70, 60), (30, 100)], fill=ink, width=9)
        buffer = io.BytesIO()
        image.convert(mode).save(buffer, format="PNG")
        arrays.append(preprocess(buffer.getvalue(), MAX_PIXELS))
    np.testing.assert_allclose(arrays[0], arrays[1], atol=1e-5)
