"""Numbers as forms and photos present them: boxes, rules, dots, uneven light.

Run from the repository root with the ROOT virtual environment (`make install`),
which holds both the training project (the packaged MNIST) and serving:

    .venv/bin/python benchmarks/serving/bench_fields.py [--model-uri PATH]

Composes --count numbers of 5 official MNIST test digits, dark on light with
the digits 28 px tall, and reads each with serving's own number reader, as it
is and in each setting below. Prints, per setting, the share read exactly
(the `number`) and the share routed to `auto_approved`:
  * plain: as composed;
  * box: in a printed box with a margin; tight box: a box whose top and
    bottom rules cross the digits; comb: a box per digit;
  * underline: a rule below the digits; sitting: a rule the digits touch;
  * lined: faint lines every 25 px across the field, one through the digits;
  * decimal: a dot at the foot of the line after the second digit (read right
    when the digits are, and never auto-approved: it is a doubt);
  * shaded: paper lit from white to about half its light, as JPEG;
  * on its side: a JPEG stored a quarter turn off, with the EXIF orientation
    that turns it upright, as a phone stores a photo taken upright;
and, for one digit on a 280 px canvas (POST /predict's preprocessing), the
share of --count official test digits read right as it is, shaded, and on its
side as above.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_numbers import DEFAULT_MODEL, model_file, official_digits
from mnist_serving.core.config import Settings
from mnist_serving.core.errors import ServingError
from mnist_serving.imaging.preprocess import preprocess
from mnist_serving.model.card import digit_probabilities
from mnist_serving.model.number_reader import read_number_image
from mnist_serving.model.review import number_review

from mnist_mlops.modeling.serving_view import litert_predictor

STEP = 34  # a digit's 28 px and a gap of 6
TOP = 20  # the digits' first row on the field
FIELD = 80  # the field's height
MAX_PIXELS = 16_777_216


def field(digits: np.ndarray, dot_after: int | None = None) -> Image.Image:
    """Dark digits on white paper, STEP apart; a round dot after one of them."""
    width = 40 + STEP * len(digits) + (12 if dot_after is not None else 0)
    page = np.full((FIELD, width), 255, np.uint8)
    x = 20
    for index, digit in enumerate(digits):
        page[TOP : TOP + 28, x : x + 28] = np.minimum(
            page[TOP : TOP + 28, x : x + 28], 255 - digit
        )
        x += STEP
        if index == dot_after:
            yy, xx = np.mgrid[:FIELD, :width]
            page[(yy - (TOP + 25)) ** 2 + (xx - (x + 1)) ** 2 <= 6] = 0
            x += 12
    return Image.fromarray(page)


def boxed(image: Image.Image, top: int, bottom: int) -> Image.Image:
    out = image.copy()
    ImageDraw.Draw(out).rectangle((5, top, out.width - 6, bottom), outline=0, width=2)
    return out


def comb(image: Image.Image, count: int) -> Image.Image:
    out = boxed(image, 14, 54)
    draw = ImageDraw.Draw(out)
    for k in range(1, count):
        draw.line((16 + STEP * k, 14, 16 + STEP * k, 54), fill=0, width=2)
    return out


def ruled(image: Image.Image, rows: list[int], ink: int = 0) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for row in rows:
        draw.line((0, row, out.width, row), fill=ink, width=1 if ink else 2)
    return out


def shaded(image: Image.Image, seed: int) -> bytes:
    """Paper from white to about half its light across the field, as JPEG."""
    page = np.asarray(image, np.float64)
    height, width = page.shape
    light = (
        np.linspace(1.0, 0.6, width)[None, :] * np.linspace(1.0, 0.85, height)[:, None]
    )
    noise = np.random.default_rng(seed).normal(0, 6, page.shape)
    photo = Image.fromarray(np.clip(page * light + noise, 0, 255).astype(np.uint8))
    return encode(photo, "JPEG")


def encode(image: Image.Image, kind: str = "PNG", exif: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    options = {"quality": 60} if kind == "JPEG" else {}
    image.save(buffer, kind, exif=exif, **options)
    return buffer.getvalue()


def on_its_side(image: Image.Image) -> bytes:
    """A phone's JPEG of `image`: the pixels a quarter turn off, EXIF to undo it."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # turn 90 degrees clockwise to show it
    return encode(image.transpose(Image.Transpose.ROTATE_90), "JPEG", exif.tobytes())


SETTINGS: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "plain": lambda d, s: encode(field(d)),
    "box": lambda d, s: encode(boxed(field(d), 5, FIELD - 6)),
    "tight box": lambda d, s: encode(boxed(field(d), TOP - 8, TOP + 27)),
    "comb": lambda d, s: encode(comb(field(d), len(d))),
    "underline": lambda d, s: encode(ruled(field(d), [TOP + 30])),
    "sitting": lambda d, s: encode(ruled(field(d), [TOP + 23])),
    "lined": lambda d, s: encode(ruled(field(d), [8, 33, 58, 76], ink=120)),
    "decimal": lambda d, s: encode(field(d, dot_after=1)),
    "shaded": lambda d, s: shaded(field(d), s),
    "on its side": lambda d, s: on_its_side(field(d)),
}


def read_fields(model: bytes, count: int, seed: int) -> None:
    """Print each setting's exact and auto-approved shares."""
    images, labels = official_digits("test")
    predict, settings = litert_predictor(model), Settings(model_uri="unused")
    rng = np.random.default_rng(seed)
    picks = [rng.choice(len(images), 5, replace=False) for _ in range(count)]
    for name, make in SETTINGS.items():
        right = approved = 0
        for index, pick in enumerate(picks):
            label = "".join(str(int(v)) for v in labels[pick])
            try:
                reading = read_number_image(
                    make(images[pick], index), predict, 20, MAX_PIXELS
                )
            except ServingError:
                continue
            right += reading.number == label
            band = number_review(reading.confidence, reading.doubts, settings)
            approved += band == "auto_approved"
        print(
            f"{name:11s} read exactly {right / count:6.1%}  "
            f"auto-approved {approved / count:6.1%}"
        )


def read_digits(model: bytes, count: int) -> None:
    """Print one digit's read rate on a 280 px canvas: as it is, shaded, turned."""
    images, labels = official_digits("test")
    predict = litert_predictor(model)
    light = np.linspace(1.0, 0.5, 280)[None, :] * np.ones((280, 1))
    plain = np.ones((280, 280))
    for name, lit, side in (
        ("digit", plain, False),
        ("digit shaded", light, False),
        ("digit on its side", plain, True),
    ):
        inputs = []
        for digit in images[:count]:
            page = np.asarray(
                Image.fromarray(255 - digit).resize((280, 280)), np.float64
            )
            photo = Image.fromarray(np.clip(page * lit, 0, 255).astype(np.uint8))
            data = on_its_side(photo) if side else encode(photo, "JPEG")
            inputs.append(preprocess(data, MAX_PIXELS))
        found = digit_probabilities(predict(np.stack(inputs))).argmax(axis=1)
        print(f"{name:17s} read right {np.mean(found == labels[:count]):6.1%}")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-uri", default=str(DEFAULT_MODEL))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    model = model_file(args.model_uri).read_bytes()
    print(f"model: {model_file(args.model_uri)}; {args.count} numbers of 5 digits")
    read_fields(model, args.count, args.seed)
    read_digits(model, args.count)


if __name__ == "__main__":
    main()
