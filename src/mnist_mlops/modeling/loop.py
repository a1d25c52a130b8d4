"""One training loop for one worker and for N: a custom step under tf.distribute.

`model.fit` under MultiWorkerMirroredStrategy fails with TF 2.21 / Keras 3
("Attempt to convert a value (PerReplica...)"), while `strategy.run` over a
distributed dataset with `tf.GradientTape` works (tests/azure/test_distributed.py
runs two workers). So both paths use this loop; with one worker the strategy is
TensorFlow's default (no-op) one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from mnist_mlops.params import TrainingParams

from .augment import augment
from .cnn import build_model
from .drawn import UPSAMPLE, fine_skeletons

logger = logging.getLogger(__name__)

History = dict[str, list[float]]
PREDICT_BATCH = 2048


def predict_proba(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Class probabilities for many images: a few large batched calls, no `predict`."""
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return np.concatenate(
        [
            call(images[i : i + PREDICT_BATCH]).numpy()
            for i in range(0, len(images), PREDICT_BATCH)
        ]
    )


def validation_split(
    x: np.ndarray, y: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_fit, y_fit, x_val, y_val): the last `fraction` of the rows is validation."""
    n_val = max(1, round(len(x) * fraction))
    return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]


def skeleton_images(x: np.ndarray) -> np.ndarray:
    """Skeletons of (N, 28, 28, 1) digits as float32 images, one or two pixels wide.

    They are thinned at the drawn set's finer resolution and pooled back to 28x28:
    thinned at 28x28, some digits lose a thin stroke or a small loop, and
    redrawing those from their skeleton would teach the model a changed digit.
    """
    fine = fine_skeletons(x)
    n, side = len(x), x.shape[1]
    pooled = fine.reshape(n, side, UPSAMPLE, side, UPSAMPLE).max(axis=(2, 4))
    return pooled[..., np.newaxis].astype(np.float32)


def _dataset(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    cfg: TrainingParams,
    global_batch: int,
) -> tf.data.Dataset:
    aug = cfg.augmentation
    restroke = aug.enabled and aug.restroke > 0
    # With restroking, each image travels with its skeleton (a uniform pen redraws it).
    images = (x, skeleton_images(x)) if restroke else (x,)
    data = tf.data.Dataset.from_tensor_slices((images, (y, weights)))
    data = data.shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
    if not aug.enabled:
        data = data.batch(global_batch).map(lambda xs, yw: (xs[0], *yw))
        return data.prefetch(tf.data.AUTOTUNE)
    # One random seed per image, new each epoch; a batch uses its first one.
    seeds = tf.data.Dataset.random(seed=cfg.seed, rerandomize_each_iteration=True)
    data = tf.data.Dataset.zip(data, seeds.batch(2)).batch(global_batch)
    data = data.map(
        lambda xy, s: (augment(xy[0][0], aug, s[0], *xy[0][1:]), *xy[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return data.prefetch(tf.data.AUTOTUNE)


def distribute(
    x: np.ndarray,
    y: np.ndarray,
    cfg: TrainingParams,
    strategy: tf.distribute.Strategy,
    weights: np.ndarray | None = None,
) -> tf.distribute.DistributedDataset:
    """(images, labels, sample weights) batches as `strategy` deals them out.

    Each worker gets its own shard; without `weights`, every row weighs 1.
    """
    global_batch = cfg.batch_size * strategy.num_replicas_in_sync
    weights = np.ones(len(x), np.float32) if weights is None else weights
    return strategy.experimental_distribute_dataset(
        _dataset(x, y, weights, cfg, global_batch)
    )


def with_feedback(
    x: np.ndarray,
    y: np.ndarray,
    x_feedback: np.ndarray | None,
    y_feedback: np.ndarray | None,
    weight: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, sample weights): MNIST at weight 1, labelled feedback at `weight`."""
    if x_feedback is None or y_feedback is None or len(x_feedback) == 0:
        return x, y, np.ones(len(x), np.float32)
    weights = np.concatenate(
        [np.ones(len(x), np.float32), np.full(len(x_feedback), weight, np.float32)]
    )
    return (
        np.concatenate([x, x_feedback.astype(x.dtype)]),
        np.concatenate([y, y_feedback.astype(y.dtype)]),
        weights,
    )


