"""POST /predict-number: whole numbers segmented and read in one model call."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from PIL import Image

from attack_cases import scribble
from conftest import jpeg, png, turned
from mnist_serving.core.config import Settings
from mnist_serving.imaging import segment as segment_module
from mnist_serving.imaging.segment import (
    Atom,
    _seams,
    label_marks,
    segment,
    strokes_between,
)
from mnist_serving.model import number_reader as reader_module
from mnist_serving.model.number_reader import (
    DOUBT_MARGIN,
    _close_rival,
    read_gray,
    read_number,
)
from number_images import compose, first_of

PNG = {"content-type": "image/png"}


def read(client, image: np.ndarray, **kwargs):
    """POST a dark-on-light PNG of `image` (white on black) as the raw body."""
    return client.post(
        "/predict-number", content=png(255 - image), headers=PNG, **kwargs
    )


@pytest.fixture(scope="module")
def number(sample):
    return compose(first_of(sample, "4071"))


def test_reads_a_number_with_boxes_and_product_confidence(client, number):
    response = read(client, number.image)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["number"] == "4071"
    assert [d["digit"] for d in body["digits"]] == [4, 0, 7, 1]
    confidence = np.prod([d["confidence"] * d["whole"] for d in body["digits"]])
    assert body["confidence"] == pytest.approx(confidence)
    assert body["review"] in {
        "auto_approved",
        "secondary_verification",
        "manual_review",
    }
    assert body["model_version"] and body["request_id"]
    height, width = number.image.shape
    for digit, left in zip(body["digits"], number.lefts, strict=True):
        x, y, w, h = digit["box"]
        assert abs(x - left) <= 2
        assert 0 <= y and y + h <= height and x + w <= width
        assert len(digit["probabilities"]) == 10


@pytest.mark.parametrize("orientation", [6, 8, 3])
@pytest.mark.parametrize("scale", [1, 8])  # decoded inline, and in the child
def test_a_phone_photo_is_read_upright_with_boxes_as_it_is_shown(
    client, number, orientation, scale
):
    height, width = number.image.shape
    upright = Image.fromarray(255 - number.image).resize(
        (width * scale, height * scale)
    )
    _, data = turned(upright, orientation)
    inline = Settings.model_fields["inline_pixels"].default
    assert (upright.width * upright.height > inline) == (scale > 1)
    response = client.post(
        "/predict-number", content=data, headers={"content-type": "image/jpeg"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["number"] == "4071"
    for digit, left in zip(body["digits"], number.lefts, strict=True):
        x, y, w, h = (value / scale for value in digit["box"])
        assert abs(x - left) <= 2
        assert 0 <= y and y + h <= height + 1 and x + w <= width + 1


def test_multipart_and_json_variants_agree(client, number):
    data = png(255 - number.image)
    multipart = client.post("/predict-number", files={"file": ("n.png", data)})
    drawing = client.post(
        "/predict-number-drawing",
        json={"image": "data:image/png;base64," + base64.b64encode(data).decode()},
    )
    assert multipart.status_code == drawing.status_code == 200
    assert multipart.json()["number"] == drawing.json()["number"] == "4071"


def test_light_on_dark_and_one_digit(client, sample):
    body = client.post(
        "/predict-number",
        content=png(compose(first_of(sample, "3")).image),
        headers=PNG,
    ).json()
    assert body["number"] == "3"


def test_slanted_baseline_and_varying_sizes(client, sample):
    number = compose(
        first_of(sample, "95026"), scales=[1.3, 0.8, 1.0, 1.2, 0.9], slope=0.12
    )
    assert read(client, number.image).json()["number"] == "95026"


def test_touching_digits_are_cut_apart(client, sample):
    number = compose(first_of(sample, "3051"), gap=7, touching_at=1)
    columns = (number.image > 0).any(axis=0)
    _, count = label_marks(number.image[:, columns] > 64)
    assert count <= 3  # the 0 and the 5 really touch
    assert read(client, number.image).json()["number"] == "3051"


@pytest.mark.parametrize("case", [("317", 0, 1), ("514", 3, 0)])
def test_a_touching_pair_narrower_than_a_digit_is_cut_too(
    client, sample, monkeypatch, case
):
    digits, skip, at = case  # which sample digits, and the touching pair
    # A 1 touching its neighbour makes a mark narrower than the line is tall,
    # which gets no seams (see CUT_WIDTH); its valley is cut instead.
    number = compose(first_of(sample, digits, skip), gap=7, touching_at=at)
    assert read(client, number.image).json()["number"] == digits
    with monkeypatch.context() as patch:
        patch.setattr(segment_module, "VALLEY", -1.0)  # no narrow mark is cut
        # ... and no second look for the unsure digit the merged pair reads as,
        # whose finer cuts would split the pair too.
        patch.setattr(reader_module, "SECOND_LOOK_WHOLE", 0.0)
        assert read(client, number.image).json()["number"] != digits


def test_a_narrow_mark_is_cut_only_at_a_deep_valley_and_its_halves_stay_apart():
    ink = np.zeros((60, 120), dtype=np.uint8)
    ink[10:50, 10:14] = ink[10:50, 26:30] = 255  # two ones ...
    ink[46:50, 14:26] = 255  # ... touching at their feet
    ink[10:14, 34:64] = 255  # a 7 close by: its bar and stem share every column
    for row in range(14, 50):
        column = 62 - (row - 14) * 28 // 36
        ink[row, column - 2 : column + 2] = 255
    rows, cols = np.indices(ink.shape)
    radius = np.hypot(rows - 29.5, cols - 81.5)
    ink[(radius > 9) & (radius < 12)] = 255  # a 0: its valley crosses two strokes
    ink[10:50, 100:104] = 255  # and a 1 apart
    seg = segment(Image.fromarray(255 - ink), 20)
    halves = [a for a in seg.atoms if a.half]
    assert [(a.left, a.right) for a in halves] == [(0, 10), (10, 20)]  # ink columns
    assert [a.half for a in seg.atoms] == [True, True, False, False, False]
    # Each half alone, the pair whole, the pair with the 7; never one half
    # with the 7.
    assert (0, 1) in seg.segments and (1, 2) in seg.segments
    assert (0, 2) in seg.segments and (0, 3) in seg.segments
    assert (1, 3) not in seg.segments


def test_a_narrow_mark_is_cut_where_one_stroke_joins_not_between_two_thin_ones():
    ink = np.zeros((60, 60), dtype=np.uint8)
    ink[10:50, 10:14] = ink[10:50, 30:34] = 255  # a 1 and its neighbour's stem
    ink[28:32, 14:22] = 255  # joined by one stroke that forks ...
    ink[28, 22:30] = ink[31, 22:30] = 255  # ... into two thin ones
    seg = segment(Image.fromarray(255 - ink), 20)
    # The thin strokes' columns hold the least ink but cross two strokes: the
    # cut is in the single stroke (ink columns 4-11), nearest the middle.
    assert [(a.left, a.right, a.half) for a in seg.atoms] == [
        (0, 11, True),
        (11, 24, True),
    ]


def broken(digit: np.ndarray, row: int) -> np.ndarray:
    """The digit with two rows of ink erased: two strokes that overlap in x."""
    out = digit.copy()
    out[row : row + 2] = 0
    return out


def test_broken_strokes_are_merged_into_one_digit(client, sample):
    digits = first_of(sample, "547")
    pieces = [broken(d, 11) for d in digits]
    number = compose(np.stack(pieces), gap=8)
    _, count = label_marks(number.image > 64)
    assert count >= 5  # each digit is really in pieces
    assert read(client, number.image).json()["number"] == "547"


def test_a_digit_wider_than_one_and_a_half_lines_is_one_candidate():
    # A 0 lying wide, 1.7 line heights across, between two 1s: a slanted,
    # rotated hand writes some digits that wide (a lying 8, a wide 6).
    ink = np.zeros((80, 220), dtype=np.uint8)
    ink[10:54, 10:14] = ink[10:54, 196:200] = 255  # the 1s set the line: 44 px
    rows, cols = np.mgrid[:80, :220]
    radius = np.hypot((rows - 32) / 20, (cols - 105) / 37)
    ink[(radius >= 0.9) & (radius <= 1.0)] = 255
    seg = segment(Image.fromarray(255 - ink), 20)
    ring = [k for k, a in enumerate(seg.atoms) if a.mark == seg.atoms[1].mark]
    assert len(ring) > 1  # wider than a line: cut into pieces
    width = seg.atoms[ring[-1]].right - seg.atoms[ring[0]].left
    assert 1.6 < width / seg.line_height < 1.8
    assert (ring[0], ring[-1] + 1) in seg.segments  # ... and whole, once


def test_specks_are_ignored(client, number):
    noisy = number.image.copy()
    for y, x in [(3, 3), (40, 20), (2, 60), (41, 90)]:
        noisy[y, x] = 255
    assert read(client, noisy).json()["number"] == "4071"


def framed(image: np.ndarray, top: int, bottom: int, margin: int = 8) -> np.ndarray:
    """`image` (white on black) in a printed box 2 px thick: its top and bottom
    rules at rows `top` and `bottom` of the image, padded by `margin` columns."""
    out = np.pad(image, ((margin, margin), (margin, margin)))
    top, bottom = top + margin, bottom + margin
    out[top : top + 2, 2:-2] = 255
    out[bottom - 2 : bottom, 2:-2] = 255
    out[top:bottom, 2:4] = 255
    out[top:bottom, -4:-2] = 255
    return out


def underlined(image: np.ndarray, row: int) -> np.ndarray:
    """`image` with a rule 2 px thick across its whole width at `row`."""
    out = image.copy()
    out[row : row + 2, :] = 255
    return out


def test_a_printed_box_around_the_number_is_not_read(client, number):
    """An amount box cropped with the field: its rules and sides are erased."""
    height = number.image.shape[0]
    clear = framed(number.image, -6, height + 6)
    assert read(client, clear).json()["number"] == "4071"
    rows = np.flatnonzero((number.image > 64).any(axis=1))
    tight = framed(number.image, rows[0] + 2, rows[-1] - 1)  # rules cross the ink
    assert label_marks(tight > 64)[1] == 1  # box and digits are one mark
    assert read(client, tight).json()["number"] == "4071"


def test_a_rule_the_digits_sit_on_is_not_read(client, number):
    rows = np.flatnonzero((number.image > 64).any(axis=1))
    image = underlined(number.image, rows[-1] - 2)
    assert label_marks(image > 64)[1] == 1  # the rule joins the digits
    assert read(client, image).json()["number"] == "4071"


def test_lined_paper_is_erased_line_by_line(client, number):
    """Faint lines every 25 px across a padded field, as on a notebook's page:
    the outer lines go first, then the ones through the digits."""
    image = np.pad(number.image, ((20, 20), (10, 10)))
    image[8::25, :] = np.maximum(image[8::25, :], 135)
    assert read(client, image).json()["number"] == "4071"


def test_a_stroke_across_a_rule_stays_one_stroke():
    """The rule's pixels under a crossing stroke are given back to the stroke."""
    ink = np.zeros((60, 300), np.float32)
    ink[30:32, 10:290] = 200.0  # the rule
    ink[10:50, 150:154] = 255.0  # a stroke across it
    out = segment_module._without_rules(ink)
    assert out[30:32, 10:140].max() == 0  # the rule is gone
    assert label_marks(out >= segment_module.INK_LEVEL)[1] == 1
    assert out[30:32, 150:154].min() == 255.0


