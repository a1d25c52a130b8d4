"""Split an image of a handwritten number into candidate digit crops.

The image is reduced by Pillow to a bounded size, its ink found with the
single-digit path's own polarity step, and the ink split into connected
components (8-connected runs joined in NumPy). Ruled lines and specks are
dropped relative to the line height; wide components get candidate cuts along
the paths of least ink, and narrower ones that look like two touching digits
one straight cut. What comes out is a list of *atoms* in reading order
and every candidate *segment* (a run of up to MAX_ATOMS neighbouring atoms) as
an ink crop. Which segmentation is right is left to the classifier
(`mnist_serving.model.number_reader`): the crops are all classified in one call.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from PIL import Image

from mnist_serving.core.errors import InvalidInputError
from mnist_serving.imaging.decode import SCALE, pixels, shown_size, to_grayscale
from mnist_serving.imaging.preprocess import even_light, normalize_polarity

MAX_ASPECT = 400  # longer / shorter side of a number image (20 digits fit easily)
WORK_PIXELS = 512 * 512  # an upload is box-reduced below this before NumPy work
WORK_WIDTH = 4096  # ... and below this width
LINE_PIXELS = 48  # the ink's height is box-reduced to about this before splitting
INK_LEVEL = 0.25 * SCALE  # ink at or above this share of its peak makes a mark
MAX_MARKS = 400  # more separate marks than this is noise, not handwriting
EVERY_MARK = frozenset(range(1, MAX_MARKS + 1))  # every label a mark can have
SOLID = 0.75  # a wide mark with more of its box inked than this is not a stroke
STACKED = 0.5  # marks sharing this share of their columns are one digit's pieces
RULE_ASPECT = 8.0  # a mark this many times wider than tall is a ruled line
SPECK = 0.2  # marks smaller than this share of the line height are dropped
SPECK_PIXELS = 3  # ... and marks of fewer pixels a side than this, always
MIN_LINE_PIXELS = 8  # digits shorter than this (after the reductions) are refused
MIN_PIECE = 0.2  # a cut leaves pieces at least this share of the line height wide
CUT_WIDTH = 1.0  # marks wider than this share of the line height get cut candidates
NARROW_WIDTH = 0.35  # narrower marks above this width get one cut, at a valley
VALLEY = 0.8  # where its column holds at most this share of each side's peak ink
VALLEY_STROKES = 1  # ... chosen among columns crossing at most this many strokes
CUT_STEP = 0.2  # candidate cuts of one mark are about this far apart
# A mark the reader doubts (see `segment_gray`'s `refine`) is cut again more
# finely: from this share of the line height wide, this far apart.
FINE_WIDTH = 0.6
FINE_STEP = 0.1
FINE_BAND = 0.1  # ... and each seam stays this near its cut's column
STROKES_PER_DIGIT = 3  # a number of N digits has at most 3N strokes
WIDTH_PER_DIGIT = 3.0  # ... and at most 3N line heights of inked columns
MAX_ATOMS = 16  # a digit is made of at most this many atoms (strokes or pieces)
# Candidate crops of one look, per digit allowed: every crop is a model input,
# and a scribble that is mostly cuts would make thousands. Numbers composed of
# test digits need at most 23 a digit (44 over both looks).
MAX_CANDIDATES_PER_DIGIT = 64
# A printed rule (a form's underline, the edges of an amount box) is one
# straight run of ink at least this many times the ink's height long, or, on the
# ink's top or bottom edge, across this share of its width and this many heights
# long. A box's sides join a top and a bottom rule and span this share of the
# height between them. A digit's longest straight stroke is about one line.
RULE_RUN = 2.0
EDGE_SPAN = 0.9
EDGE_RUN = 1.5
SIDE_SPAN = 0.9
RULE_PASSES = 3  # rules are looked for again in the ink left, this many times
# A mark at most this many line heights tall and wide, its centre at least
# SEPARATOR_LOW line heights below the middle of the line (at its foot), sharing
# under STACKED of its columns with any other mark, is a decimal point or a
# comma: it is not read as a digit but reported.
SEPARATOR = 0.4
SEPARATOR_LOW = 0.3
# A candidate digit is at most this many line heights wide. MNIST's own digits,
# composed into numbers, are at most 1.41 wide; redrawn by a slanted, rotated
# hand, 0.7% are wider than 1.5 (a lying 8, a wide 6), up to 1.74, and a digit
# no candidate spans is always read as two.
MAX_SPAN = 1.8
MAX_GAP = 0.25  # ... and has at most this many line heights of empty columns
NO_DIGIT = (
    "no digit found: the image holds no handwriting that could be a digit (only "
    "ruled lines or specks); send the field with the number written in it"
)


@dataclass(frozen=True, eq=False)
class Atom:
    """A stroke (connected component) or a piece of one between two cuts."""

    mark: int  # component label
    left: int  # columns [left, right) of the work image
    right: int
    top: int
    bottom: int
    cut: bool  # made by cutting a wider mark
    mask: np.ndarray  # its pixels within [top, bottom) x [left, right)
    # One of the two halves of a narrow mark cut at its valley: a digit alone,
    # or joined only with its other half (see `_candidates`).
    half: bool = False


@dataclass(frozen=True)
class Segmentation:
    """Atoms in reading order, candidate segments and their ink crops."""

    atoms: list[Atom]
    segments: list[tuple[int, int]]  # atoms [first, end) of each candidate
    crops: np.ndarray  # (len(segments), H, W) float32 ink crops, white on black
    boxes: np.ndarray  # (len(segments), 4) x, y, w, h in the input's pixels
    line_height: float
    strokes_cut: list[int]  # strokes a cut between atoms k and k+1 crosses (0: none)
    # Where the atoms' pixel grid lies in the work image: row and column of its
    # top left corner, and the factor it was reduced by (atoms' pixels are
    # factor x factor work pixels).
    origin: tuple[int, int, int] = (0, 0, 1)
    # Column, in the input's pixels, of each decimal point or comma set apart.
    separators: tuple[float, ...] = ()


def work_side(width: int, height: int) -> int:
    """The longer side an image of this size is reduced to before NumPy work.

    Below WORK_PIXELS and WORK_WIDTH, by an integer factor as Pillow reduces.
    """
    factor = max(math.sqrt(width * height / WORK_PIXELS), width / WORK_WIDTH, 1.0)
    return math.ceil(max(width, height) / math.ceil(factor))


def work_image(image: Image.Image) -> np.ndarray:
    """Gray pixels of the image, reduced to its `work_side`."""
    return to_grayscale(image, work_side=work_side(*shown_size(image)))


def label_marks(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 8-connected components of a boolean image: (labels, count).

    Each row's runs of ink are found at once; runs of neighbouring rows that
    touch (diagonals included) are joined by propagating the smallest label.
    Labels start at 1; 0 is background.
    """
    width = mask.shape[1]
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]  # exclusive, in the same row-major order
    count = len(starts)
    if count == 0:
        return np.zeros(mask.shape, dtype=np.int32), 0
    span = width + 2
    start_keys = rows * span + starts
    end_keys = rows * span + ends
    # Runs a of the row above that touch run b: a.end >= b.start, a.start <= b.end.
    first = np.searchsorted(end_keys, (rows - 1) * span + starts, side="left")
    last = np.searchsorted(start_keys, (rows - 1) * span + ends, side="right")
    links = np.maximum(last - first, 0)
    below = np.repeat(np.arange(count), links)
    offsets = np.arange(links.sum()) - np.repeat(np.cumsum(links) - links, links)
    above = np.repeat(first, links) + offsets
    labels = np.arange(count)
    while True:
        low = np.minimum(labels[above], labels[below])
        changed = labels.copy()
        np.minimum.at(changed, above, low)
        np.minimum.at(changed, below, low)
        changed = changed[changed]  # pointer jumping: follow to the root
        if np.array_equal(changed, labels):
            break
        labels = changed
    roots, run_labels = np.unique(labels, return_inverse=True)
    image = np.zeros(mask.shape, dtype=np.int32)
    image[mask] = np.repeat(run_labels + 1, ends - starts)
    return image, len(roots)


