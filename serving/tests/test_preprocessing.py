"""Unit tests of the shared preprocessing: centring, inversion, alpha, aspect ratio."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageDraw

from conftest import jpeg, png, turned
from mnist_serving.core.errors import (
    BadImageError,
    InvalidInputError,
    TooLargeError,
    UnsupportedMediaError,
)
from mnist_serving.imaging.decode import decode_base64_image
from mnist_serving.imaging.preprocess import CANVAS, DIGIT_BOX, even_light, preprocess

LIMIT = 50_000_000


def blob(size: tuple[int, int], box: tuple[int, int, int, int], ink: int = 255):
    """A gray image (width, height) with a filled rectangle of `ink` on 0."""
    image = Image.new("L", size, 0)
    ImageDraw.Draw(image).rectangle(box, fill=ink)
    return np.asarray(image)


def ink_box(out: np.ndarray) -> tuple[int, int]:
    """(height, width) of the region above 10% ink."""
    rows = np.flatnonzero((out > 0.1).any(axis=1))
    cols = np.flatnonzero((out > 0.1).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(out: np.ndarray) -> tuple[float, float]:
    """(row, col) centre of mass."""
    total = out.sum()
    rows, cols = np.indices(out.shape)
    return (rows * out).sum() / total, (cols * out).sum() / total


def test_output_is_28x28_float32_in_unit_range(sample):
    out = preprocess(png(sample["images"][0]), LIMIT)
    assert out.shape == (CANVAS, CANVAS)
    assert out.dtype == np.float32
    assert out.min() >= 0.0
    assert out.max() == pytest.approx(1.0)


def test_off_centre_digit_is_centred_by_mass():
    image = blob((200, 120), (5, 10, 45, 90))  # top-left corner of a big image
    out = preprocess(png(image), LIMIT)
    row, col = centre_of_mass(out)
    assert row == pytest.approx(14.0, abs=0.6)
    assert col == pytest.approx(14.0, abs=0.6)


def test_asymmetric_digit_centre_of_mass_not_box_centre():
    image = np.zeros((100, 100), np.uint8)
    image[10:90, 10:20] = 255  # heavy left bar
    image[10:20, 10:60] = 255  # light top bar to the right
    out = preprocess(png(image), LIMIT)
    _, col = centre_of_mass(out)
    assert col == pytest.approx(14.0, abs=0.6)
    cols = np.flatnonzero((out > 0.1).any(axis=0))
    assert (cols[0] + cols[-1]) / 2 > 14.5  # box shifted right of centre


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((100, 200), (40, 20, 59, 179), (20, 3)),  # tall 20x160 -> 20 x 2.5
        ((200, 100), (20, 40, 179, 79), (5, 20)),  # wide 160x40 -> 5 x 20
        ((60, 60), (10, 10, 49, 49), (20, 20)),  # square
    ],
)
def test_longer_side_scaled_to_20_keeping_aspect(size, box, expected):
    out = preprocess(png(blob(size, box)), LIMIT)
    height, width = ink_box(out)
    assert max(height, width) == DIGIT_BOX
    assert abs(height - expected[0]) <= 1
    assert abs(width - expected[1]) <= 1


def test_small_digit_is_scaled_up():
    out = preprocess(png(blob((28, 28), (12, 12, 15, 19))), LIMIT)
    assert max(ink_box(out)) == DIGIT_BOX


def test_dark_on_light_is_inverted_to_match_light_on_dark(sample):
    digit = sample["images"][3]
    light_on_dark = preprocess(png(digit), LIMIT)
    dark_on_light = preprocess(png(255 - digit), LIMIT)
    np.testing.assert_allclose(light_on_dark, dark_on_light, atol=1e-5)


def test_grey_paper_and_grey_ink_are_stretched(sample):
    digit = sample["images"][5].astype(np.float32) / 255
    photo = (200 - digit * 120).astype(np.uint8)  # ink 80 on paper 200
    out = preprocess(png(photo), LIMIT)
    reference = preprocess(png(sample["images"][5]), LIMIT)
    assert out.max() == pytest.approx(1.0)
    assert np.corrcoef(out.ravel(), reference.ravel())[0, 1] > 0.98


def test_paper_lit_unevenly_is_evened_out(sample):
    """A phone's photo: the paper from white to 45% grey across the digit. One
    global background would count the shaded side as ink."""
    digit = np.asarray(
        Image.fromarray(255 - sample["images"][7]).resize((280, 280)), np.float64
    )
    light = np.linspace(1.0, 0.45, 280)[None, :] * np.ones((280, 1))
    photo = jpeg(np.clip(digit * light, 0, 255).astype(np.uint8))
    reference = preprocess(png(digit.astype(np.uint8)), LIMIT)
    out = preprocess(photo, LIMIT)
    assert np.corrcoef(out.ravel(), reference.ravel())[0, 1] > 0.95


def test_an_empty_page_lit_unevenly_has_no_ink():
    """The shaded side of a blank photo is paper, not a digit: 422 no ink."""
    light = np.linspace(250, 110, 300)[None, :] * np.ones((200, 1))
    with pytest.raises(InvalidInputError, match="no ink found"):
        preprocess(jpeg(light.astype(np.uint8)), LIMIT)


def test_paper_lit_evenly_is_left_as_it_is():
    """Scanner noise and a slight tint stay below EVEN_LIGHT: the same array."""
    rng = np.random.default_rng(3)
    paper = (230 + rng.normal(0, 5, (120, 160))).clip(0, 255).astype(np.float32)
    paper[40:80, 70:76] = 20
    assert even_light(paper) is paper


def test_alpha_is_flattened_onto_white():
    strokes = Image.new("RGBA", (280, 280), (0, 0, 0, 0))  # transparent canvas
    ImageDraw.Draw(strokes).line([(140, 40), (140, 240)], fill=(0, 0, 0, 255), width=18)
    on_white = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(on_white).line([(140, 40), (140, 240)], fill="black", width=18)
    out_alpha = preprocess(png(strokes), LIMIT)
    out_white = preprocess(png(on_white), LIMIT)
    np.testing.assert_allclose(out_alpha, out_white, atol=1e-5)
    assert out_alpha.max() == pytest.approx(1.0)


@pytest.mark.parametrize("pen", [(255, 255, 255), (250, 240, 90)])
def test_light_strokes_on_a_transparent_canvas_keep_their_ink(pen):
    """A dark-mode app's white or yellow pen would vanish if flattened onto white."""
    strokes = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(strokes).line([(140, 40), (140, 240)], fill=(*pen, 255), width=18)
    on_white = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(on_white).line([(140, 40), (140, 240)], fill="black", width=18)
    np.testing.assert_allclose(
        preprocess(png(strokes), LIMIT), preprocess(png(on_white), LIMIT), atol=0.02
    )