def test_strokes_of_one_digit_are_not_taken_for_rules(client, sample):
    """A 7's bar or a 1 fills most of a one-digit field, but is no longer than
    the line is high."""
    for digit in "71":
        one = compose(first_of(sample, digit))
        assert read(client, one.image).json()["number"] == digit


def dotted(number, after: int) -> np.ndarray:
    """The number with a round dot at the foot of the line, in a gap opened
    after digit `after` (1-based): a decimal point or a comma."""
    image = number.image
    rows = np.flatnonzero((image > 64).any(axis=1))
    cut = number.lefts[after] - 3
    dot = np.zeros((image.shape[0], 12), np.uint8)
    yy, xx = np.mgrid[: image.shape[0], :12]
    dot[(yy - (rows[-1] - 3)) ** 2 + (xx - 6) ** 2 <= 9] = 255
    return np.hstack([image[:, :cut], dot, image[:, cut:]])


def test_a_decimal_point_is_not_read_as_a_digit_and_is_a_doubt(client, number):
    body = read(client, dotted(number, 2)).json()
    assert body["number"] == "4071"
    assert any("between digits 2 and 3" in d for d in body["segmentation_doubts"])
    assert body["review"] != "auto_approved"


@pytest.mark.parametrize("dark_paper", [False, True])
def test_a_photo_lit_unevenly_is_read(client, number, dark_paper):
    """Paper from white to 60% grey across the field (a phone's photo), as JPEG;
    and light ink on a board that darkens the other way."""
    page = 255.0 - number.image  # dark ink on white paper
    if dark_paper:
        page = number.image.astype(np.float64)
    height, width = page.shape
    light = (
        np.linspace(1.0, 0.6, width)[None, :] * np.linspace(1.0, 0.85, height)[:, None]
    )
    shaded = page * light if not dark_paper else 255 - (255 - page) * light
    photo = jpeg(np.clip(shaded, 0, 255).astype(np.uint8), quality=70)
    response = client.post(
        "/predict-number", content=photo, headers={"content-type": "image/jpeg"}
    )
    assert response.json()["number"] == "4071"


