"""The service's run-time state: the current model or why there is none."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mnist_serving.core.config import Settings
from mnist_serving.core.errors import ModelLoadError, ModelUnavailableError
from mnist_serving.core.metrics import MODEL_READY
from mnist_serving.model.location import locate_model
from mnist_serving.model.runtime import DigitModel, load_model

log = logging.getLogger(__name__)


@dataclass
class ModelHolder:
    """Holds the served model; a failed load or reload keeps the previous one.

    Requests read `model` once and keep that object, so replacing it (one
    reference assignment, on the event loop) never disturbs a request in flight.
    """

    model: DigitModel | None = None
    reason: str = "model not loaded yet"  # the details: log, /model-info, admin
    reason_code: str = "model_not_loaded"  # what the public probes say
    shutting_down: bool = False
    last_reload_error: str | None = None

    def load(self, settings: Settings) -> DigitModel | None:
        """Locate and load the model; on failure record the reason and log the fix."""
        try:
            model = load_model(locate_model(settings), settings.batch_threads)
        except ModelLoadError as exc:
            self.reason = str(exc)
            self.reason_code = "model_invalid"
            log.error("model not loaded: %s", exc, extra={"event": "model_load_failed"})
            MODEL_READY.set(1 if self.model else 0)
            return None
        self.model = model
        self.reason = ""
        MODEL_READY.set(1)
        log.info(
            "model %s loaded from %s (sha256 %s verified)",
            model.version,
            model.source,
            model.sha256[:12],
            extra={"event": "model_loaded", "model_version": model.version},
        )
        return model

    def swap(self, model: DigitModel) -> DigitModel | None:
        """Serve `model` from now on; returns the one it replaces."""
        previous, self.model = self.model, model
        self.reason = ""
        self.last_reload_error = None
        MODEL_READY.set(1)
        return previous

    def reload_failed(self, error: str) -> None:
        """Record a failed reload; without a model it is also why we are not ready."""
        self.last_reload_error = error
        if self.model is None:
            self.reason = error
            self.reason_code = "model_invalid"

    def ready_reason(self) -> str | None:
        """None when ready, else a short code (no paths, no error text).

        The public probes answer it; the details are in the log and /model-info.
        """
        if self.shutting_down:
            return "shutting_down"
        if self.model is None:
            return self.reason_code
        return None

    def require(self) -> DigitModel:
        """The model, or a 503 with the reason code."""
        if self.model is None:
            raise ModelUnavailableError(
                f"model not ready ({self.reason_code}); the service log says why"
            )
        return self.model
