"""The number reader's crops, labelled for the "not one digit" output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mnist_serving.model.card import NOT_A_DIGIT

from mnist_mlops.modeling.number_set import compose_number, compose_number_owned
from mnist_mlops.modeling.segment_examples import (
    MERGE,
    PIECE,
    WHOLE_DIGIT,
    _atoms_owned,
    draw_quotas,
    label_candidates,
    mixed_candidates,
    segment_examples,
)
from mnist_mlops.modeling.serving_view import litert_predictor, segment_number
from mnist_mlops.pipelines.data_processing.nodes import normalize


@pytest.fixture(scope="module")
def digits(sample_table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return normalize(sample_table.head(300))


def test_a_whole_digit_keeps_its_label_pieces_and_pairs_do_not() -> None:
    # Atoms: digit 0 whole; digit 1 in two halves; a speck of digit 0 on digit 1.
    owned = np.array(
        [
            [100.0, 0.0],
            [0.0, 50.0],
            [0.0, 50.0],
        ]
    )
    segments = [(0, 1), (1, 2), (2, 3), (1, 3), (0, 2), (0, 3)]
    labels = label_candidates(owned, segments, np.array([7, 3]))
    piece = NOT_A_DIGIT
    assert labels.tolist() == [7, piece, piece, 3, piece, piece]
    # 80% of a digit with nothing else: neither whole nor clearly a piece.
    partly = np.array([[80.0], [20.0]])
    assert label_candidates(partly, [(0, 1)], np.array([5])).tolist() == [-1]
    # A whole light 1 beside a 0: most of the ink is the 0's, but the crop
    # holds two digits.
    zero_one = np.array([[160.0, 0.0], [0.0, 25.0]])
    assert label_candidates(zero_one, [(0, 2)], np.array([0, 1])).tolist() == [piece]


def test_merges_are_crops_holding_much_of_a_second_digit() -> None:
    # Atoms: digit 0 whole; digit 1 in two halves.
    owned = np.array([[100.0, 0.0], [0.0, 50.0], [0.0, 50.0]])
    segments = [(0, 1), (1, 2), (1, 3), (0, 2), (0, 3)]
    assert mixed_candidates(owned, segments).tolist() == [
        False,  # one digit whole
        False,  # a piece of one digit
        False,
        True,  # a digit with half of its neighbour
        True,  # both
    ]
    # A speck of a neighbour (a tenth of its ink) does not make a merge.
    speck = np.array([[100.0, 5.0], [0.0, 45.0]])
    assert mixed_candidates(speck, [(0, 1)]).tolist() == [False]


def test_quotas_are_drawn_per_kind_and_pieces_make_up_for_missing_merges() -> None:
    sort = np.array([MERGE, MERGE, PIECE, PIECE, PIECE, PIECE, WHOLE_DIGIT])
    rng = np.random.default_rng(0)
    keep = draw_quotas(sort, {MERGE: 1, PIECE: 2, WHOLE_DIGIT: 1}, rng)
    assert sorted(sort[keep].tolist()) == [MERGE, PIECE, PIECE, WHOLE_DIGIT]
    assert keep.tolist() == sorted(keep.tolist())
    keep = draw_quotas(sort, {MERGE: 4, PIECE: 1, WHOLE_DIGIT: 0}, rng)
    assert sorted(sort[keep].tolist()) == [MERGE, MERGE, PIECE, PIECE, PIECE]


def test_each_digit_of_a_number_apart_is_labelled_with_itself(digits) -> None:
    images, labels = digits
    picks = np.array([0, 1, 2])
    raw = np.rint(images[picks, ..., 0] * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    canvas, owners = compose_number_owned(raw, None, rng)
    assert np.array_equal(
        canvas, compose_number(raw, None, np.random.default_rng(0))
    )  # the same number as the test set composes
    assert set(np.unique(owners[canvas > 0])) <= {0, 1, 2}
    seg, crops = segment_number(canvas)
    kinds = label_candidates(
        _atoms_owned(seg, canvas, owners, 3), seg.segments, labels[picks]
    )
    # Each digit is a candidate of its own (a wide one is also cut into pieces:
    # small ones are not a digit, nearly all of it still is); every run that
    # holds the whole of two digits is not one.
    whole = {k for k in kinds.tolist() if 0 <= k < NOT_A_DIGIT}
    assert whole == set(labels[picks].tolist())
    assert NOT_A_DIGIT in kinds
    owned = _atoms_owned(seg, canvas, owners, 3)
    for (first, end), kind in zip(seg.segments, kinds, strict=True):
        held = owned[first:end].sum(axis=0) / owned.sum(axis=0)
        if (held > 0.9).sum() >= 2:
            assert kind == NOT_A_DIGIT
    assert crops(np.arange(len(kinds))).shape == (len(kinds), 28, 28)


def test_examples_are_counted_in_range_and_deterministic(digits) -> None:
    images, labels = digits
    kwargs = {"numbers": 40, "examples": 60, "digit_examples": 30, "seed": 3}
    x, y = segment_examples(images, labels, **kwargs)
    assert x.shape == (90, 28, 28, 1)
    assert x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert (y == NOT_A_DIGIT).sum() == 60
    assert set(y[y != NOT_A_DIGIT].tolist()) <= set(labels.tolist())
    again_x, again_y = segment_examples(images, labels, **kwargs)
    assert np.array_equal(x, again_x) and np.array_equal(y, again_y)
    other_x, _ = segment_examples(images, labels, **{**kwargs, "seed": 4})
    assert not np.array_equal(x, other_x)
    # Half of the "not one digit" crops from merges: the same counts, other crops.
    merged_x, merged_y = segment_examples(images, labels, **kwargs, merge_share=0.5)
    assert (merged_y == NOT_A_DIGIT).sum() == 60
    assert not np.array_equal(merged_x, x)


def test_drawn_writers_numbers_give_crops_labelled_as_read(digits, model_bytes) -> None:
    """Numbers written by drawn-digit writers: other crops, still labelled by
    whose ink they hold (a whole digit's crop reads as its label)."""
    images, labels = digits
    kwargs = {"numbers": 40, "examples": 60, "digit_examples": 60, "seed": 3}
    x, _ = segment_examples(images, labels, **kwargs)
    drawn_x, drawn_y = segment_examples(images, labels, **kwargs, drawn_share=1.0)
    assert (drawn_y == NOT_A_DIGIT).sum() == 60
    assert not np.array_equal(drawn_x, x)
    again_x, _ = segment_examples(images, labels, **kwargs, drawn_share=1.0)
    assert np.array_equal(drawn_x, again_x)
    whole = drawn_y != NOT_A_DIGIT
    read = litert_predictor(model_bytes)(drawn_x[whole])[:, :NOT_A_DIGIT].argmax(axis=1)
    # Serving's small fixture model reads most whole digits right; crops labelled
    # with another digit's label would read right about one time in ten.
    assert (read == drawn_y[whole]).mean() >= 0.8