def test_an_empty_box_is_422(client):
    response = read(client, framed(np.zeros((40, 200), np.uint8), 0, 40))
    assert response.status_code == 422
    assert "no digit found" in response.json()["detail"]


def test_the_confidence_counts_each_crops_chance_of_being_one_digit(
    client, number, monkeypatch
):
    """A merged or broken crop can read as a sure digit: the number's
    confidence, and so its review, also weighs the "not one digit" output."""
    model = client.app.state.holder.model
    original = model.predict_outputs

    def unsure_of_the_cuts(inputs: np.ndarray) -> np.ndarray:
        outputs = original(inputs)[:, :10]  # the fixture model has ten outputs
        return np.hstack([outputs * 0.9, np.full((len(outputs), 1), 0.1)])

    plain = read(client, number.image).json()
    assert [d["whole"] for d in plain["digits"]] == [1.0] * 4
    monkeypatch.setattr(model, "predict_outputs", unsure_of_the_cuts)
    body = read(client, number.image).json()
    assert body["number"] == "4071"
    assert [d["whole"] for d in body["digits"]] == pytest.approx([0.9] * 4)
    expected = np.prod([d["confidence"] * 0.9 for d in body["digits"]])
    assert body["confidence"] == pytest.approx(expected)
    assert body["confidence"] < 0.95 <= min(d["confidence"] for d in body["digits"])
    assert body["review"] != "auto_approved"


