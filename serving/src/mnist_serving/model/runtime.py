"""The LiteRT digit model and loading it with an integrity check against its card."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from mnist_serving.core.errors import ModelLoadError
from mnist_serving.model.card import (
    INPUT_SHAPE,
    CardError,
    ModelCard,
    digit_probabilities,
    output_width,
    parse_card,
)
from mnist_serving.model.location import ModelLocation

log = logging.getLogger(__name__)


# Images the batch interpreter runs at once (the default MAX_BATCH_IMAGES).
CHUNK = 256


@dataclass
class DigitModel:
    """A verified LiteRT model with two interpreters: one image, and batches.

    An interpreter is not thread-safe, so each has its own lock. Single images
    run inline on the event loop (~0.1 ms); batches run in a worker thread
    (LiteRT releases the GIL while it computes), so a big batch does not stall
    other requests.
    """

    content: bytes = field(repr=False)
    card: ModelCard
    version: str
    source: str
    sha256: str
    batch_threads: int = 1
    loaded_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self._single_lock = threading.Lock()
        self._batch_lock = threading.Lock()
        self._single = self._interpreter(threads=1)
        self._batch = self._interpreter(threads=self.batch_threads)
        self._batch_size = 0
        self._in = self._single.get_input_details()[0]["index"]
        self._out = self._single.get_output_details()[0]["index"]
        self._check()

    def _interpreter(self, threads: int) -> Interpreter:
        interpreter = Interpreter(model_content=self.content, num_threads=threads)
        interpreter.allocate_tensors()
        return interpreter

    def _check(self) -> None:
        """Fail now, not on the first request, if the model has the wrong shape.

        Input and output must be float32: a dynamic-range quantised export (int8
        weights) keeps them so; a fully integer one would need (de)quantising.
        """
        details = self._single.get_input_details()[0]
        if tuple(details["shape"][1:]) != INPUT_SHAPE or details["dtype"] != np.float32:
            msg = (
                f"model input is {details['shape']} {details['dtype']}, "
                "expected [N, 28, 28, 1] float32"
            )
            raise ModelLoadError(msg)
        output = self._single.get_output_details()[0]
        if output["dtype"] != np.float32:
            msg = (
                f"model output is {output['dtype'].__name__}, expected float32 "
                "probabilities; export without full-integer quantisation "
                "(training.export.quantization: dynamic_range or none)"
            )
            raise ModelLoadError(msg)
        outputs = self.predict_outputs(np.zeros((1, 28, 28), dtype=np.float32))
        width = output_width(self.card)
        if outputs.shape != (1, width):
            msg = (
                f"model output has shape {outputs.shape}, but its card says (N, "
                f"{width}) (not_a_digit_output: {self.card.not_a_digit_output}); "
                "re-export the model and its card together"
            )
            raise ModelLoadError(msg)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] -> (N, 10) digit probabilities, one call."""
        return digit_probabilities(self.predict_outputs(images))

    def predict_outputs(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) -> the model's own (N, 10) or (N, 11) outputs, in one call.

        The 11th, where the card declares it, is "not one digit" (NOT_A_DIGIT).
        The batch interpreter runs at most CHUNK images at a time: its tensors
        grow with the batch (about 0.1 MB an image) and stay allocated, so a
        number's hundreds of candidate crops must not size them.
        """
        batch = images.reshape(-1, *INPUT_SHAPE).astype(np.float32, copy=False)
        if len(batch) == 1:
            with self._single_lock:
                return self._run(self._single, batch)
        with self._batch_lock:
            return np.concatenate(
                [
                    self._run_batch(batch[start : start + CHUNK])
                    for start in range(0, len(batch), CHUNK)
                ]
            )

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self._batch_size:
            self._batch.resize_tensor_input(self._in, batch.shape)
            self._batch.allocate_tensors()
            self._batch_size = len(batch)
        return self._run(self._batch, batch)

    def _run(self, interpreter: Interpreter, batch: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(self._in, batch)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(self._out))

    def info(self) -> dict[str, Any]:
        """The card plus where and when this version was loaded."""
        return {
            **self.card.model_dump(mode="json", exclude_unset=True),
            "model_version": self.version,
            "source": self.source,
            "sha256_verified": True,
            "loaded_at": self.loaded_at,
        }


def read_card(location: ModelLocation) -> ModelCard:
    """The location's card, read and validated; ModelLoadError says what failed."""
    try:
        raw = location.store.read_bytes(location.card_path)
    except OSError as exc:
        msg = f"cannot read model card {location.card_uri}: {exc}"
        raise ModelLoadError(msg) from exc
    try:
        return parse_card(raw, location.card_uri)
    except CardError as exc:
        raise ModelLoadError(str(exc)) from exc


def load_model(location: ModelLocation, batch_threads: int = 1) -> DigitModel:
    """Read, verify (sha256 against the card) and open one model version."""
    card = read_card(location)
    try:
        content = location.store.read_bytes(location.model_path)
    except OSError as exc:
        msg = f"cannot read model {location.model_uri}: {exc}"
        raise ModelLoadError(msg) from exc
    digest = hashlib.sha256(content).hexdigest()
    if digest != card.model_sha256:
        msg = (
            f"model {location.model_uri} has sha256 {digest}, but its card "
            f"{location.card_uri} records {card.model_sha256}; the model was altered "
            "or the files are from different runs: re-export with `kedro run` and "
            "deploy the model and card together"
        )
        raise ModelLoadError(msg)
    version = location.version or card.version
    if location.version and card.version != location.version:
        msg = (
            f"card {location.card_uri} is for version {card.version}, not "
            f"{location.version}; re-export the model"
        )
        raise ModelLoadError(msg)
    try:
        return DigitModel(
            content=content,
            card=card,
            version=version,
            source=location.model_uri,
            sha256=digest,
            batch_threads=batch_threads,
        )
    except (ValueError, RuntimeError) as exc:
        msg = f"model {location.model_uri} cannot be opened by LiteRT: {exc}"
        raise ModelLoadError(msg) from exc
