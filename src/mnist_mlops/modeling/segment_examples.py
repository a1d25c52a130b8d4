"""Training examples of what the number reader cuts: whole digits and "not one digit".

A classifier of digits alone is as sure of half a digit, or of two touching
digits squeezed into one box, as of a real digit, so the number reader cannot
tell a good split from a bad one by its confidence. These examples teach the
model an eleventh output, "not one digit" (`NOT_A_DIGIT`): numbers are composed
from training digits, serving's own segmenter cuts them into its candidate
crops, and each crop is labelled by whose ink it holds. A crop that is one
digit, nearly whole and nearly alone, is an example of that digit; a crop that
is mostly a piece of a digit, or holds most of two (however light one of them
is), is "not one digit"; crops in between are left out rather than taught
either way. Crops that hold much of two digits, the refusals that matter where
digits touch, are far rarer among the candidates than pieces of one digit, so
`merge_share` of the "not one digit" examples are drawn from them.

A `drawn_share` of the numbers is written by a drawn-digit writer
(`number_set.drawn_digits`), as the drawn-writer number set is: a thick pen
makes touching pairs share more ink, and a stroke the pen lifted from leaves
pieces no MNIST digit has, which the reader must also learn to refuse.
"""

from __future__ import annotations

import numpy as np
from mnist_serving.model.card import NOT_A_DIGIT

from .number_set import compose_number_owned, drawn_digits
from .serving_view import segment_number

MIN_DIGITS, MAX_DIGITS = 2, 7  # digits of each composed number
TOUCHING_SHARE = 0.5  # numbers with one touching pair: they make the merges
WHOLE = 0.85  # a digit: this share of the crop's ink is one digit's, and the
# crop holds this share of that digit's ink
PIECE_SHARE = 0.7  # not one digit: the main digit has less of the crop's ink
PIECE_COVER = 0.6  # ... or the crop holds less of the main digit's ink, or
# at least this share of a second digit's: a 1 beside a 0 holds little of the
# crop's ink, yet the crop is two digits, not a 0
MIXED = 0.3  # "not one digit" holding this share of a second digit's ink: a merge
OVERSAMPLE = 3
MERGE, PIECE, WHOLE_DIGIT = 0, 1, 2  # the kinds of crop drawn, each to its quota


