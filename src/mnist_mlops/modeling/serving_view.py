"""Images as serving sees them: the one module of training that imports serving.

Training evaluates drawn digits, and learns from some, through the serving
package's own preprocessing (bytes -> 28x28), so a difference between how MNIST
was made and how serving prepares an upload shows up in the figures and in
training instead of in production. The import is made on first use, so that the
pipelines still load where only the steps that do not render drawn digits run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from mnist_mlops.errors import MissingDependencyError

from .drawn import fine_skeletons, render_skeletons

# Serving's default `max_image_pixels`; the drawn digits are far below it.
MAX_PIXELS = 16_777_216


@cache
def _preprocess() -> Callable[[bytes, int], np.ndarray]:
    try:
        from mnist_serving.imaging.preprocess import preprocess  # noqa: PLC0415
    except ImportError as exc:
        raise _missing(
            exc, "the drawn test set goes through serving's own preprocessing"
        ) from exc
    return preprocess


def _missing(exc: ImportError, why: str) -> MissingDependencyError:
    """The advice for a failed import of serving: which module, why, and the fix."""
    if exc.name and not exc.name.startswith("mnist_serving"):
        # Serving is there, but one of its modules imports a server dependency
        # that the training image leaves out (it installs serving with --no-deps).
        return MissingDependencyError(
            f"The serving package 'mnist_serving' needs {exc.name!r}, which is not "
            f"installed: {why}. Training imports only serving's modules that need "
            "NumPy, Pillow and pydantic; install the full serving package with "
            "`pip install -e ./serving` if you import more."
        )
    return MissingDependencyError(
        f"The serving package 'mnist_serving' is not installed: {why}. Install it "
        "into this environment with `pip install --no-deps -e ./serving` "
        "(`make install` does), which needs only NumPy, Pillow and pydantic."
    )


def serving_input(image: bytes) -> np.ndarray:
    """PNG or JPEG bytes to the (28, 28, 1) float32 array serving feeds the model."""
    return _preprocess()(image, MAX_PIXELS)[..., np.newaxis]


def drawn_inputs(images: np.ndarray, seed: int) -> np.ndarray:
    """Digits drawn anew (as `drawn.render` draws them) and read back as serving
    reads uploads.

    (N, 28, 28, 1) float32, the same for a seed: what the model gets when people
    draw or scan these digits.
    """
    return skeleton_inputs(fine_skeletons(images), seed)


def skeleton_inputs(skeletons: np.ndarray, seed: int) -> np.ndarray:
    """Skeletons (`drawn.fine_skeletons`) drawn and read back as serving reads them.

    (N, 28, 28, 1) float32, the same for a seed; for digits whose strokes were
    changed before drawing (`mnist_mlops.modeling.variants`).
    """
    if not len(skeletons):
        return np.zeros((0, 28, 28, 1), np.float32)
    drawn = render_skeletons(skeletons, seed)
    return np.stack([serving_input(image) for image in drawn])


@cache
def _reference() -> ModuleType:
    _preprocess()  # the same import, with the same advice when it is missing
    from mnist_serving.monitoring import reference  # noqa: PLC0415

    return reference


def drift_reference(
    images: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    review_thresholds: tuple[float, float],
) -> dict[str, Any]:
    """The card's drift reference of (N, 28, 28, 1) images in [0, 1].

    The images go through serving's preprocessing as the bytes a scanner would
    send (0-255 gray), `predict` gives the model's (N, 10) probabilities of the
    result, and serving's own code buckets the features it will monitor.
    """
    reference = _reference()
    reference.require_images(len(images))
    grays = np.rint(images[..., 0] * 255.0)
    fields, features = reference.served_features(grays)
    probabilities = predict(fields[..., np.newaxis])
    found = reference.reference_of(features, probabilities, review_thresholds)
    return found.model_dump(mode="json")


def litert_predictor(model_bytes: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """A function from (N, 28, 28[, 1]) images to the model's own outputs.

    (N, 10) digit probabilities, or (N, 11) with "not one digit" (see
    `mnist_serving.model.card`), as the number reader takes them. One LiteRT
    interpreter serves every call, resized to each call's batch, as serving's
    runtime does; for many calls of varying size, such as one per number.
    """
    interpreter = Interpreter(model_content=model_bytes)
    entry = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]

    def predict(images: np.ndarray) -> np.ndarray:
        batch = images.reshape(-1, 28, 28, 1).astype(np.float32)
        interpreter.resize_tensor_input(entry, list(batch.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(entry, batch)
        interpreter.invoke()
        return interpreter.get_tensor(output).copy()

    return predict


@cache
def _read_number_image() -> tuple[
    Callable[..., Any], Callable[..., str], Callable[..., Any], type[Exception]
]:
    try:
        from mnist_serving.core.errors import ServingError  # noqa: PLC0415
        from mnist_serving.model.number_reader import (  # noqa: PLC0415
            read_number_image,
        )
        from mnist_serving.model.review import (  # noqa: PLC0415
            Thresholds,
            number_review,
        )
    except ImportError as exc:
        raise _missing(
            exc, "the number test set is read by serving's own number reader"
        ) from exc
    return read_number_image, number_review, Thresholds, ServingError


def number_reader(
    model_bytes: bytes, max_digits: int, thresholds: tuple[float, float]
) -> Callable[[bytes], tuple[str, str] | None]:
    """A function from PNG or JPEG bytes of a number to the digits serving reads
    and the review band it routes them to, with `thresholds` (auto-approve,
    secondary) as its REVIEW_AUTO_APPROVE and REVIEW_SECONDARY.

    It reads exactly as POST /predict-number does (decode, segment, one batched
    call of the LiteRT model per look at a number), with one interpreter for
    all numbers.
    None where serving would refuse the image (its 4xx).
    """
    read_number_image, number_review, bands, refused = _read_number_image()
    predict = litert_predictor(model_bytes)
    limits = bands(*thresholds)

    def read(image: bytes) -> tuple[str, str] | None:
        try:
            reading = read_number_image(image, predict, max_digits, MAX_PIXELS)
        except refused:
            return None
        return reading.number, number_review(reading.confidence, reading.doubts, limits)

    return read


@cache
def _segmenter() -> tuple[Callable[..., Any], Callable[..., Any], type[Exception]]:
    _preprocess()  # the same import, with the same advice when it is missing
    from mnist_serving.core.errors import ServingError  # noqa: PLC0415
    from mnist_serving.imaging.preprocess import grays_to_mnist  # noqa: PLC0415
    from mnist_serving.imaging.segment import segment_gray  # noqa: PLC0415

    return segment_gray, grays_to_mnist, ServingError


def segment_number(
    number: np.ndarray, max_digits: int = 20
) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    """Serving's candidate crops of a (H, W) uint8 white-on-black number image.

    The image is segmented as POST /predict-number segments it, written dark on
    white. Returns the `Segmentation` (None where serving would refuse the
    image) and a function from candidate indices to those crops' (n, 28, 28)
    model inputs, prepared as serving prepares them.
    """
    segment_gray, grays_to_mnist, refused = _segmenter()
    gray = 255.0 - number.astype(np.float32)
    try:
        seg = segment_gray(gray, (number.shape[1], number.shape[0]), max_digits)
    except refused:
        return None, lambda _: np.zeros((0, 28, 28), np.float32)

    def crops(indices: np.ndarray) -> np.ndarray:
        if len(indices) == 0:
            return np.zeros((0, 28, 28), np.float32)
        return grays_to_mnist(seg.crops[indices])

    return seg, crops