def test_a_light_document_with_transparent_margins_stays_on_white(sample):
    """Mostly opaque paper: the transparent margins are paper, not ink."""
    paper = Image.fromarray(255 - sample["images"][3]).resize((200, 200))
    framed = Image.new("RGBA", (240, 240), (0, 0, 0, 0))
    framed.paste(paper.convert("RGBA"), (20, 20))
    flat = Image.new("L", (240, 240), 255)
    flat.paste(paper, (20, 20))
    np.testing.assert_allclose(
        preprocess(png(framed), LIMIT), preprocess(png(flat), LIMIT), atol=1e-5
    )


@pytest.mark.parametrize(
    "background, strokes",
    [((255, 255, 255), (0, 0, 0)), ((0, 0, 0), (255, 255, 255))],
    ids=["dark-strokes", "white-strokes"],
)
def test_palette_png_strokes_on_its_transparent_colour(background, strokes):
    """Colour 0 (the background) is transparent; strokes of either lightness show."""
    image = Image.new("P", (50, 50), 0)
    image.putpalette([*background, *strokes] + [0] * 762)
    ImageDraw.Draw(image).rectangle((20, 5, 28, 45), fill=1)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    height, width = ink_box(preprocess(buffer.getvalue(), LIMIT))
    assert height == DIGIT_BOX
    assert width < 8


def test_sixteen_bit_png(sample):
    deep = Image.fromarray(sample["images"][1].astype(np.uint16) * 257)
    out = preprocess(png(deep), LIMIT)
    reference = preprocess(png(sample["images"][1]), LIMIT)
    np.testing.assert_allclose(out, reference, atol=0.02)


def test_jpeg_photo_of_digit(sample):
    big = np.asarray(Image.fromarray(255 - sample["images"][2]).resize((600, 600)))
    out = preprocess(jpeg(big, quality=70), LIMIT)
    reference = preprocess(png(sample["images"][2]), LIMIT)
    assert np.corrcoef(out.ravel(), reference.ravel())[0, 1] > 0.9