def test_at_most_two_model_calls_however_many_digits(client, sample, monkeypatch):
    model = client.app.state.holder.model
    calls = []
    original = model.predict_outputs
    monkeypatch.setattr(
        model, "predict_outputs", lambda x: calls.append(len(x)) or original(x)
    )
    for touching_at in (None, 4):
        calls.clear()
        number = compose(first_of(sample, "123456789012"), touching_at=touching_at)
        assert read(client, number.image).status_code == 200
        assert 1 <= len(calls) <= 2  # one call per look, never one per digit


def two_rings_and_a_bar() -> tuple[np.ndarray, Image.Image]:
    """A bar, then two rings drawn touching: one mark, about a line height wide."""
    ink = np.zeros((60, 120), dtype=np.uint8)
    ink[8:52, 10:14] = 255
    rows, cols = np.mgrid[:60, :120]
    for centre in (40, 58):
        radius = np.hypot(rows - 32, (cols - centre) * 1.4)
        ink[(radius >= 10) & (radius <= 13)] = 255
    return ink, Image.fromarray(255 - ink)


def test_a_refined_mark_is_cut_at_more_places_and_the_others_stay_as_they_were():
    _, image = two_rings_and_a_bar()
    gray = segment_module.work_image(image)
    plain = segment_module.segment_gray(gray, image.size, 20)
    ring_mark = plain.atoms[-1].mark
    fine = segment_module.segment_gray(gray, image.size, 20, frozenset({ring_mark}))
    rings = [a for a in plain.atoms if a.mark == ring_mark]
    fine_rings = [a for a in fine.atoms if a.mark == ring_mark]
    assert len(fine_rings) > len(rings)
    bar = [
        (a.left, a.right, a.top, a.bottom) for a in plain.atoms if a.mark != ring_mark
    ]
    assert bar == [
        (a.left, a.right, a.top, a.bottom) for a in fine.atoms if a.mark != ring_mark
    ]
    # The pieces still make up the mark, pixel for pixel.
    assert sum(int(a.mask.sum()) for a in fine_rings) == sum(
        int(a.mask.sum()) for a in rings
    )
    every = segment_module.segment_gray(gray, image.size, 20, segment_module.EVERY_MARK)
    assert len(every.atoms) == len(fine.atoms)  # the bar is too narrow to cut


def shape_reader(calls: list[np.ndarray]):
    """A model that reads a crop by its shape alone: a narrow one is a 1, a wider
    one a 0, and one much wider than tall is likely not one digit. It keeps the
    inputs of each call in `calls`.
    """

    def predict(inputs: np.ndarray) -> np.ndarray:
        calls.append(inputs.copy())
        ink = inputs.reshape(len(inputs), 28, 28) > 0.3
        width, height = ink.any(axis=1).sum(axis=1), ink.any(axis=2).sum(axis=1)
        rows = [
            digit(1, 0.9, 0.02)
            if w < 0.5 * h
            else digit(0, 0.9, 0.95 if w > 1.2 * h else 0.02)
            for w, h in zip(width, height, strict=True)
        ]
        return np.array(rows, np.float32)

    return predict