def _boxes(labels: np.ndarray, count: int) -> np.ndarray:
    """(count, 4) top, bottom, left, right (exclusive) of labels 1..count."""
    rows, cols = np.nonzero(labels)
    marks = labels[rows, cols] - 1
    boxes = np.empty((count, 4), dtype=np.int64)
    boxes[:, 0] = boxes[:, 2] = np.iinfo(np.int64).max
    boxes[:, 1] = boxes[:, 3] = -1
    np.minimum.at(boxes[:, 0], marks, rows)
    np.maximum.at(boxes[:, 1], marks, rows + 1)
    np.minimum.at(boxes[:, 2], marks, cols)
    np.maximum.at(boxes[:, 3], marks, cols + 1)
    return boxes


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every horizontal run of True in `mask`: its row, first column and end."""
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    starts, ends = np.argwhere(edges == 1), np.argwhere(edges == -1)
    return starts[:, 0], starts[:, 1], ends[:, 1]


def _without_rules(ink: np.ndarray) -> np.ndarray:
    """`ink` with the printed rules of a form erased: long straight horizontal
    runs, and where rules run along the top and the bottom (an amount box), the
    vertical sides between them.

    Ink that a digit shares with a rule goes with the rule; a rule that touches
    the digits would otherwise join them into one mark. Strokes that cross a
    rule are mended (`_mend_strokes`). Rules are judged against the height of
    the ink left, so once the outer lines of lined paper are gone the inner
    ones are found too (RULE_PASSES). Strokes of handwriting are far shorter,
    so numbers without rules are left as they are.
    """
    out = ink
    for index in range(RULE_PASSES):
        mask = out >= INK_LEVEL
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if not len(rows):
            return out
        height, width = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
        margin = max(1, round(0.1 * height))
        row, first, end = _runs(mask)
        length = end - first
        edge = (row - rows[0] <= margin) | (rows[-1] - row <= margin)
        rule = (length >= RULE_RUN * height) | (
            edge & (length >= EDGE_SPAN * width) & (length >= EDGE_RUN * height)
        )
        if not rule.any():
            return out
        out = out.copy()
        erased = np.zeros_like(mask)
        for r, a, b in zip(row[rule], first[rule], end[rule], strict=True):
            out[r, a:b] = 0
            erased[r, a:b] = True
        ruled = np.unique(row[rule])
        _mend_strokes(out, erased, ruled)
        top, bottom = ruled[0], ruled[-1]
        box = top - rows[0] <= margin and rows[-1] - bottom <= margin
        if index == 0 and box and bottom > top:
            col, first, end = _runs(mask.T)
            side = end - first >= SIDE_SPAN * (bottom - top)
            for c, a, b in zip(col[side], first[side], end[side], strict=True):
                out[a:b, c] = 0
    return out


def _mend_strokes(out: np.ndarray, erased: np.ndarray, ruled: np.ndarray) -> None:
    """Refill, in place, erased rule pixels where a stroke crosses the rule: a
    digit written across a notebook's line would otherwise be cut in two.

    In each band of neighbouring ruled rows, a column with ink just above and
    just below the band gets the fainter of the two back.
    """
    starts = ruled[np.concatenate(([True], np.diff(ruled) > 1))]
    ends = ruled[np.concatenate((np.diff(ruled) > 1, [True]))] + 1
    for top, bottom in zip(starts.tolist(), ends.tolist(), strict=True):
        if top == 0 or bottom >= out.shape[0]:
            continue
        above, below = out[top - 1], out[bottom]
        crossed = (above >= INK_LEVEL) & (below >= INK_LEVEL)
        band = erased[top:bottom] & crossed
        out[top:bottom] = np.where(band, np.minimum(above, below), out[top:bottom])


def _line_ink(ink: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """The ink cropped to its rows and columns, reduced to about LINE_PIXELS tall.

    Returns the crop, its integer reduction factor and the crop's top and left.
    """
    mask = ink >= INK_LEVEL
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    factor = max(1, (bottom - top) // LINE_PIXELS)
    crop = ink[top:bottom, left:right]
    if factor > 1:
        crop = pixels(Image.fromarray(crop).reduce(factor), np.float32)
        peak = float(crop.max())
        crop = crop * (SCALE / peak)  # reduction dims thin strokes: stretch back
    return crop, factor, top, left


def _check_solid(boxes: np.ndarray, areas: np.ndarray, line: float) -> None:
    """Refuse noise or a filled area: a mark as wide as tall that is nearly all ink.

    Strokes leave most of a wide box empty; in MNIST's test set one digit in
    10,000 is as wide as tall with more than SOLID of its box inked. Dots (a
    decimal point) are far shorter than the line and pass.
    """
    heights = boxes[:, 1] - boxes[:, 0]
    widths = boxes[:, 3] - boxes[:, 2]
    solid = (widths >= heights) & (areas > SOLID * widths * heights)
    solid &= heights >= SPECK * 2 * line
    if solid.any():
        raise InvalidInputError(
            "the image looks like noise or a filled area, not handwriting: a region "
            f"of {int(widths[solid][0])}x{int(heights[solid][0])} pixels is almost "
            "all ink; send a clean crop of the field with the number written in it"
        )


def _check_extent(boxes: np.ndarray, line: float, max_digits: int) -> None:
    """Refuse more strokes, or more inked width, than `max_digits` digits make,
    before the marks are cut (the costly step).

    The inked width counts the columns some kept mark covers, in line heights;
    numbers composed of MNIST's digits, and drawn ones, cover at most 1.4 a
    digit.
    """
    if len(boxes) > STROKES_PER_DIGIT * max_digits:
        raise InvalidInputError(
            f"the image holds {len(boxes)} separate strokes: more digits than the "
            f"limit of {max_digits} (MAX_NUMBER_DIGITS) can make; send one number "
            "per request"
        )
    covered = np.zeros(int(boxes[:, 3].max()), dtype=bool)
    for left, right in boxes[:, 2:4].tolist():
        covered[left:right] = True
    width = int(covered.sum()) / line
    if width > WIDTH_PER_DIGIT * max_digits:
        raise InvalidInputError(
            f"the handwriting is {width:.0f} line heights wide: more than the limit "
            f"of {max_digits} digits (MAX_NUMBER_DIGITS) can be, at "
            f"{WIDTH_PER_DIGIT:g} line heights a digit; send one number per request"
        )


def _column_heights(boxes: np.ndarray) -> np.ndarray:
    """Heights of groups of marks stacked in the same columns (a digit in pieces).

    A 5 whose bar is detached is two short marks but one tall group, so the
    line height is not halved by broken strokes.
    """
    heights = []
    top = bottom = right = None
    for t, b, le, r in boxes[np.argsort(boxes[:, 2], kind="stable")].tolist():
        if right is not None and min(r, right) - le >= STACKED * (r - le):
            top, bottom, right = min(top, t), max(bottom, b), max(right, r)
            continue
        if top is not None:
            heights.append(bottom - top)
        top, bottom, right = t, b, r
    heights.append(bottom - top)
    return np.array(heights)


def _keep(boxes: np.ndarray) -> tuple[np.ndarray, float]:
    """Which marks are digit ink (not ruled lines, not specks), and the line height."""
    heights = boxes[:, 1] - boxes[:, 0]
    widths = boxes[:, 3] - boxes[:, 2]
    keep = (widths <= RULE_ASPECT * heights) & (
        np.maximum(heights, widths) >= SPECK_PIXELS
    )
    if not keep.any():
        raise InvalidInputError(NO_DIGIT)
    big = _column_heights(boxes[keep])
    line = float(np.median(big[big >= 0.5 * big.max()]))
    if line < MIN_LINE_PIXELS:
        raise InvalidInputError(
            f"the handwriting is only about {line:.0f} px tall once the image is "
            f"reduced to {LINE_PIXELS} px of ink height: the digits are too small "
            "next to the rest of the ink or the image; crop the image to the "
            "number or write it larger"
        )
    keep &= np.maximum(heights, widths) >= SPECK * line
    if not keep.any():
        raise InvalidInputError(NO_DIGIT)
    return keep, line


def _separators(boxes: np.ndarray, keep: np.ndarray, line: float) -> np.ndarray:
    """Which kept marks are decimal points or commas (see SEPARATOR).

    A broken stroke of a digit shares the digit's columns, or stands higher,
    and is kept; a dot standing apart at the foot of the line is punctuation,
    which a digit classifier would read as some digit.
    """
    heights = boxes[:, 1] - boxes[:, 0]
    widths = boxes[:, 3] - boxes[:, 2]
    small = keep & (np.maximum(heights, widths) <= SEPARATOR * line)
    big = keep & ~small
    if not small.any() or not big.any():
        return np.zeros_like(keep)
    middle = float(np.median((boxes[big, 0] + boxes[big, 1]) / 2))
    found = np.zeros_like(keep)
    low = (boxes[:, 0] + boxes[:, 1]) / 2 >= middle + SEPARATOR_LOW * line
    for mark in np.flatnonzero(small & low):
        left, right = boxes[mark, 2:]
        shared = np.minimum(boxes[keep, 3], right) - np.maximum(boxes[keep, 2], left)
        shared[np.flatnonzero(keep) == mark] = 0
        found[mark] = shared.max(initial=0) < STACKED * (right - left)
    return found


def _cuts(column_ink: np.ndarray, line: float, step_share: float) -> list[int]:
    """Candidate cut columns of a wide mark: its thin columns, and a column every
    `step_share` line heights between them, never closer than MIN_PIECE to an
    edge.
    """
    width = len(column_ink)
    margin = max(1, round(MIN_PIECE * line))
    if width < 2 * margin + 1:
        return []
    inner = column_ink[1:-1]
    thin = np.flatnonzero((inner <= column_ink[:-2]) & (inner <= column_ink[2:])) + 1
    step = max(1, round(step_share * line))
    grid = np.arange(margin, width - margin + 1, step)
    cuts = np.union1d(thin[(thin >= margin) & (thin <= width - margin)], grid)
    keep = np.concatenate(([True], np.diff(cuts) >= max(1, step // 2)))
    return cuts[keep].tolist()


def _seams(own: np.ndarray, columns: np.ndarray, band: int) -> np.ndarray:
    """(len(columns), rows) top-to-bottom paths, each near its column, of least ink.

    A path moves at most one column per row (dynamic programming over a band
    of columns around its start), so it can pass between two digits that
    overlap in their columns. All paths of a mark are found together, one
    NumPy step per row; columns outside the mark are never entered.
    """
    width = 2 * band + 1
    inked = np.pad(
        own.astype(np.float32), ((0, 0), (band, band)), constant_values=np.inf
    )
    # window[k, row, j] is column columns[k] - band + j of the mark
    window = inked[:, columns[:, None] + np.arange(width)].transpose(1, 0, 2)
    straight = 0.01 * np.abs(np.arange(width) - band)  # straight when it is free
    cost = (window + straight).astype(np.float32)
    total = cost[:, 0].copy()
    moves = np.zeros(cost.shape, dtype=np.int8)
    edge = np.full((len(columns), 1), np.inf, dtype=np.float32)
    for row in range(1, own.shape[0]):
        shifted = np.concatenate((edge, total, edge), axis=1)
        options = np.stack((shifted[:, :-2], total, shifted[:, 2:]))
        moves[:, row] = options.argmin(axis=0) - 1
        total = options.min(axis=0) + cost[:, row]
    paths = np.empty((len(columns), own.shape[0]), dtype=np.int64)
    paths[:, -1] = total.argmin(axis=1)
    seams = np.arange(len(columns))
    for row in range(own.shape[0] - 1, 0, -1):
        paths[:, row - 1] = paths[:, row] + moves[seams, row, paths[:, row]]
    return paths + columns[:, None] - band


def _halves(own: np.ndarray, line: float) -> list[np.ndarray]:
    """A narrow mark cut straight down at its valley, or whole if it has none.

    The valley is the column of least ink among those that cross one stroke
    (nearest the middle among equals), at least MIN_PIECE from each edge, as
    where a 1 touches its neighbour; thin strokes that pass above and below
    it (a bar, a foot) hold less ink but cross two. It counts if it holds at
    most VALLEY of the ink of each side's fullest column. A 0, a 6 or an 8
    crosses two or three strokes in its middle and stays whole, so that the
    common digits of an amount add no crops. The cut is straight, not a seam:
    a seam's path search per mark would cost more than the few narrow
    touching pairs it would cut better.
    """
    column_ink = own.sum(axis=0)
    width = len(column_ink)
    margin = max(1, round(MIN_PIECE * line))
    if width < 2 * margin + 1:
        return [own]
    columns = np.arange(margin, width - margin + 1)
    starts = np.diff(own.astype(np.int8), axis=0, prepend=0) == 1
    columns = columns[np.count_nonzero(starts[:, columns], axis=0) <= VALLEY_STROKES]
    if not len(columns):
        return [own]
    order = np.lexsort((np.abs(columns - width / 2), column_ink[columns]))
    column = int(columns[order[0]])
    sides = min(column_ink[:column].max(), column_ink[column:].max())
    if column_ink[column] > VALLEY * sides:
        return [own]
    left, right = own.copy(), own.copy()
    left[:, column:] = False
    right[:, :column] = False
    return [left, right]


def _pieces(
    own: np.ndarray, line: float, step_share: float, band_share: float
) -> list[np.ndarray]:
    """A wide mark's pixels split along the seam of each candidate cut, the cuts
    about `step_share` line heights apart and each seam within `band_share` line
    heights of its cut's column.
    """
    cuts = _cuts(own.sum(axis=0), line, step_share)
    if not cuts:
        return [own]
    band = max(1, round(band_share * line))
    found = np.maximum.accumulate(_seams(own, np.array(cuts), band), axis=0)
    seams = [
        np.zeros(own.shape[0], dtype=np.int64),
        *np.maximum(found, 0),
        np.full(own.shape[0], own.shape[1], dtype=np.int64),
    ]
    columns = np.arange(own.shape[1])
    pieces = []
    for lo, hi in pairwise(seams):
        piece = own & (columns >= lo[:, None]) & (columns < hi[:, None])
        if piece.any():
            pieces.append(piece)
    return pieces


def _atoms(
    labels: np.ndarray,
    boxes: np.ndarray,
    keep: np.ndarray,
    line: float,
    refine: frozenset[int],
) -> list[Atom]:
    """Kept marks in reading order, wide ones cut into pieces along seams and
    narrow ones in two at a deep valley; marks in `refine` (labels) more finely.
    """
    atoms: list[Atom] = []
    for mark in np.flatnonzero(keep).tolist():
        top, bottom, left, right = boxes[mark].tolist()
        own = labels[top:bottom, left:right] == mark + 1
        fine = mark + 1 in refine and right - left > FINE_WIDTH * line
        narrow = not fine and NARROW_WIDTH * line < right - left <= CUT_WIDTH * line
        if fine:
            pieces = _pieces(own, line, FINE_STEP, FINE_BAND)
        elif right - left > CUT_WIDTH * line:
            pieces = _pieces(own, line, CUT_STEP, CUT_STEP)
        elif narrow:
            pieces = _halves(own, line)
        else:
            pieces = [own]
        for piece in pieces:
            rows = np.flatnonzero(piece.any(axis=1))
            cols = np.flatnonzero(piece.any(axis=0))
            t, b, le, r = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            atoms.append(
                Atom(
                    mark + 1,
                    left + int(le),
                    left + int(r),
                    top + int(t),
                    top + int(b),
                    len(pieces) > 1,
                    piece[t:b, le:r],
                    narrow and len(pieces) > 1,
                )
            )
    atoms.sort(key=lambda atom: (atom.left + atom.right) / 2)
    return atoms


def strokes_between(left: Atom, right: Atom) -> int:
    """How many strokes the cut between two pieces of one mark crosses.

    A row where the left piece's last ink and the right piece's first ink are
    at most one column apart is a row the cut goes through ink; each run of
    such rows is one stroke. Touching digits usually meet in one stroke; a
    cut through one digit (a 0, an 8) often crosses two or more.
    """
    top, bottom = max(left.top, right.top), min(left.bottom, right.bottom)
    if bottom <= top:
        return 0
    own = left.mask[top - left.top : bottom - left.top]
    other = right.mask[top - right.top : bottom - right.top]
    last = left.left + own.shape[1] - 1 - np.argmax(own[:, ::-1], axis=1)
    first = right.left + np.argmax(other, axis=1)
    contact = own.any(axis=1) & other.any(axis=1) & (first - last <= 1)
    return int(np.count_nonzero(np.diff(contact.astype(np.int8), prepend=0) == 1))


def gap_columns(atoms: list[Atom]) -> int:
    """Columns between the atoms' left and right that none of them covers."""
    gap, reach = 0, None
    for atom in sorted(atoms, key=lambda a: a.left):
        if reach is not None and atom.left > reach:
            gap += atom.left - reach
        reach = atom.right if reach is None else max(reach, atom.right)
    return gap


