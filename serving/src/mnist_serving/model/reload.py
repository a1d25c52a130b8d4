"""Hot reload: load a new model version in a worker thread, then swap it in.

Two triggers share one code path: POST /admin/reload and, when
MODEL_POLL_SECONDS > 0, a timer. A failed reload keeps the served model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread

from mnist_serving.core.config import Settings
from mnist_serving.core.errors import ModelLoadError, ReloadFailedError
from mnist_serving.core.metrics import RELOADS
from mnist_serving.model.holder import ModelHolder
from mnist_serving.model.location import locate_model
from mnist_serving.model.runtime import DigitModel, load_model, read_card

log = logging.getLogger(__name__)
Trigger = Literal["admin", "poll"]


@dataclass(frozen=True)
class ReloadResult:
    """What a successful reload did."""

    status: Literal["reloaded", "unchanged"]
    model_version: str
    previous_version: str | None
    sha256: str


def fetch_if_changed(
    settings: Settings, current: DigitModel | None
) -> DigitModel | None:
    """Blocking: the located model when its version or sha256 differs, else None.

    The card alone tells whether anything changed, so an unchanged poll reads
    a few hundred bytes, not the model.
    """
    location = locate_model(settings)
    if current is not None:
        card = read_card(location)
        version = location.version or card.version
        if version == current.version and card.model_sha256 == current.sha256:
            return None
    return load_model(location, settings.batch_threads)


class ModelReloader:
    """Reloads the holder's model, one reload at a time."""

    def __init__(self, holder: ModelHolder, settings: Settings) -> None:
        self.holder = holder
        self.settings = settings
        self._lock = asyncio.Lock()

    async def reload(self, trigger: Trigger) -> ReloadResult:
        """Load the newest model off the event loop and serve it if it is new.

        Raises ReloadFailedError (409) naming the reason when the new model is
        missing or does not verify; the served model stays as it was.
        """
        async with self._lock:
            current = self.holder.model
            try:
                model = await anyio.to_thread.run_sync(
                    fetch_if_changed, self.settings, current
                )
            except ModelLoadError as exc:
                detail = self._failed(trigger, str(exc), current)
                raise ReloadFailedError(detail) from exc
            except Exception as exc:
                self._failed(trigger, f"unexpected error: {exc!r}", current)
                raise
            if model is None:
                assert current is not None  # noqa: S101 - fetch loads when there is none
                self.holder.last_reload_error = None
                RELOADS.labels(trigger, "unchanged").inc()
                log.debug("model %s unchanged (%s)", current.version, trigger)
                return ReloadResult(
                    "unchanged", current.version, current.version, current.sha256
                )
            previous = self.holder.swap(model)
            old = previous.version if previous else None
            RELOADS.labels(trigger, "reloaded").inc()
            log.info(
                "model reloaded (%s): %s -> %s from %s (sha256 %s verified)",
                trigger,
                old,
                model.version,
                model.source,
                model.sha256[:12],
                extra={"event": "model_reloaded", "model_version": model.version},
            )
            return ReloadResult("reloaded", model.version, old, model.sha256)

    def _failed(self, trigger: Trigger, reason: str, current: DigitModel | None) -> str:
        """Record, count and log a failed reload; returns the client's message."""
        self.holder.reload_failed(reason)
        RELOADS.labels(trigger, "failed").inc()
        serving = (
            f"still serving model {current.version}"
            if current
            else "no model is served"
        )
        detail = f"model reload failed, {serving}: {reason}"
        log.error(
            "%s", detail, extra={"event": "model_reload_failed", "trigger": trigger}
        )
        return detail

    async def poll(self, every: float) -> None:
        """Reload every `every` seconds until cancelled; failures are only logged."""
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):  # recorded and logged by reload()
                await self.reload("poll")