def test_a_doubtful_split_gets_a_second_look_that_classifies_only_new_crops():
    _, image = two_rings_and_a_bar()
    gray = segment_module.work_image(image)
    first_calls, calls, fine_calls = [], [], []
    first = read_number(segment(image, 20), shape_reader(first_calls), 20)
    assert first.doubts
    reading = read_gray(gray, image.size, shape_reader(calls), 20)
    assert len(calls) == 2
    assert np.array_equal(calls[0], first_calls[0])
    # The second call holds no crop of the bar alone: its output is reused.
    bar_alone = calls[0][0]
    assert not any(np.array_equal(bar_alone, crop) for crop in calls[1])
    assert len(calls[1]) < len(calls[0]) + len(calls[1]) - 1
    # Reusing outputs changes nothing: the reading is that of the finer cuts
    # classified all at once.
    ring_mark = segment(image, 20).atoms[-1].mark
    fine = segment_module.segment_gray(gray, image.size, 20, frozenset({ring_mark}))
    again = read_number(fine, shape_reader(fine_calls), 20)
    assert len(fine_calls[0]) > len(calls[1])
    assert reading.number == again.number
    assert reading.boxes == again.boxes
    assert reading.doubts == again.doubts


def test_finer_cuts_past_the_candidate_limit_keep_the_first_reading(monkeypatch):
    _, image = two_rings_and_a_bar()
    gray = segment_module.work_image(image)
    first = segment_module.segment_gray(gray, image.size, 20)
    ring_mark = first.atoms[-1].mark
    fine = segment_module.segment_gray(gray, image.size, 20, frozenset({ring_mark}))
    # A limit for 3 digits that the first look's candidates meet and the finer
    # cuts' do not.
    per_digit = -(-len(first.segments) // 3)
    assert len(fine.segments) > 3 * per_digit
    monkeypatch.setattr(segment_module, "MAX_CANDIDATES_PER_DIGIT", per_digit)
    calls = []
    reading = read_gray(gray, image.size, shape_reader(calls), 3)
    assert len(calls) == 1
    expected = read_number(first, shape_reader([]), 3)
    assert (reading.number, reading.boxes) == (expected.number, expected.boxes)


def test_a_second_look_reading_past_the_digit_limit_keeps_the_first():
    _, image = two_rings_and_a_bar()
    gray = segment_module.work_image(image)

    def pieces_are_ones(inputs: np.ndarray) -> np.ndarray:
        """Narrow crops are sure 1s; the others likely not one digit."""
        ink = inputs.reshape(len(inputs), 28, 28) > 0.3
        width, height = ink.any(axis=1).sum(axis=1), ink.any(axis=2).sum(axis=1)
        rows = [
            digit(1, 0.95, 0.01) if w < 0.6 * h else digit(0, 0.6, 0.6)
            for w, h in zip(width, height, strict=True)
        ]
        return np.array(rows, np.float32)

    assert read_gray(gray, image.size, pieces_are_ones, 20).number == "1111"
    first = read_number(segment(image, 20), pieces_are_ones, 3)
    assert first.number == "10" and first.doubts
    # With a limit of 3 digits the second look's four are not an answer: the
    # first reading stands, not a 422.
    assert read_gray(gray, image.size, pieces_are_ones, 3).number == "10"


@pytest.mark.parametrize(("fine_p", "expected"), [(0.6, "10"), (0.8, "101")])
def test_the_second_look_stands_only_if_the_model_finds_it_more_likely(
    fine_p, expected
):
    """The first look reads "10", unsure the rings are one digit (confidence
    0.99 x 0.99 x 0.45). The finer cuts' split scores higher, but is "101" only
    at `fine_p` a digit: it replaces the first reading only when more likely."""
    _, image = two_rings_and_a_bar()
    gray = segment_module.work_image(image)
    calls: list[int] = []

    def predict(inputs: np.ndarray) -> np.ndarray:
        calls.append(len(inputs))
        ink = inputs.reshape(len(inputs), 28, 28) > 0.3
        width, height = ink.any(axis=1).sum(axis=1), ink.any(axis=2).sum(axis=1)
        if len(calls) == 1:
            rows = [
                digit(1, 0.99, 0.0) if w < 0.6 * h else digit(0, 0.99, 0.55)
                for w, h in zip(width, height, strict=True)
            ]
        else:  # only the finer cuts' new crops
            rows = [
                digit(1, fine_p, 0.0)
                if w < 0.6 * h
                else digit(0, fine_p, 0.95 if w > 1.2 * h else 0.0)
                for w, h in zip(width, height, strict=True)
            ]
        return np.array(rows, np.float32)

    reading = read_gray(gray, image.size, predict, 20)
    assert len(calls) == 2
    assert reading.number == expected
    assert reading.confidence == pytest.approx(
        0.99 * 0.99 * 0.45 if expected == "10" else 0.99 * fine_p * fine_p, rel=1e-3
    )


def bar_and_ring() -> Image.Image:
    """A bar and a ring wide enough to be cut again, dark on light: "10"."""
    ink = np.zeros((60, 80), dtype=np.uint8)
    ink[8:52, 10:14] = 255
    rows, cols = np.mgrid[:60, :80]
    radius = np.hypot(rows - 32, cols - 45)
    ink[(radius >= 10) & (radius <= 13)] = 255
    return Image.fromarray(255 - ink)


def test_a_number_read_without_doubt_costs_one_call():
    image = bar_and_ring()
    gray = segment_module.work_image(image)
    ring_mark = segment(image, 20).atoms[-1].mark
    plain = segment_module.segment_gray(gray, image.size, 20)
    fine = segment_module.segment_gray(gray, image.size, 20, frozenset({ring_mark}))
    assert len(fine.atoms) > len(plain.atoms)
    calls = []
    reading = read_gray(gray, image.size, shape_reader(calls), 20)
    assert (reading.number, reading.doubts, len(calls)) == ("10", [], 1)


@pytest.mark.parametrize(("ring_p", "looks"), [(0.9, 1), (0.6, 2)])
def test_a_digit_read_unsure_gets_a_second_look_without_a_doubt(ring_p, looks):
    """A merged pair often reads as one unsure digit: a chosen crop below
    SECOND_LOOK_WHOLE is cut again, though nothing else doubts the split. The
    finer cuts read no likelier here, so the first reading and its (empty)
    doubts stand."""
    image = bar_and_ring()
    calls: list[int] = []

    def predict(inputs: np.ndarray) -> np.ndarray:
        calls.append(len(inputs))
        ink = inputs.reshape(len(inputs), 28, 28) > 0.3
        width, height = ink.any(axis=1).sum(axis=1), ink.any(axis=2).sum(axis=1)
        if len(calls) > 1:  # the finer cuts' new crops: pieces, not digits
            return np.array([digit(0, 0.5, 0.9)] * len(inputs), np.float32)
        rows = [
            digit(1, 0.99, 0.0) if w < 0.6 * h else digit(0, ring_p, 0.0)
            for w, h in zip(width, height, strict=True)
        ]
        return np.array(rows, np.float32)

    gray = segment_module.work_image(image)
    reading = read_gray(gray, image.size, predict, 20)
    assert (reading.number, reading.doubts, len(calls)) == ("10", [], looks)
    assert reading.confidence == pytest.approx(0.99 * ring_p, rel=1e-3)


def salt(image: np.ndarray, dots: int) -> np.ndarray:
    """The image with `dots` single ink pixels at random places."""
    rng = np.random.default_rng(dots)
    out = image.copy()
    out[rng.integers(0, out.shape[0], dots), rng.integers(0, out.shape[1], dots)] = 255
    return out


@pytest.mark.parametrize(
    ("image", "status", "words"),
    [
        (np.zeros((60, 300), np.uint8), 422, "no ink found"),
        (
            np.random.default_rng(0).integers(0, 256, (200, 600), dtype=np.uint8),
            422,
            "noise",
        ),
        (
            np.random.default_rng(1)
            .normal(0, 60, (100, 900))
            .clip(0, 255)
            .astype(np.uint8),
            422,
            "noise",
        ),
        (np.pad(np.full((4, 20_000), 255, np.uint8), 100), 422, "no digit found"),
        (np.pad(np.full((4, 2_000), 255, np.uint8), 30), 422, "no digit found"),
        (np.zeros((1, 1000), np.uint8), 422, "longer than it is wide"),
        (salt(np.zeros((300, 900), np.uint8), 60), 422, "no digit found"),
        (salt(np.zeros((300, 900), np.uint8), 5000), 422, "noise"),
    ],
    ids=[
        "blank",
        "uniform-noise",
        "gaussian-noise",
        "rule-20000",
        "rule",
        "sliver",
        "sparse-dots",
        "dense-dots",
    ],
)
def test_unreadable_fields_are_4xx(client, image, status, words):
    response = read(client, image)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert client.get("/health/ready").status_code == 200


@pytest.mark.parametrize(
    ("blocks", "words"),
    [
        (7, "more than 1280 candidate digit crops (64 a digit at the digit limit"),
        (10, "line heights wide: more than the limit of 20 digits"),
        (40, "line heights wide: more than the limit of 20 digits"),
    ],
)
def test_a_scribble_is_422_before_its_crops_are_classified(client, blocks, words):
    response = client.post("/predict-number", content=scribble(blocks), headers=PNG)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert words in detail
    assert "one number" in detail


def test_above_the_digit_limit_is_422_naming_it(client, sample):
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(sample["labels"]), 200)
    number = compose(sample["images"][picks])
    response = read(client, number.image)
    assert response.status_code == 422
    assert "limit of 20 (MAX_NUMBER_DIGITS)" in response.json()["detail"]


