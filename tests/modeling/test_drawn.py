"""The drawn test set: thinning, deterministic rendering, serving's preprocessing."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import zoom

from mnist_mlops.errors import MissingDependencyError, ParameterError
from mnist_mlops.modeling import serving_view
from mnist_mlops.modeling.drawn import (
    CANVAS,
    UPSAMPLE,
    fine_skeletons,
    ink_masks,
    loops,
    render,
    thin,
)
from mnist_mlops.modeling.serving_view import serving_input
from mnist_mlops.pipelines.data_processing.nodes import normalize, render_drawn_test


@pytest.fixture(scope="module")
def digits(sample_table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    images, labels = normalize(sample_table.tail(40))
    return images, labels


def test_thinning_leaves_a_one_pixel_connected_line() -> None:
    bar = np.zeros((1, 28, 28), dtype=bool)
    bar[0, 4:24, 10:15] = True  # a vertical stroke 5 px wide
    skeleton = thin(bar)[0]
    assert skeleton.any()
    assert (skeleton.sum(axis=1) <= 1).all()  # one pixel per row
    rows = np.flatnonzero(skeleton.any(axis=1))
    assert rows.max() - rows.min() >= 14  # the length stays
    assert (skeleton <= bar[0]).all()  # only removes ink


def test_binarising_keeps_a_loop_that_faint_ink_almost_fills() -> None:
    ring = np.zeros((28, 28))
    ring[6:22, 8:20] = 1.0  # a thick closed loop...
    ring[11:17, 12:16] = 0.55  # ...whose hole is smudged above the 0.5 level
    assert loops(ring > 0.5) == 0
    (mask,) = ink_masks(ring[np.newaxis])
    assert loops(mask) == 1
    assert mask[6:22, 8:20].sum() == 16 * 12 - 6 * 4  # the ring itself stays ink
    solid = np.zeros((1, 28, 28))
    solid[0, 5:23, 12:16] = 0.9  # no loop at any level: the lowest level wins
    np.testing.assert_array_equal(ink_masks(solid)[0], solid[0] > 0.5)


def test_a_filled_loop_stays_filled_and_strokes_stay_thin() -> None:
    rows, cols = np.mgrid[0:28, 0:28]
    nine = np.zeros((28, 28))
    nine[(rows - 9) ** 2 + (cols - 14) ** 2 <= 25] = 1.0  # a loop filled with ink
    nine[9:24, 17:20] = 1.0  # and its tail, a stroke 3 px wide
    ring = np.zeros((28, 28))
    distance = np.sqrt((rows - 14) ** 2 + (cols - 14) ** 2)
    ring[(distance >= 6) & (distance <= 8.5)] = 1.0  # a 0 drawn with a pen
    digits = np.stack([nine, ring])
    skeletons = fine_skeletons(digits)
    plain = thin(ink_masks(zoom(digits, (1, UPSAMPLE, UPSAMPLE), order=1)))
    inside = (rows - 9) ** 2 + (cols - 14) ** 2 <= 9  # well inside the filled loop
    head = np.kron(inside, np.ones((UPSAMPLE, UPSAMPLE), dtype=bool))
    # Thinned alone, the filled loop is a line and the 9 would be redrawn as a 1.
    assert plain[0][head].mean() < 0.2
    assert skeletons[0][head].all()
    tail = skeletons[0][32:46]  # below the loop: the tail is still one thin line
    assert (tail.sum(axis=1) <= 2).all()
    np.testing.assert_array_equal(skeletons[1], plain[1])  # a pen's 0 is untouched


def test_rendering_is_deterministic_for_a_seed(digits) -> None:
    images, _ = digits
    first, again, other = render(images, 7), render(images, 7), render(images, 8)
    assert first == again
    assert first != other


def test_drawings_are_canvas_pngs_and_jpeg_scans_of_both_polarities(digits) -> None:
    images, _ = digits
    formats, dark = set(), set()
    for data in render(images, 3):
        image = Image.open(io.BytesIO(data))
        assert image.size == (CANVAS, CANVAS)
        formats.add(image.format)
        gray = np.asarray(image.convert("L"), dtype=float)
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        dark.add(bool(np.median(border) > gray.mean()))  # light paper, dark ink
    assert formats == {"PNG", "JPEG"}
    assert dark == {True, False}


def test_node_gives_what_serving_feeds_the_model(digits) -> None:
    images, labels = digits
    drawn, drawn_labels = render_drawn_test(images, labels, {"drawn": {"seed": 1}})
    assert drawn.shape == (40, 28, 28, 1)
    assert drawn.dtype == np.float32
    assert 0 <= drawn.min() and drawn.max() <= 1
    np.testing.assert_array_equal(drawn_labels, labels)
    first = render(images[:1], 1)[0]
    np.testing.assert_array_equal(drawn[0], serving_input(first))
    # Centred by mass, as MNIST: the drawn digits overlap the originals' middle.
    assert drawn[:, 10:18, 10:18].mean() > drawn.mean()


def test_drawn_parameters_are_strict(digits) -> None:
    images, labels = digits
    with pytest.raises(ParameterError, match=r"drawn\.sed"):
        render_drawn_test(images, labels, {"drawn": {"sed": 1}})


@pytest.fixture
def unloaded_preprocess(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """serving_view imports serving's preprocessing anew, and forgets it after."""
    serving_view._preprocess.cache_clear()
    yield
    monkeypatch.undo()  # serving's modules back before the import is cached again
    serving_view._preprocess.cache_clear()


@pytest.mark.usefixtures("unloaded_preprocess")
def test_without_the_serving_package_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mnist_serving.imaging.preprocess", None)
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps"):
        serving_view.serving_input(b"")


@pytest.mark.usefixtures("unloaded_preprocess")
def test_a_server_dependency_that_serving_lacks_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # serving is installed, but its module needs a package that is not
    monkeypatch.delitem(sys.modules, "mnist_serving.imaging.preprocess")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(MissingDependencyError, match=r"needs 'PIL'"):
        serving_view.serving_input(b"")