def _candidates(atoms: list[Atom], line: float, limit: int) -> list[tuple[int, int]]:
    """Runs of up to MAX_ATOMS neighbouring atoms that could be one digit.

    At most MAX_SPAN lines wide and with at most MAX_GAP lines of empty columns
    inside; a single atom is always a candidate, so every split exists. A half
    of a narrow mark joins other marks' atoms only together with its other half.
    InvalidInputError (422) as soon as there are more than `limit`.
    """
    halves = Counter(atom.mark for atom in atoms if atom.half)
    segments = []
    for first in range(len(atoms)):
        left = atoms[first].left
        for end in range(first + 1, min(first + MAX_ATOMS, len(atoms)) + 1):
            run = atoms[first:end]
            if end > first + 1 and (
                max(a.right for a in run) - left > MAX_SPAN * line
                or gap_columns(run) > MAX_GAP * line
            ):
                break
            if _splits_halves(run, halves):
                continue
            segments.append((first, end))
            if len(segments) > limit:
                raise InvalidInputError(
                    f"the image would need more than {limit} candidate digit crops "
                    f"({MAX_CANDIDATES_PER_DIGIT} a digit at the digit limit, "
                    "MAX_NUMBER_DIGITS): it holds more handwriting, or more tangled "
                    "strokes, than one number; send a clean crop of one number per "
                    "request"
                )
    return segments


