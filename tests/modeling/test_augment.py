"""Training-batch distortions: shapes, range, determinism, identity when off."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from mnist_mlops.modeling.augment import augment, recentre, restroke, stroke_width, warp
from mnist_mlops.modeling.drawn import thin
from mnist_mlops.modeling.loop import distribute, skeleton_images
from mnist_mlops.modeling.serving_view import serving_input
from mnist_mlops.params import AugmentationParams, TrainingParams
from mnist_mlops.pipelines.data_processing.nodes import normalize

DEFAULT = tf.distribute.get_strategy()  # one worker


def png(image: tf.Tensor) -> bytes:
    """A (28, 28, 1) image in [0, 1] as the PNG a client would send."""
    out = io.BytesIO()
    pixels = np.rint(image.numpy()[..., 0] * 255).astype(np.uint8)
    Image.fromarray(pixels, "L").save(out, "PNG")
    return out.getvalue()


STRONG = AugmentationParams(
    enabled=True,
    rotation_degrees=10,
    zoom=0.1,
    translation=0.06,
    shear=0.25,
    elastic_pixels=0.8,
    stroke_thin=0.5,
    stroke_thicken=1.0,
)


@pytest.fixture(scope="module")
def batch(sample_table: pd.DataFrame) -> tf.Tensor:
    images, _ = normalize(sample_table.head(32))
    return tf.constant(images)


def test_only_the_peak_stretch_when_every_range_is_zero(batch: tf.Tensor) -> None:
    off = AugmentationParams(enabled=True, rotation_degrees=0, zoom=0, translation=0)
    out = augment(batch, off, tf.constant([1, 2], tf.int64)).numpy()
    images = batch.numpy()
    stretched = images / images.max(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, stretched, atol=1e-6)


def test_distortions_keep_shape_range_and_peak(batch: tf.Tensor) -> None:
    out = augment(batch, STRONG, tf.constant([3, 4], tf.int64)).numpy()
    assert out.shape == batch.shape
    assert out.min() >= 0
    np.testing.assert_allclose(out.max(axis=(1, 2, 3)), 1.0, atol=1e-6)
    assert np.abs(out - batch.numpy()).mean() > 0.01  # it does distort


def test_same_seed_same_batch(batch: tf.Tensor) -> None:
    seed = tf.constant([5, 6], tf.int64)
    np.testing.assert_array_equal(
        augment(batch, STRONG, seed).numpy(), augment(batch, STRONG, seed).numpy()
    )
    other = augment(batch, STRONG, tf.constant([5, 7], tf.int64)).numpy()
    assert not np.array_equal(other, augment(batch, STRONG, seed).numpy())


def test_stroke_width_thickens_and_thins(batch: tf.Tensor) -> None:
    ones = tf.ones((batch.shape[0], 1, 1, 1))
    ink = tf.reduce_sum(batch).numpy()
    assert tf.reduce_sum(stroke_width(batch, ones)).numpy() > 1.5 * ink
    assert tf.reduce_sum(stroke_width(batch, -ones)).numpy() < 0.7 * ink


def test_restroked_digits_have_a_uniform_pen(batch: tf.Tensor) -> None:
    skeletons = tf.constant(skeleton_images(batch.numpy()))
    assert set(np.unique(skeletons.numpy())) == {0.0, 1.0}
    thin_pen = restroke(skeletons, tf.zeros((batch.shape[0], 1, 1, 1))).numpy()
    thick_pen = restroke(skeletons, 2 * tf.ones((batch.shape[0], 1, 1, 1))).numpy()
    assert (thick_pen > 0.5).sum() > 2 * (thin_pen > 0.5).sum()
    every = STRONG.model_copy(update={"restroke": 1.0, "rotation_degrees": 0.0})
    out = augment(batch, every, tf.constant([1, 1], tf.int64), skeletons).numpy()
    assert out.shape == batch.shape
    np.testing.assert_allclose(out.max(axis=(1, 2, 3)), 1.0, atol=1e-6)


def test_training_batches_carry_skeletons_only_when_restroking(
    batch: tf.Tensor,
) -> None:
    images, labels = batch.numpy(), np.arange(batch.shape[0]) % 10
    for restroke_share in (0.0, 0.5):
        aug = STRONG.model_copy(update={"restroke": restroke_share})
        cfg = TrainingParams(augmentation=aug, batch_size=16)
        xb, yb, wb = next(iter(distribute(images, labels, cfg, DEFAULT)))
        assert xb.shape == (16, 28, 28, 1)
        assert yb.shape == (16,)
        assert wb.numpy().tolist() == [1.0] * 16  # MNIST rows weigh 1
    cfg = TrainingParams(batch_size=32)
    plain, _, _ = next(iter(distribute(images, labels, cfg, DEFAULT)))
    assert sorted(plain.numpy().sum(axis=(1, 2, 3))) == pytest.approx(
        sorted(images.sum(axis=(1, 2, 3)))
    )  # unaugmented: the images themselves, shuffled


def test_recentring_matches_servings_normalisation(batch: tf.Tensor) -> None:
    warped = warp(batch, STRONG, tf.constant([3, 4], tf.int64))
    ours = recentre(warped, tf.zeros((batch.shape[0], 2))).numpy()[..., 0]
    ours /= ours.max(axis=(1, 2), keepdims=True)
    serving = np.stack([serving_input(png(image))[..., 0] for image in warped])
    assert np.abs(ours - serving).mean() < 0.02  # bilinear vs a triangle filter
    rows = np.arange(28)
    mass = (ours.sum(axis=2) * rows).sum(axis=1) / ours.sum(axis=(1, 2))
    assert np.abs(mass - 14).max() < 1.0  # centred by mass, as serving does
    moved = recentre(warped, tf.fill((batch.shape[0], 2), 1.0)).numpy()[..., 0]
    moved_mass = (moved.sum(axis=2) * rows).sum(axis=1) / moved.sum(axis=(1, 2))
    np.testing.assert_allclose(moved_mass - mass, 1.0, atol=0.2)


def test_skeletons_keep_a_thin_diagonal_stroke() -> None:
    # A 2-px diagonal stroke, as in the base of many MNIST 2s: Zhang-Suen at 28x28
    # erases it, so redrawing the digit from that skeleton would change the digit.
    stroke = np.zeros((1, 28, 28, 1), dtype=np.float32)
    for i in range(6, 22):
        stroke[0, i, i : i + 2, 0] = 1.0
    assert thin(stroke[..., 0] > 0.5).sum() <= 2
    (skeleton,) = skeleton_images(stroke)[..., 0] > 0
    rows = np.flatnonzero(skeleton.any(axis=1))
    assert rows.max() - rows.min() >= 14  # the whole length stays
    assert (skeleton.sum(axis=1) <= 2).all()  # at most two pixels across
    assert not (skeleton & (stroke[0, ..., 0] == 0)).any()  # only where ink was