def _make_step(
    strategy: tf.distribute.Strategy,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    global_batch: int,
) -> Callable:
    def replica_step(
        x: tf.Tensor, y: tf.Tensor, w: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(y, probs)
            loss = tf.nn.compute_average_loss(
                per_example, sample_weight=w, global_batch_size=global_batch
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        hits = tf.cast(tf.equal(tf.argmax(probs, -1), tf.cast(y, tf.int64)), tf.float32)
        return tf.reduce_sum(per_example), tf.reduce_sum(hits)

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor, w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        loss_sum, hits = strategy.run(replica_step, args=(x, y, w))
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, hits, axis=None),
        )

    return step


def _evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    probs = predict_proba(model, x)
    loss = keras.losses.sparse_categorical_crossentropy(y, probs)
    return float(np.mean(loss)), float(np.mean(probs.argmax(-1) == y))


def train(  # noqa: PLR0913, PLR0917 - the arrays, the config and the strategy
    x: np.ndarray,
    y: np.ndarray,
    cfg: TrainingParams,
    strategy: tf.distribute.Strategy | None = None,
    x_feedback: np.ndarray | None = None,
    y_feedback: np.ndarray | None = None,
    examples: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> tuple[keras.Model, History]:
    """Train the CNN with early stopping on a held-out validation slice.

    Labelled feedback joins the fitted rows (never the validation slice, which
    stays MNIST so that early stopping and calibration compare like with like),
    each example weighted by `cfg.feedback_weight` in the loss. Other labelled
    `examples` ((images, labels) pairs: the number reader's crops, digits drawn
    anew) join at weight 1. With `cfg.not_a_digit.enabled`, the network has the "not
    one digit" output.
    """
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(cfg.seed)
    x_fit, y_fit, x_val, y_val = validation_split(x, y, cfg.validation_fraction)
    x_fit, y_fit, w_fit = with_feedback(
        x_fit, y_fit, x_feedback, y_feedback, cfg.feedback_weight
    )
    if examples:
        x_fit = np.concatenate([x_fit, *(x.astype(x_fit.dtype) for x, _ in examples)])
        y_fit = np.concatenate([y_fit, *(y.astype(y_fit.dtype) for _, y in examples)])
        added = sum(len(y) for _, y in examples)
        w_fit = np.concatenate([w_fit, np.ones(added, np.float32)])
    global_batch = cfg.batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_model(cfg.model, not_a_digit=cfg.not_a_digit.enabled)
        schedule = keras.optimizers.schedules.ExponentialDecay(
            cfg.learning_rate,
            decay_steps=-(-len(x_fit) // global_batch),
            decay_rate=cfg.lr_decay_per_epoch,
            staircase=True,
        )
        optimizer = keras.optimizers.Adam(schedule)
    step = _make_step(strategy, model, optimizer, global_batch)
    data = distribute(x_fit, y_fit, cfg, strategy, w_fit)
    stopper = keras.callbacks.EarlyStopping(
        **cfg.early_stopping.model_dump(), verbose=0
    )
    callbacks = keras.callbacks.CallbackList([stopper], model=model)
    history: History = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    model.stop_training = False  # set by EarlyStopping, as in fit()
    callbacks.on_train_begin()
    for epoch in range(cfg.epochs):
        start, loss_sum, hits = time.perf_counter(), 0.0, 0.0
        for xb, yb, wb in data:
            batch_loss, batch_hits = step(xb, yb, wb)
            loss_sum, hits = loss_sum + float(batch_loss), hits + float(batch_hits)
        val_loss, val_acc = _evaluate(model, x_val, y_val)
        logs = {
            "loss": loss_sum / len(x_fit),
            "accuracy": hits / len(x_fit),
            "val_loss": val_loss,
            "val_accuracy": val_acc,
        }
        for key, value in logs.items():
            history[key].append(value)
        logger.info(
            "Epoch %d/%d - %.1fs - loss %.4f - accuracy %.4f - val_loss %.4f"
            " - val_accuracy %.4f",
            epoch + 1,
            cfg.epochs,
            time.perf_counter() - start,
            *logs.values(),
        )
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            logger.info(
                "Early stopping after epoch %d (best %s restored).",
                epoch + 1,
                cfg.early_stopping.monitor,
            )
            break
    callbacks.on_train_end()
    return model, history