def _splits_halves(run: list[Atom], halves: Counter[int]) -> bool:
    """Whether the run joins one half of a narrow mark to another mark's atoms."""
    marks = Counter(atom.mark for atom in run)
    return len(marks) > 1 and any(
        marks[mark] not in (0, count) for mark, count in halves.items()
    )


def _crop(ink: np.ndarray, atoms: list[Atom]) -> np.ndarray:
    """The ink of the given atoms only, cropped to their joint box."""
    top = min(a.top for a in atoms)
    bottom = max(a.bottom for a in atoms)
    left = min(a.left for a in atoms)
    right = max(a.right for a in atoms)
    own = np.zeros((bottom - top, right - left), dtype=bool)
    for atom in atoms:
        rows = slice(atom.top - top, atom.bottom - top)
        own[rows, atom.left - left : atom.right - left] |= atom.mask
    return np.where(own, ink[top:bottom, left:right], 0.0)


def segment(image: Image.Image, max_digits: int) -> Segmentation:
    """Atoms and every candidate digit crop of one number image.

    InvalidInputError (422) for no ink, noise, a field without digits, or
    clearly more than `max_digits` digits, before any crop is made.
    """
    return segment_gray(work_image(image), shown_size(image), max_digits)


def segment_gray(
    gray: np.ndarray,
    size: tuple[int, int],
    max_digits: int,
    refine: frozenset[int] = frozenset(),
) -> Segmentation:
    """`segment` of an image decoded elsewhere: its `work_image` and (width, height).

    Boxes are in the pixels of the image of that size. The marks (`Atom.mark`)
    in `refine` are cut at more places (from FINE_WIDTH wide, every FINE_STEP):
    the reader's second look where its first split was doubtful (EVERY_MARK:
    all of them). InvalidInputError (422) for no ink, noise, a
    field without digits, or more strokes or candidate crops than `max_digits`
    digits make, before any crop is made.
    """
    x_scale, y_scale = size[0] / gray.shape[1], size[1] / gray.shape[0]
    ink = _without_rules(normalize_polarity(even_light(gray)[None])[0])
    if not (ink >= INK_LEVEL).any():
        raise InvalidInputError(NO_DIGIT)
    line_ink, factor, top, left = _line_ink(ink)
    labels, count = label_marks(line_ink >= INK_LEVEL)
    if count > MAX_MARKS:
        raise InvalidInputError(
            f"the image holds {count} separate marks, more than {MAX_MARKS}: it "
            "looks like noise or a texture, not a handwritten number; send a clean "
            "crop of the field"
        )
    boxes = _boxes(labels, count)
    keep, line = _keep(boxes)
    _check_solid(boxes, np.bincount(labels.ravel(), minlength=count + 1)[1:], line)
    apart = _separators(boxes, keep, line)
    keep &= ~apart
    if not keep.any():
        raise InvalidInputError(NO_DIGIT)
    separators = tuple(
        float((left + (boxes[m, 2] + boxes[m, 3]) / 2 * factor) * x_scale)
        for m in np.flatnonzero(apart)
    )
    _check_extent(boxes[keep], line, max_digits)
    atoms = _atoms(labels, boxes, keep, line, refine)
    segments = _candidates(atoms, line, MAX_CANDIDATES_PER_DIGIT * max_digits)
    crops = [_crop(line_ink, atoms[a:b]) for a, b in segments]
    height = max(c.shape[0] for c in crops) + 2
    width = max(c.shape[1] for c in crops) + 2
    stack = np.zeros((len(crops), height, width), dtype=np.float32)
    boxes_out = np.empty((len(crops), 4), dtype=np.int64)
    for index, (crop, (a, b)) in enumerate(zip(crops, segments, strict=True)):
        stack[index, 1 : 1 + crop.shape[0], 1 : 1 + crop.shape[1]] = crop
        part = atoms[a:b]
        x0 = (left + min(p.left for p in part) * factor) * x_scale
        x1 = (left + max(p.right for p in part) * factor) * x_scale
        y0 = (top + min(p.top for p in part) * factor) * y_scale
        y1 = (top + max(p.bottom for p in part) * factor) * y_scale
        boxes_out[index] = (
            math.floor(x0),
            math.floor(y0),
            math.ceil(x1 - x0),
            math.ceil(y1 - y0),
        )
    cut = [strokes_between(a, b) if a.mark == b.mark else 0 for a, b in pairwise(atoms)]
    origin = (int(top), int(left), int(factor))
    return Segmentation(
        atoms, segments, stack, boxes_out, line, cut, origin, separators
    )
