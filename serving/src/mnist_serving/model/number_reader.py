"""Read a whole handwritten number: every candidate crop in one model call, then
the most plausible split into digits by dynamic programming; where that split
is in doubt, a second look at finer cuts of the doubted marks (`read_gray`).

A split is a sequence of segments (runs of neighbouring atoms, see
`mnist_serving.imaging.segment`) that covers every atom once. Its score is the
sum over its segments of the log-probability of the segment's top class minus
penalties for shapes that class rarely has in MNIST (too wide for that digit,
much shorter than the line, a gap inside), for two neighbouring digits that
overlap in their columns, and for each cut through a mark (more when the cut
crosses several strokes, as a cut through one digit's loop does), plus a small
bonus per digit, since a classifier of digits alone is confident on merged
pairs too. A model with the "not one digit" output (see
`mnist_serving.model.card.NOT_A_DIGIT`), trained on the crops this reader cuts,
scores a crop by its top digit's probability times the probability that the
crop is one whole digit, so that merged pairs and fragments lose. The
classifier thus decides where touching digits are cut and which broken strokes
form one digit (segmentation by recognition); the digits' probabilities are
those of the same call.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mnist_serving.core.errors import InvalidInputError
from mnist_serving.imaging.decode import open_image, shown_size
from mnist_serving.imaging.preprocess import grays_to_mnist
from mnist_serving.imaging.segment import (
    MAX_ASPECT,
    Atom,
    Segmentation,
    gap_columns,
    segment_gray,
    work_image,
)
from mnist_serving.model.card import NOT_A_DIGIT, NUM_CLASSES, digit_probabilities

# Width / height of the ink (pixels at a quarter of the digit's peak or more) of
# each digit 0-9 in MNIST's 60,000 training digits: mean and standard
# deviation. A crop read as an 8 but as wide as a 0 is likely an 8 with a piece
# of its neighbour.
ASPECTS = np.array(
    [
        (0.92, 0.18),
        (0.44, 0.20),
        (0.95, 0.21),
        (0.81, 0.17),
        (0.80, 0.17),
        (0.96, 0.25),
        (0.74, 0.16),
        (0.79, 0.17),
        (0.77, 0.17),
        (0.69, 0.14),
    ]
)
# The weights below were chosen together on numbers composed from MNIST's
# training digits, never its test digits.
ASPECT_FREE = 2.0  # standard deviations off the digit's mean aspect without penalty
SIZES = 0.1  # spread of digit sizes around the line height, added to widths
ASPECT_WEIGHT = 0.5  # penalty: this times half the squared excess deviation
SHORT = 0.55  # segments shorter than this share of the line height are penalised
SHORT_WEIGHT = 6.0
GAP_WEIGHT = 4.0  # penalty per line height of empty columns inside a segment
OVERLAP_FREE = 0.35  # neighbouring digits may overlap this share of the narrower
OVERLAP_WEIGHT = 4.0
CUT_COST = 0.25  # cutting one stroke in two needs this much more evidence
STROKE_COST = 0.25  # ... and this much for each further stroke the cut crosses
DIGIT_BONUS = 0.2  # each digit read: the classifier is also confident on merges
PROBABILITY_FLOOR = 1e-6  # log of zero is not a score
DOUBT_MARGIN = 0.5  # a different reading scoring within this of the best is a doubt
DOUBT_PENALTY = 1.0  # a chosen digit whose shape penalty exceeds this is a doubt
DOUBT_NOT_A_DIGIT = 0.5  # ... and one the model finds this likely not one digit
# A chosen crop the model reads as one whole digit with less than this
# probability (its top digit's times "one whole digit") gets a second look too,
# without a doubt of its own: a merged pair often reads as one unsure digit.
SECOND_LOOK_WHOLE = 0.8
K_BEST = 3  # splits kept per segment, to find the best one that reads differently


@dataclass(frozen=True)
class NumberReading:
    """The digits read, left to right, with what made the split doubtful."""

    probabilities: np.ndarray  # (digits, 10)
    boxes: list[list[int]]  # x, y, w, h in the input's pixels
    doubts: list[str]
    inputs: np.ndarray  # (digits, 28, 28, 1): each digit's model input
    # (digits,): the model's probability that each crop is one whole digit (one
    # minus its "not one digit" output; 1 for a model without that output).
    whole: np.ndarray

    @property
    def number(self) -> str:
        """The digits as a string."""
        return "".join(str(d) for d in self.probabilities.argmax(axis=1).tolist())

    @property
    def confidence(self) -> float:
        """The chance that the number is right: every crop one whole digit and
        read right (each digit's top probability times `whole`), if their errors
        are independent. A 1 swallowed by its neighbour reads as a sure 9; only
        the "not one digit" output tells that crop from a whole 9.
        """
        return float(np.prod(self.probabilities.max(axis=1) * self.whole))


def _extent(atoms: list[Atom]) -> tuple[int, int, int, int]:
    return (
        min(a.left for a in atoms),
        max(a.right for a in atoms),
        min(a.top for a in atoms),
        max(a.bottom for a in atoms),
    )


def shape_penalty(atoms: list[Atom], line: float, digit: int) -> float:
    """How implausible `digit` of this shape is (0 for an ordinary one)."""
    left, right, top, bottom = _extent(atoms)
    width, height = right - left, bottom - top
    mean, spread = ASPECTS[digit]
    deviation = max(
        abs(width / height - mean) / spread, (width / line - mean) / (spread + SIZES)
    )
    excess = max(0.0, deviation - ASPECT_FREE)
    penalty = ASPECT_WEIGHT * 0.5 * excess**2
    penalty += SHORT_WEIGHT * max(0.0, SHORT - height / line)
    return penalty + GAP_WEIGHT * gap_columns(atoms) / line


def overlap_penalty(first: tuple[int, int], second: tuple[int, int]) -> float:
    """Penalty for two neighbouring digits whose columns overlap [left, right)."""
    overlap = min(first[1], second[1]) - max(first[0], second[0])
    narrower = min(first[1] - first[0], second[1] - second[0])
    return OVERLAP_WEIGHT * max(0.0, overlap / narrower - OVERLAP_FREE)


def boundary_penalty(
    seg: Segmentation, before: int, after: int, spans: list[tuple[int, int]]
) -> float:
    """Penalty for a digit boundary between candidate segments `before`, `after`."""
    first = seg.segments[after][0]
    cut = 0.0
    if seg.atoms[first - 1].mark == seg.atoms[first].mark:
        cut = CUT_COST + STROKE_COST * max(0, seg.strokes_cut[first - 1] - 1)
    return cut + overlap_penalty(spans[before], spans[after])


def _best_splits(
    seg: Segmentation, scores: np.ndarray
) -> list[tuple[float, tuple[int, ...]]]:
    """The K_BEST highest-scoring splits, as (score, segment indices), best first."""
    ending: dict[int, list[int]] = {}
    for index, (_, end) in enumerate(seg.segments):
        ending.setdefault(end, []).append(index)
    spans = [
        (min(a.left for a in seg.atoms[f:e]), max(a.right for a in seg.atoms[f:e]))
        for f, e in seg.segments
    ]
    best: list[list[tuple[float, tuple[int, ...]]]] = []
    for index, (first, _) in enumerate(seg.segments):
        if first == 0:
            best.append([(float(scores[index]), (index,))])
            continue
        options = []
        for before in ending.get(first, []):  # every path to `before` ends there
            own, cost = scores[index], boundary_penalty(seg, before, index, spans)
            options.extend(
                (score + own - cost, (*path, index)) for score, path in best[before]
            )
        best.append(heapq.nlargest(K_BEST, options))
    finals = [option for i in ending[len(seg.atoms)] for option in best[i]]
    return heapq.nlargest(K_BEST, finals)


def read_number(
    seg: Segmentation,
    predict: Callable[[np.ndarray], np.ndarray],
    max_digits: int,
) -> NumberReading:
    """Classify every candidate crop in one call and pick the best split.

    `predict` returns the model's (N, 10) or (N, 11) outputs (see
    `mnist_serving.model.card`). InvalidInputError (422) when the best split
    has more than `max_digits`.
    """
    inputs = grays_to_mnist(seg.crops)
    return _best_reading(seg, inputs, predict(inputs), max_digits)[0]


def read_gray(
    gray: np.ndarray,
    size: tuple[int, int],
    predict: Callable[[np.ndarray], np.ndarray],
    max_digits: int,
) -> NumberReading:
    """Segment and read a number's `work_image`, looking twice where in doubt.

    When the first split is doubtful (a digit of odd shape or likely not one
    digit, or a close reading that differs) or holds a digit read unsure
    (SECOND_LOOK_WHOLE), the marks of the doubted digits
    are cut again at more places (`segment_gray`'s `refine`) and the number is
    read from those candidates: touching digits that the first cuts missed are
    often separated then. That reading replaces the first if its `confidence`
    is higher. Only the new crops go to the model, in one more call; a number
    read without doubt costs one call, as before.
    """
    seg = segment_gray(gray, size, max_digits)
    reading = _two_looks(seg, gray, size, predict, max_digits)
    reading.doubts.extend(_separator_doubts(seg.separators, reading.boxes))
    return reading


def _separator_doubts(
    separators: tuple[float, ...], boxes: list[list[int]]
) -> list[str]:
    """Decimal points and commas between the digits read: the number is only
    the digits, so where the mark belongs is for the caller to check."""
    centres = [x + w / 2 for x, _, w, _ in boxes]
    doubts = []
    for column in separators:
        place = sum(c < column for c in centres)
        if 0 < place < len(boxes):
            doubts.append(
                f"a dot or comma between digits {place} and {place + 1} is not read "
                "as a digit; check whether it is a decimal point"
            )
    return doubts


def _two_looks(
    seg: Segmentation,
    gray: np.ndarray,
    size: tuple[int, int],
    predict: Callable[[np.ndarray], np.ndarray],
    max_digits: int,
) -> NumberReading:
    """The first look's reading, or the second's where the first is in doubt."""
    inputs = grays_to_mnist(seg.crops)
    outputs = predict(inputs)
    reading, doubted = _best_reading(seg, inputs, outputs, max_digits)
    if not doubted:
        return reading
    refine = frozenset(
        seg.atoms[k].mark for i in doubted for k in range(*seg.segments[i])
    )
    try:
        fine = segment_gray(gray, size, max_digits, refine)
    except InvalidInputError:
        return reading  # finer cuts would pass the candidate limit: keep the first
    changed = {
        mark for mark in refine if _mark_boxes(seg, mark) != _mark_boxes(fine, mark)
    }
    if not changed:
        return reading  # the doubted marks are too narrow to cut at more places
    # Candidates made only of marks not cut again are the first look's: their
    # model inputs and outputs are reused, the rest prepared and classified.
    known = {
        _key(seg, index): index
        for index in range(len(seg.segments))
        if not _touches(seg, index, changed)
    }
    found = [known.get(_key(fine, index)) for index in range(len(fine.segments))]
    new = [index for index, first in enumerate(found) if first is None]
    old = [index for index, first in enumerate(found) if first is not None]
    before = [found[index] for index in old]
    fine_inputs = np.empty((len(found), *inputs.shape[1:]), dtype=inputs.dtype)
    fine_outputs = np.empty((len(found), outputs.shape[1]), dtype=outputs.dtype)
    fine_inputs[old], fine_outputs[old] = inputs[before], outputs[before]
    fine_inputs[new] = grays_to_mnist(fine.crops[new])
    fine_outputs[new] = predict(fine_inputs[new])
    try:
        second = _best_reading(fine, fine_inputs, fine_outputs, max_digits)[0]
    except InvalidInputError:
        return reading  # finer cuts read more digits than the limit: keep the first
    # The split's score favours more digits and ordinary shapes; between the
    # two looks' readings, the one the model finds more likely right stands
    # (the finer one on a tie, as the score prefers it). A finer cut of a
    # doubted digit can read as two plausible digits that the model is unsure
    # of, or unsure are whole.
    return second if second.confidence >= reading.confidence else reading


def _key(seg: Segmentation, index: int) -> tuple[tuple[int, int, int], ...]:
    """The atoms of candidate `index`, as (mark, left, top): the same in both looks
    for marks that were not cut again."""
    first, end = seg.segments[index]
    return tuple((atom.mark, atom.left, atom.top) for atom in seg.atoms[first:end])


def _mark_boxes(seg: Segmentation, mark: int) -> list[tuple[int, int, int, int]]:
    """The boxes of the atoms that mark `mark` was cut into."""
    return [(a.left, a.top, a.right, a.bottom) for a in seg.atoms if a.mark == mark]


def _touches(seg: Segmentation, index: int, marks: set[int]) -> bool:
    """Whether candidate `index` holds an atom of one of `marks`."""
    first, end = seg.segments[index]
    return any(atom.mark in marks for atom in seg.atoms[first:end])


def _best_reading(
    seg: Segmentation, inputs: np.ndarray, outputs: np.ndarray, max_digits: int
) -> tuple[NumberReading, set[int]]:
    """The best split of the candidates given the model's outputs for them, and
    the candidates to look at again: chosen digits of odd shape, likely not
    one digit or read unsure, and those a close rival split reads otherwise."""
    probabilities = digit_probabilities(outputs)
    not_digit = (
        outputs[:, NOT_A_DIGIT]
        if outputs.shape[1] > NUM_CLASSES
        else np.zeros(len(outputs), dtype=outputs.dtype)
    )
    whole = probabilities.max(axis=1) * (1.0 - not_digit)
    top = np.maximum(whole, PROBABILITY_FLOOR)
    digits = probabilities.argmax(axis=1).tolist()
    shapes = np.array(
        [
            shape_penalty(seg.atoms[f:e], seg.line_height, digit)
            for (f, e), digit in zip(seg.segments, digits, strict=True)
        ]
    )
    splits = _best_splits(seg, np.log(top) - shapes + DIGIT_BONUS)
    path = splits[0][1]
    if len(path) > max_digits:
        raise InvalidInputError(
            f"the image holds {len(path)} digits, above the limit of {max_digits} "
            "(MAX_NUMBER_DIGITS); send one number per request"
        )
    chosen = probabilities[list(path)]
    boxes = [seg.boxes[i].tolist() for i in path]
    whole = 1.0 - not_digit[list(path)]
    reading = NumberReading(chosen, boxes, [], inputs[list(path)], whole)
    reading.doubts.extend(_shape_doubts(path, shapes))
    reading.doubts.extend(_whole_doubts(path, not_digit))
    rival = _close_rival(splits, digits)
    if rival is not None:
        odds = math.exp(splits[0][0] - rival[0])
        reading.doubts.append(
            f"the split into digits is uncertain: {_spell(rival[1], digits)} reads "
            f"only {odds:.1f} times less likely"
        )
    doubted = {
        i
        for i in path
        if shapes[i] > DOUBT_PENALTY
        or not_digit[i] > DOUBT_NOT_A_DIGIT
        or top[i] < SECOND_LOOK_WHOLE
    }
    if rival is not None:
        doubted |= set(path) ^ set(rival[1])
    return reading, doubted


def read_number_image(
    data: bytes,
    predict: Callable[[np.ndarray], np.ndarray],
    max_digits: int,
    max_pixels: int,
) -> NumberReading:
    """PNG or JPEG bytes of one number to its reading: decode, segment, classify.

    Every decode guard of the single-digit path applies, with the number's own
    aspect bound (a 20-digit number is far wider than a digit).
    """
    image = open_image(data, max_pixels, max_aspect=MAX_ASPECT)
    return read_gray(work_image(image), shown_size(image), predict, max_digits)


def _shape_doubts(path: tuple[int, ...], shapes: np.ndarray) -> list[str]:
    """Chosen digits whose shape is unusual for one digit."""
    return [
        f"digit {place} has an unusual shape for one digit"
        for place, index in enumerate(path, start=1)
        if shapes[index] > DOUBT_PENALTY
    ]


def _whole_doubts(path: tuple[int, ...], not_digit: np.ndarray) -> list[str]:
    """Chosen digits the model finds likely a fragment or several digits."""
    return [
        f"digit {place} may be a piece of a digit or several digits"
        for place, index in enumerate(path, start=1)
        if not_digit[index] > DOUBT_NOT_A_DIGIT
    ]


def _spell(path: tuple[int, ...], digits: list[int]) -> str:
    """The digits a split reads."""
    return "".join(str(digits[i]) for i in path)


def _close_rival(
    splits: list[tuple[float, tuple[int, ...]]], digits: list[int]
) -> tuple[float, tuple[int, ...]] | None:
    """A split that reads differently and scores within DOUBT_MARGIN of the best."""
    score, path = splits[0]
    for other_score, other in splits[1:]:
        if _spell(other, digits) != _spell(path, digits):
            return (other_score, other) if score - other_score < DOUBT_MARGIN else None
    return None