def test_the_limit_is_a_setting(client_with, number):
    with client_with(max_number_digits=3) as client:
        response = read(client, number.image)
    assert response.status_code == 422
    assert "4 digits, above the limit of 3" in response.json()["detail"]


def test_not_an_image_is_415(client):
    response = client.post(
        "/predict-number", content=b"GIF89a", headers={"content-type": "image/gif"}
    )
    assert response.status_code == 415


def test_pixel_limit_is_413(client_with, number):
    with client_with(max_image_pixels=1000) as client:
        assert read(client, number.image).status_code == 413


def flood_count(mask: np.ndarray) -> int:
    """8-connected components by a plain flood fill, to check label_marks."""
    seen = np.zeros_like(mask)
    count = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        count += 1
        stack = [start]
        seen[start] = True
        while stack:
            y, x = stack.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    inside = 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1]
                    if inside and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
    return count


@pytest.mark.parametrize("density", [0.1, 0.3, 0.45, 0.6])
def test_label_marks_matches_a_flood_fill(density):
    rng = np.random.default_rng(int(density * 100))
    mask = rng.random((40, 70)) < density
    labels, count = label_marks(mask)
    assert count == flood_count(mask)
    assert ((labels > 0) == mask).all()
    assert set(np.unique(labels[mask]).tolist()) == set(range(1, count + 1))


