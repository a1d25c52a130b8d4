"""Writing variants: a flag and a base on a 1, a 4 closed at the top, a crossed 7."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnist_mlops.modeling import variants
from mnist_mlops.modeling.drawn import fine_skeletons, loops
from mnist_mlops.pipelines.data_processing.nodes import normalize
from mnist_mlops.pipelines.training.nodes import draw_training_digits

SIZE = 56  # fine_skeletons' resolution


def stroke(top: tuple[int, int], foot: tuple[int, int]) -> np.ndarray:
    """A 1's skeleton: one line from `top` to `foot`, (x, y) each."""
    return variants._lines(np.zeros((SIZE, SIZE), dtype=bool), [(*top, *foot)])


@pytest.mark.parametrize("seed", range(8))
def test_a_flag_leaves_the_top_down_to_the_left(seed: int) -> None:
    one = stroke((30, 10), (26, 48))  # leaning right, as many 1s do
    flagged = variants.flagged_one(one, np.random.default_rng(seed))
    assert (flagged >= one).all()  # the 1's own stroke is kept
    added = flagged & ~one
    rows, cols = np.nonzero(added)
    near_top = rows < 30
    # The flag: left of the top, below it, shorter than half the stem, and
    # steeper than a 7's bar (at least 30 degrees below the level).
    assert near_top.any() and (cols[near_top] < 30).all()
    assert (rows[near_top] >= 10).all() and rows[near_top].max() <= 10 + 0.35 * 38
    drop, run = rows[near_top].max() - 10, 30 - cols[near_top].min()
    assert drop >= np.tan(np.deg2rad(30)) * run - 2
    # A base, where there is one, lies level across the foot.
    base = rows[~near_top]
    if len(base):
        assert set(base.tolist()) <= {47, 48, 49}
        assert cols[~near_top].min() < 26 < cols[~near_top].max()


def test_half_of_the_flagged_ones_get_a_base() -> None:
    rng = np.random.default_rng(0)
    one = stroke((28, 8), (28, 48))
    bases = [
        (variants.flagged_one(one, rng)[46:50] & ~one[46:50]).any() for _ in range(200)
    ]
    assert 0.35 < np.mean(bases) < 0.65


@pytest.mark.parametrize("seed", range(8))
def test_a_closed_four_has_one_loop_and_a_bar_across_its_stem(seed: int) -> None:
    four = variants.closed_four(np.random.default_rng(seed))
    assert four.shape == (SIZE, SIZE)
    assert loops(four) == 1  # the closed top
    rows, cols = np.nonzero(four)
    height = rows.max() - rows.min() + 1
    assert 38 <= height <= 44  # MNIST's 20 px box, at twice the resolution
    # The stem runs from the top to the foot; the bar crosses it and runs on.
    # Right of the stem there is only the bar; left of it, the bar's start.
    stem = np.median(cols[rows >= rows.max() - 3])
    assert np.count_nonzero(cols > stem + 1) >= 2
    assert cols.min() < stem - 10


def test_vary_changes_only_the_shares_of_ones_fours_and_sevens() -> None:
    rng = np.random.default_rng(1)
    skeletons = np.stack([stroke((28, 8), (28, 48))] * 30)
    labels = np.array([1, 4, 7] * 10)
    out = variants.vary(skeletons, labels, variants.Shares(1.0, 1.0), rng)
    assert out is not skeletons and (skeletons == skeletons[0]).all()  # a copy
    changed = (out != skeletons).any(axis=(1, 2))
    np.testing.assert_array_equal(changed, labels != 7)
    untouched = variants.vary(skeletons, labels, variants.Shares(), rng)
    np.testing.assert_array_equal(untouched, skeletons)
    half = variants.vary(
        skeletons, labels, variants.Shares(0.5), np.random.default_rng(2)
    )
    flagged = (half != skeletons).any(axis=(1, 2))
    assert 0 < flagged.sum() < 10 and not flagged[labels != 1].any()
    crossed = variants.vary(
        skeletons, labels, variants.Shares(crossed_sevens=1.0), np.random.default_rng(3)
    )
    np.testing.assert_array_equal((crossed != skeletons).any(axis=(1, 2)), labels == 7)