def test_preprocessed_mnist_looks_like_mnist(sample):
    """MNIST digits are already centred: preprocessing must barely change them."""
    scores = []
    for image in sample["images"][:50]:
        out = preprocess(png(image), LIMIT)
        scores.append(np.corrcoef(out.ravel(), image.ravel() / 255)[0, 1])
    assert np.median(scores) > 0.9


@pytest.mark.parametrize("value", [0, 255, 128])
def test_blank_image_has_no_ink(value):
    with pytest.raises(InvalidInputError, match="no ink found"):
        preprocess(png(np.full((40, 40), value, np.uint8)), LIMIT)


def test_faint_noise_is_not_ink():
    noise = np.random.default_rng(0).integers(120, 135, (40, 40), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match="no ink found"):
        preprocess(png(noise), LIMIT)


def test_gif_is_refused():
    buffer = io.BytesIO()
    Image.new("L", (10, 10)).save(buffer, format="GIF")
    with pytest.raises(UnsupportedMediaError, match="neither PNG nor JPEG"):
        preprocess(buffer.getvalue(), LIMIT)


def test_truncated_png_is_a_bad_image(digit_png):
    with pytest.raises(BadImageError, match="could not be decoded"):
        preprocess(digit_png[:60], LIMIT)


def test_damaged_header_is_a_bad_image():
    with pytest.raises(BadImageError, match="could not be decoded"):
        preprocess(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, LIMIT)


def test_empty_bytes():
    with pytest.raises(InvalidInputError, match="empty"):
        preprocess(b"", LIMIT)


def test_pixel_bomb_is_refused_before_decoding():
    bomb = png(Image.new("1", (6000, 6000)))  # a few KB, 36 megapixels
    assert len(bomb) < 100_000
    with pytest.raises(TooLargeError, match="36000000 pixels"):
        preprocess(bomb, 16_000_000)


def test_data_url_and_bare_base64(digit_png):
    text = base64.b64encode(digit_png).decode()
    assert decode_base64_image(text, 10_000) == digit_png
    assert decode_base64_image("data:image/png;base64," + text, 10_000) == digit_png


def test_invalid_base64():
    with pytest.raises(InvalidInputError, match="not valid base64"):
        decode_base64_image("not base64 !!", 1000)


def test_data_url_without_base64_marker():
    with pytest.raises(InvalidInputError, match="must be base64"):
        decode_base64_image("data:image/png,abc", 1000)


def test_data_url_of_other_type():
    with pytest.raises(UnsupportedMediaError, match="image/gif"):
        decode_base64_image("data:image/gif;base64,R0lGOD", 1000)


def test_base64_length_is_capped_before_decoding():
    with pytest.raises(TooLargeError, match="above the limit of 100"):
        decode_base64_image("A" * 101, 100)


@pytest.mark.parametrize("orientation", range(2, 9))
@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_a_photo_is_turned_upright_as_its_exif_orientation_says(
    sample, orientation, kind
):
    # A tall, dark-on-light 7: every turn and flip of it reads differently.
    upright = Image.fromarray(255 - sample["images"][0]).resize((84, 140))
    stored, data = turned(upright, orientation, kind)
    expected = preprocess(turned(upright, 1, kind)[1], LIMIT)
    out = preprocess(data, LIMIT)
    assert np.abs(out - expected).max() < 0.1  # JPEG's blocks move with the turn
    as_stored = preprocess(turned(stored, 1, kind)[1], LIMIT)
    assert np.abs(as_stored - expected).max() > 0.5


def exif_of(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return exif.tobytes()


@pytest.mark.parametrize(
    "block",
    [
        b"XX\x00*\x00\x00\x00\x08",  # not TIFF: SyntaxError in Pillow
        b"MM\x00*\x00\x00",  # cut short in its header: struct.error
        b"MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12",  # a directory cut short
        exif_of(9),  # an orientation EXIF does not define
    ],
)
def test_a_damaged_exif_block_is_ignored(sample, block):
    image = Image.fromarray(255 - sample["images"][0]).resize((84, 140))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=block)
    out = preprocess(buffer.getvalue(), LIMIT)
    assert np.array_equal(out, preprocess(png(image), LIMIT))


def test_exif_orientation_is_read_from_xmp_too(sample):
    upright = Image.fromarray(255 - sample["images"][0]).resize((84, 140))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, xmp=xmp)
    assert "exif" not in Image.open(buffer).info
    out = preprocess(buffer.getvalue(), LIMIT)
    assert np.abs(out - preprocess(turned(upright, 1)[1], LIMIT)).max() < 0.1