def _held(
    atoms_owned: np.ndarray, segments: list[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """(segments, k) ink of each digit in each segment, and that ink's share of
    the digit's whole ink (its cover)."""
    running = np.vstack([np.zeros((1, atoms_owned.shape[1])), atoms_owned.cumsum(0)])
    first, end = np.array(segments, dtype=np.int64).reshape(-1, 2).T
    held = running[end] - running[first]
    return held, held / np.maximum(atoms_owned.sum(axis=0), 1e-9)


def label_candidates(
    atoms_owned: np.ndarray, segments: list[tuple[int, int]], digits: np.ndarray
) -> np.ndarray:
    """The label of each candidate segment: a digit, NOT_A_DIGIT, or -1 (left out).

    `atoms_owned` is (atoms, k): each atom's ink mass owned by each of the k
    composed digits; a segment is the run of atoms [first, end).
    """
    held, covers = _held(atoms_owned, segments)
    labels = np.full(len(segments), -1, dtype=np.int64)
    for index, (owned, cover_of) in enumerate(zip(held, covers, strict=True)):
        main = int(owned.argmax())
        share = owned[main] / max(float(owned.sum()), 1e-9)
        cover = cover_of[main]
        second = np.delete(cover_of, main).max(initial=0.0)
        if share < PIECE_SHARE or cover < PIECE_COVER or second >= PIECE_COVER:
            labels[index] = NOT_A_DIGIT
        elif share >= WHOLE and cover >= WHOLE:
            labels[index] = digits[main]
    return labels


def mixed_candidates(
    atoms_owned: np.ndarray, segments: list[tuple[int, int]]
) -> np.ndarray:
    """Whether each segment holds at least MIXED of a second digit's ink.

    Such crops (a digit with much of its neighbour, or a touching pair whole)
    are the refusals that matter where digits touch, and about one in eight of
    the "not one digit" candidates; the rest are pieces of one digit.
    """
    _, covers = _held(atoms_owned, segments)
    padded = np.pad(covers, ((0, 0), (1, 0)))  # one digit alone: a second of 0
    return np.sort(padded, axis=1)[:, -2] >= MIXED


def _atoms_owned(seg, canvas: np.ndarray, owners: np.ndarray, k: int) -> np.ndarray:
    """(atoms, k) ink mass of each composed digit in each atom of `seg`."""
    top, left, _ = seg.origin
    owned = np.zeros((len(seg.atoms), k), dtype=np.float64)
    for index, atom in enumerate(seg.atoms):
        rows, cols = np.nonzero(atom.mask)
        rows, cols = rows + top + atom.top, cols + left + atom.left
        who = owners[rows, cols]
        mass = canvas[rows, cols].astype(np.float64)
        owned[index] = np.bincount(who[who >= 0], mass[who >= 0], minlength=k)
    return owned


def segment_examples(  # noqa: PLR0913 - the digits, then how many of what
    images: np.ndarray,
    labels: np.ndarray,
    *,
    numbers: int,
    examples: int,
    digit_examples: int,
    seed: int,
    merge_share: float = 0.0,
    drawn_share: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Crops of `numbers` composed numbers as the reader sees them, labelled.

    `images` (N, 28, 28[, 1]) in [0, 1] and their labels are training digits.
    Returns (examples + digit_examples, 28, 28, 1) float32 inputs, prepared by
    serving's preprocessing, and their labels: `examples` of NOT_A_DIGIT and
    `digit_examples` of whole digits (fewer if the numbers hold fewer), with
    `merge_share` of the former holding MIXED of a second digit (pieces make
    up for too few), and `drawn_share` of the numbers written by drawn-digit
    writers. The same arguments give the same examples.
    """
    rng = np.random.default_rng(seed)
    digits = np.rint(images.reshape(-1, 28, 28) * 255).astype(np.uint8)
    merges = round(examples * merge_share)
    quotas = {MERGE: merges, PIECE: examples - merges, WHOLE_DIGIT: digit_examples}
    # Up to OVERSAMPLE times a number's share of each kind (short numbers have
    # few candidates), then the requested counts are drawn from all of them.
    per_number = {k: OVERSAMPLE * -(-q // max(numbers, 1)) for k, q in quotas.items()}
    inputs, found, sorts = [], [], []
    for _ in range(numbers):
        size = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
        picks = rng.choice(len(digits), size=size, replace=False)
        touching = rng.random() < TOUCHING_SHARE
        at = int(rng.integers(0, size - 1)) if touching else None
        chosen_digits = digits[picks]
        # No draw at a share of 0, so that such runs make the crops they made
        # before the option existed.
        if drawn_share and rng.random() < drawn_share:
            chosen_digits, _ = drawn_digits(chosen_digits, rng)
        canvas, owners = compose_number_owned(chosen_digits, at, rng)
        seg, crops = segment_number(canvas)
        if seg is None or seg.origin[2] != 1:
            continue  # refused, or reduced: its pixels no longer match the owners
        owned = _atoms_owned(seg, canvas, owners, size)
        kinds = label_candidates(owned, seg.segments, labels[picks])
        negative = kinds == NOT_A_DIGIT
        mixed = mixed_candidates(owned, seg.segments)
        pools = {
            MERGE: negative & mixed,
            PIECE: negative & ~mixed,
            WHOLE_DIGIT: (kinds >= 0) & ~negative,
        }
        for sort, pool in pools.items():
            chosen = rng.permutation(np.flatnonzero(pool))[: per_number[sort]]
            inputs.append(crops(chosen))
            found.append(kinds[chosen])
            sorts.append(np.full(len(chosen), sort))
    x = np.concatenate(inputs) if inputs else np.zeros((0, 28, 28), np.float32)
    y = np.concatenate(found) if found else np.zeros(0, np.int64)
    sort = np.concatenate(sorts) if sorts else np.zeros(0, np.int64)
    keep = draw_quotas(sort, quotas, rng)
    return x[keep, ..., np.newaxis].astype(np.float32), y[keep]


def draw_quotas(
    sort: np.ndarray, quotas: dict[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices of up to each kind's quota of `sort` (MERGE, PIECE,
    WHOLE_DIGIT), drawn at random; pieces make up for missing merges.
    """
    merges = rng.permutation(np.flatnonzero(sort == MERGE))[: quotas[MERGE]]
    pieces = quotas[PIECE] + quotas[MERGE] - len(merges)
    keep = np.concatenate(
        [
            merges,
            rng.permutation(np.flatnonzero(sort == PIECE))[:pieces],
            rng.permutation(np.flatnonzero(sort == WHOLE_DIGIT))[: quotas[WHOLE_DIGIT]],
        ]
    )
    keep.sort()
    return keep