def test_variants_in_training_change_only_the_ones_fours_and_sevens(
    sample_table: pd.DataFrame,
) -> None:
    """Turning the variants on leaves every other drawn digit as it was."""
    x, y = normalize(sample_table.head(120))
    base = {"validation_fraction": 0.2, "drawn_training": {"share": 1.0}}
    plain, labels = draw_training_digits(x, y, base)
    shares = {"flagged_ones": 1, "closed_fours": 1, "crossed_sevens": 1}
    varied = {"drawn_training": {"share": 1.0, **shares}}
    x_varied, y_varied = draw_training_digits(x, y, {**base, **varied})
    np.testing.assert_array_equal(y_varied, labels)
    changed = ~np.isclose(x_varied, plain).all(axis=(1, 2, 3))
    ones, fours, sevens = labels == 1, labels == 4, labels == 7
    assert not changed[~(ones | fours | sevens)].any()
    assert changed[fours].all() and fours.sum() >= 5
    assert changed[sevens].mean() > 0.7 and sevens.sum() >= 5
    # Most 1s take a flag (one whose flags would all close a loop stays plain),
    # and a flagged 1 holds more ink than the same 1 drawn plainly.
    assert changed[ones].mean() > 0.7 and ones.sum() >= 5
    flagged = ones & changed
    ink = x_varied[flagged].sum(axis=(1, 2, 3))
    assert (ink > plain[flagged].sum(axis=(1, 2, 3))).all()


def test_a_flag_closes_no_loop_on_real_ones(
    sample_table: pd.DataFrame,
) -> None:
    x, y = normalize(sample_table)
    ones = fine_skeletons(x[y == 1][:10])
    flagged = variants.vary(
        ones, np.ones(len(ones), int), variants.Shares(1.0), np.random.default_rng(4)
    )
    grown = 0
    for before, after in zip(ones, flagged, strict=True):
        assert (after >= before).all()
        assert loops(after) == loops(before)  # a flag that would is not drawn
        grown += after.sum() > before.sum()
    assert grown >= 8  # most 1s take a flag


def test_a_one_hooked_into_every_flag_is_left_plain() -> None:
    # A 1 whose top runs left and back down: any flag from its top meets it.
    hooked = variants._lines(
        np.zeros((SIZE, SIZE), dtype=bool),
        [(28, 8, 28, 48), (28, 8, 19, 8), (19, 8, 19, 40)],
    )
    out = variants.flagged_one(hooked, np.random.default_rng(0))
    np.testing.assert_array_equal(out, hooked)
    assert out is not hooked


def seven() -> np.ndarray:
    """A 7's skeleton: a level top from (14, 8) to (40, 8), a stem down to (24, 48)."""
    return variants._lines(
        np.zeros((SIZE, SIZE), dtype=bool), [(14, 8, 40, 8), (40, 8, 24, 48)]
    )


@pytest.mark.parametrize("seed", range(8))
def test_a_crossed_seven_has_a_short_bar_across_its_stem_at_mid_height(
    seed: int,
) -> None:
    plain = seven()
    crossed = variants.crossed_seven(plain, np.random.default_rng(seed))
    assert (crossed >= plain).all()  # the 7's own strokes are kept
    rows, cols = np.nonzero(crossed & ~plain)
    # Across the stem at 45-60% of the 40-px height, short, nearly level.
    assert 8 + 0.45 * 40 - 3 <= rows.min() and rows.max() <= 8 + 0.6 * 40 + 3
    assert np.ptp(rows) <= 2 * 0.04 * 40 + 2
    y = int(np.median(rows))
    stem = np.nonzero(plain[y])[0].mean()
    assert cols.min() < stem - 4 and cols.max() > stem + 4
    assert np.ptp(cols) <= 2 * 0.25 * 40 + 2
    assert loops(crossed) == 0


def test_a_seven_whose_every_bar_closes_a_loop_is_left_plain() -> None:
    # A stem written twice, 6 px apart and joined at the foot: any bar across
    # it joins the two strokes and closes one more loop.
    doubled = variants._lines(seven(), [(34, 8, 18, 48), (18, 48, 24, 48)])
    out = variants.crossed_seven(doubled, np.random.default_rng(0))
    np.testing.assert_array_equal(out, doubled)
    assert out is not doubled


def test_sevens_left_plain_draw_nothing_from_the_generator() -> None:
    """At crossed_sevens 0 the other digits vary as they did before 7s could be."""
    rng_seed = 5
    skeletons = np.stack([stroke((28, 8), (28, 48))] * 30)
    labels = np.array([1, 7, 4] * 10)
    shares = variants.Shares(0.5, 0.5)
    with_sevens = variants.vary(
        skeletons, labels, shares, np.random.default_rng(rng_seed)
    )
    others = labels != 7
    without = variants.vary(
        skeletons[others], labels[others], shares, np.random.default_rng(rng_seed)
    )
    np.testing.assert_array_equal(with_sevens[others], without)