def test_seams_follow_slanted_gaps_between_touching_strokes():
    # Three slanted ink bands, two one-pixel slanted gaps between them, and a
    # bridge across both gaps on row 10: touching digits leaning right, each
    # seam within its band of 3 columns.
    rows, cols = np.indices((24, 40))
    own = ((cols - rows // 8) % 12) != 0
    own[10] = True
    gaps = [12 + rows[:, 0] // 8, 24 + rows[:, 0] // 8]
    seams = _seams(own, np.array([12, 24, 25, 1]), band=3)
    assert seams.shape == (4, 24)
    for seam in seams:
        assert (np.abs(np.diff(seam)) <= 1).all()  # a path, one column a row
        assert ((seam >= 0) & (seam < own.shape[1])).all()  # inside the mark
    for seam, gap in zip(seams[:3], [gaps[0], gaps[1], gaps[1]], strict=True):
        assert own[np.arange(24), seam].sum() == 1  # only the bridge is cut
        assert (seam[np.arange(24) != 10] == gap[np.arange(24) != 10]).all()


def pieces_of(own: np.ndarray, column: int) -> tuple[Atom, Atom]:
    """The mark `own` cut at `column` into a left and a right atom."""
    rows = np.flatnonzero(own.any(axis=1))
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = own[top:bottom, :column], own[top:bottom, column:]
    width = own.shape[1]
    return (
        Atom(1, 0, column, top, bottom, True, left),
        Atom(1, column, width, top, bottom, True, right),
    )


def test_a_cut_through_a_loop_crosses_two_strokes_a_junction_one():
    rows, cols = np.indices((24, 24))
    radius = np.hypot(rows - 11.5, cols - 11.5)
    ring = (radius > 7) & (radius < 10)  # a 0: a middle cut meets top and bottom
    assert strokes_between(*pieces_of(ring, 12)) == 2
    pair = np.zeros((24, 24), dtype=bool)  # two strokes joined by one short bar
    pair[2:22, 4:7] = pair[2:22, 17:20] = pair[11:13, 7:17] = True
    assert strokes_between(*pieces_of(pair, 12)) == 1
    apart = np.zeros((24, 24), dtype=bool)  # two strokes, nothing between them
    apart[2:22, 4:7] = apart[2:22, 17:20] = True
    assert strokes_between(*pieces_of(apart, 12)) == 0


def test_a_close_second_reading_is_a_doubt_a_distant_one_is_not():
    digits = [4, 6, 4]  # segment 0 reads 4, 1 reads 6, 2 (both merged) reads 4
    close = [(-0.1, (0, 1)), (-0.1 - 0.9 * DOUBT_MARGIN, (2,))]
    far = [(-0.1, (0, 1)), (-0.1 - 1.1 * DOUBT_MARGIN, (2,))]
    same = [(-0.1, (0, 1)), (-0.2, (0, 1))]  # the same digits, split otherwise
    assert _close_rival(close, digits) == close[1]
    assert _close_rival(far, digits) is None
    assert _close_rival(same, digits) is None


def test_twenty_digits_are_read_and_big_jpegs_are_reduced_first(client, sample):
    digits = "12345678909876543210"
    number = compose(first_of(sample, digits), gap=7)
    body = read(client, number.image).json()
    assert len(body["number"]) == 20
    assert sum(a == b for a, b in zip(body["number"], digits, strict=True)) >= 18
    big = np.asarray(
        Image.fromarray(255 - number.image).resize(
            (number.image.shape[1] * 12, number.image.shape[0] * 12)
        )
    )
    response = client.post(
        "/predict-number", content=jpeg(big), headers={"content-type": "image/jpeg"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["number"] == body["number"]
    x, _, w, _ = response.json()["digits"][-1]["box"]
    assert x + w <= big.shape[1]
    assert x > 0.9 * big.shape[1]  # boxes are in the upload's own pixels


def two_bars() -> Image.Image:
    """Two upright strokes close enough together to be read as one digit too."""
    ink = np.zeros((60, 40), dtype=np.uint8)
    ink[10:50, 10:14] = ink[10:50, 20:24] = 255
    return Image.fromarray(255 - ink)


def fixed_outputs(seg, whole: list[float], merged: list[float]):
    """A model whose outputs depend only on the crop: each bar alone, or both."""

    def predict(inputs: np.ndarray) -> np.ndarray:
        assert len(inputs) == len(seg.segments)
        rows = [merged if e - f > 1 else whole for f, e in seg.segments]
        return np.array(rows, dtype=np.float32)

    return predict


def digit(value: int, p: float, not_a_digit: float | None = None) -> list[float]:
    """Outputs giving `value` probability p and the rest evenly to other digits."""
    rest = (1.0 - p) / 9
    row = [p if d == value else rest for d in range(10)]
    if not_a_digit is None:
        return row
    return [x * (1.0 - not_a_digit) for x in row] + [not_a_digit]


def test_the_not_one_digit_output_decides_between_a_merge_and_a_split():
    seg = segment(two_bars(), 20)
    assert sorted(seg.segments) == [(0, 1), (0, 2), (1, 2)]
    # Ten outputs: the merged pair reads 4 with more confidence than each 1.
    ten = fixed_outputs(seg, digit(1, 0.6), digit(4, 0.999))
    assert read_number(seg, ten, 20).number == "4"
    # The same digits, but the model knows the pair is not one digit.
    eleven = fixed_outputs(seg, digit(1, 0.6, 0.01), digit(4, 0.999, 0.95))
    reading = read_number(seg, eleven, 20)
    assert reading.number == "11"
    # The answer's probabilities are the digits' own, renormalised.
    np.testing.assert_allclose(reading.probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert reading.probabilities[0, 1] == pytest.approx(0.6, abs=1e-6)
    assert reading.doubts == []
    # ... and each chosen crop's chance of being one whole digit.
    np.testing.assert_allclose(reading.whole, [0.99, 0.99], atol=1e-6)
    np.testing.assert_allclose(read_number(seg, ten, 20).whole, [1.0])


def test_a_digit_the_model_finds_not_whole_is_a_doubt():
    seg = segment(two_bars(), 20)
    eleven = fixed_outputs(seg, digit(1, 0.9, 0.6), digit(4, 0.9, 0.99))
    reading = read_number(seg, eleven, 20)
    assert reading.number == "11"
    assert reading.doubts == [
        "digit 1 may be a piece of a digit or several digits",
        "digit 2 may be a piece of a digit or several digits",
    ]
