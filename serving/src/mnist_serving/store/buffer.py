"""The feedback store as the service uses it: writes batched off the request path.

`record` only appends to an in-memory, bounded queue on the event loop; a
background task writes the queue every FEEDBACK_FLUSH_SECONDS in one
executemany, in a worker thread. While the database is down the records wait
(and are retried with back-off) until the queue is full; records beyond that
are counted as lost. Predictions never wait for the store.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio.to_thread
import numpy as np
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from mnist_serving.core.config import SSL_MODES, Settings
from mnist_serving.core.errors import (
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
)
from mnist_serving.core.metrics import (
    FEEDBACK_LABELS,
    FEEDBACK_LOST,
    FEEDBACK_PURGED,
    FEEDBACK_QUEUE,
    FEEDBACK_STORE_UP,
    FEEDBACK_WRITTEN,
)
from mnist_serving.store import queries
from mnist_serving.store.migrate import upgrade

log = logging.getLogger(__name__)
StoreState = Literal["off", "starting", "ok", "unavailable"]
MAX_BACKOFF_SECONDS = 10.0
STOP_FLUSH_SECONDS = 5.0
T = TypeVar("T")
LOSS_LOG_SECONDS = 10.0
SOCKET_TIMEOUT_SECONDS = 15  # a connect or a statement; then the store is down
# What a database that is down, unreachable or refusing raises: the driver's
# errors wrapped by SQLAlchemy, and socket or TLS errors it may let through.
STORE_ERRORS = (SQLAlchemyError, OSError)
SQLITE_BUSY_SECONDS = 10
# An unknown id is looked up again this many flush intervals later: one for
# another replica's next write, half of one for the write itself.
REPLICA_WAIT_INTERVALS = 1.5
UNAVAILABLE = (
    "the feedback store cannot be reached, so the label was not recorded; "
    "retry later (GET /health shows the store's state)"
)


def _reason(exc: Exception) -> str:
    """The driver's own message (no SQL, no parameters), shortened for the log."""
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {str(cause).strip()}"[:300]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """An engine for SQLite (WAL, busy timeout, parent folder made) or PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False},
        )
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _: Any) -> None:
            # Readers (the training project) do not block the service's writes.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        return engine
    target, tls = postgres_url(url)
    return create_engine(
        target,
        pool_pre_ping=True,  # a restarted server's stale connections are replaced
        connect_args={"timeout": SOCKET_TIMEOUT_SECONDS, "ssl_context": tls},
    )


def postgres_url(url: str) -> tuple[URL, ssl.SSLContext | None]:
    """The pg8000 URL of a postgresql:// URL, and the TLS its `sslmode` asks for.

    pg8000 takes an SSL context rather than libpq's `sslmode`: `disable` (or
    none given) is plain TCP, `require` encrypts without checking the
    certificate, `verify-ca` checks it against the system's CAs, `verify-full`
    the host name too (what a managed PostgreSQL such as Azure's wants).
    """
    parsed = make_url(url).set(drivername="postgresql+pg8000")
    mode = parsed.query.get("sslmode", "disable")
    parsed = parsed.difference_update_query(["sslmode"])
    if mode == "disable":
        return parsed, None
    if mode not in SSL_MODES:
        msg = (
            f"DATABASE_URL has sslmode={mode!r}; use one of {', '.join(SSL_MODES)} "
            "(or none, for plain TCP)"
        )
        raise ArgumentError(msg)
    context = ssl.create_default_context()
    if mode != "verify-full":
        context.check_hostname = False
    if mode == "require":
        context.verify_mode = ssl.CERT_NONE
    return parsed, context


class FeedbackStore:
    """Prediction records queued for the database, labels and the review queue."""

    def __init__(
        self, settings: Settings, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.url = settings.store_url
        self.clock = clock
        self.all_inputs = settings.feedback_store_inputs == "all"
        self.retention = timedelta(days=settings.feedback_retention_days)
        self.queue_size = settings.feedback_queue_size
        self.flush_seconds = settings.feedback_flush_seconds
        self.purge_seconds = settings.feedback_purge_seconds
        self.state: StoreState = "off" if self.url is None else "starting"
        self.engine: Engine | None = None
        self.lost = 0
        self._loss_logged = -LOSS_LOG_SECONDS
        self._migrated = False
        self._migration: asyncio.Future[None] | None = None
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def oldest(self) -> datetime:
        """Records created before this are expired."""
        return self.clock() - self.retention

    async def start(self) -> None:
        """Start the flush loop (which first migrates the schema) and the purge loop.

        Nothing here waits for the database: one that is slow or down delays
        neither the start nor predictions; the store is `starting`, then `ok`
        or `unavailable`, and the flush loop keeps trying.
        """
        if self.url is None:
            return
        try:
            self.engine = make_engine(self.url)
        except STORE_ERRORS as exc:  # e.g. a read-only folder
            self._down("open", exc)
            return
        self._tasks = [
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._purge_loop()),
        ]

    async def stop(self) -> None:
        """Stop the loops and write what is queued (a clean shutdown loses nothing).

        The last write gets STOP_FLUSH_SECONDS: a database that hangs must not
        hold the pod past its termination grace period.
        """
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        if self.engine is None:
            return
        written = False
        with suppress(TimeoutError):
            written = await asyncio.wait_for(self.flush(), STOP_FLUSH_SECONDS)
        if self._pending and not written:
            self._lose(len(self._pending), "the store is down at shutdown")
            self._pending.clear()
        await self._in_thread(self.engine.dispose)

    def record(  # noqa: PLR0913 - what a record holds
        self,
        request_id: str,
        client_id: str | None,
        model_version: str,
        images: np.ndarray,
        results: Sequence[dict[str, Any]],
        *,
        batch: bool,
    ) -> None:
        """Queue one record per prediction; never blocks, never raises.

        Runs on the event loop, so it only builds dicts; the input's bytes and
        the JSON are made in the writing thread.
        """
        if self.url is None:
            return
        now = self.clock()
        for index, (image, result) in enumerate(zip(images, results, strict=True)):
            if len(self._pending) >= self.queue_size:
                self._lose(len(results) - index, "the queue is full")
                break
            key = f"{request_id}:{index}" if batch else request_id
            keep = self.all_inputs or result["review"] != "auto_approved"
            self._pending.setdefault(
                key,
                {
                    "request_id": key,
                    "created_at": now,
                    "model_version": model_version,
                    "client_id": client_id,
                    "digit": result["digit"],
                    "confidence": result["confidence"],
                    "probabilities": result["probabilities"],
                    "review": result["review"],
                    "input": image if keep else None,
                },
            )
        FEEDBACK_QUEUE.set(len(self._pending))

    async def flush(self) -> bool:
        """Write every queued record; False (and kept queued) when the store is down."""
        async with self._lock:
            if not await self._ensure_schema():
                return False
            if not self._pending:
                return True
            batch = list(self._pending.values())
            try:
                await self._in_thread(queries.insert_records, self.engine, batch)
            except STORE_ERRORS as exc:
                self._down("write", exc)
                return False
            for record in batch:
                self._pending.pop(record["request_id"], None)
            FEEDBACK_WRITTEN.inc(len(batch))
            FEEDBACK_QUEUE.set(len(self._pending))
            self._up()
            return True

    async def label(
        self, request_id: str, label: int, labelled_by: str | None
    ) -> queries.LabelOutcome:
        """Record the true digit of a prediction: 404 unknown, 409 conflicting."""
        self._require()
        if not await self.flush():  # the schema, and this id if still queued
            raise StoreUnavailableError(UNAVAILABLE)
        outcome = await self._record_label(request_id, label, labelled_by)
        if outcome.status == "unknown":
            # Behind a load balancer the prediction may have been made by another
            # replica, which writes it within one flush interval: look once more.
            await asyncio.sleep(self.flush_seconds * REPLICA_WAIT_INTERVALS)
            outcome = await self._record_label(request_id, label, labelled_by)
        if outcome.status == "unknown":
            days = f"{self.retention.total_seconds() / 86400:g}"
            raise NotFoundError(
                f"no prediction with request id {request_id!r} in the last {days} "
                "days; send the request_id (or X-Request-ID) its prediction answered, "
                "`<request_id>:<index>` for an image of a batch"
            )
        if outcome.status == "conflict":
            raise ConflictError(
                f"prediction {request_id!r} already has the label {outcome.label}, "
                f"not {label}; the first label is kept"
            )
        if outcome.status == "recorded":
            correct = "correct" if outcome.digit == label else "wrong"
            FEEDBACK_LABELS.labels(outcome.model_version, correct).inc()
        return outcome

    async def _record_label(
        self, request_id: str, label: int, labelled_by: str | None
    ) -> queries.LabelOutcome:
        engine = self._require()
        try:
            write = partial(
                queries.record_label,
                labelled_by=labelled_by,
                now=self.clock(),
                oldest=self.oldest,
            )
            return await self._in_thread(write, engine, request_id, label)
        except STORE_ERRORS as exc:
            self._down("label", exc)
            raise StoreUnavailableError(UNAVAILABLE) from exc

    async def pending_review(self, limit: int) -> dict[str, Any]:
        """The oldest predictions waiting for a reviewer, and how many wait."""
        engine = self._require()
        if not await self.flush():
            raise StoreUnavailableError(
                "the feedback store cannot be reached; retry later"
            )
        try:
            return await self._in_thread(
                queries.pending_review, engine, self.oldest, limit
            )
        except STORE_ERRORS as exc:
            self._down("review", exc)
            raise StoreUnavailableError(
                "the feedback store cannot be reached; retry later"
            ) from exc

    async def purge(self) -> int:
        """Delete the expired records; how many went (0 when the store is down)."""
        async with self._lock:
            if not await self._ensure_schema():
                return 0
        try:
            count = await self._in_thread(queries.purge, self.engine, self.oldest)
        except STORE_ERRORS as exc:
            self._down("purge", exc)
            return 0
        FEEDBACK_PURGED.inc(count)
        if count:
            log.info(
                "purged %d expired prediction records",
                count,
                extra={"event": "feedback_purged"},
            )
        return count

    @staticmethod
    async def _in_thread(function: Callable[..., T], *args: Any) -> T:
        """Run blocking database work in a worker thread, abandoned if cancelled.

        A cancelled wait (shutdown) leaves the thread to finish or time out on
        its own; a batch written that way again is skipped by its primary key.
        """
        return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True)

    def _require(self) -> Engine:
        if self.engine is None:
            raise StoreUnavailableError(
                "the feedback store is off (DATABASE_URL=none); set DATABASE_URL "
                "to a SQLite or PostgreSQL URL to record feedback"
            )
        return self.engine

    async def _ensure_schema(self) -> bool:
        """Migrate once (callers hold the lock); False while the store is down.

        The migration is one task that outlives a cancelled caller, so that a
        shutdown never starts a second one while the first still runs.
        """
        if self._migrated:
            return True
        if self.engine is None:
            return False
        if self._migration is None or self._migration.done():
            self._migration = asyncio.ensure_future(
                anyio.to_thread.run_sync(upgrade, self.engine)
            )
        try:
            await asyncio.shield(self._migration)
        except STORE_ERRORS as exc:
            self._down("migrate", exc)
            return False
        self._migrated = True
        self._up()
        return True

    async def _flush_loop(self) -> None:
        delay = self.flush_seconds
        while True:
            if await self.flush():
                delay = self.flush_seconds
            else:
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            await asyncio.sleep(delay)

    async def _purge_loop(self) -> None:
        while True:
            await self.purge()
            await asyncio.sleep(self.purge_seconds)

    def _lose(self, count: int, why: str) -> None:
        """Count lost records; log at most every LOSS_LOG_SECONDS (not per record)."""
        self.lost += count
        FEEDBACK_LOST.inc(count)
        now = time.monotonic()
        if now - self._loss_logged >= LOSS_LOG_SECONDS:
            self._loss_logged = now
            log.warning(
                "prediction records not stored: %s (%d lost since start)",
                why,
                self.lost,
                extra={"event": "feedback_records_lost"},
            )

    def _up(self) -> None:
        if self.state != "ok":
            log.info("feedback store available", extra={"event": "feedback_store_up"})
        self.state = "ok"
        FEEDBACK_STORE_UP.set(1)

    def _down(self, action: str, exc: Exception) -> None:
        if self.state != "unavailable":
            log.error(
                "feedback store unavailable (%s failed: %s); predictions go on, "
                "records wait in the queue; check DATABASE_URL and the database",
                action,
                _reason(exc),
                extra={"event": "feedback_store_down"},
            )
        self.state = "unavailable"
        FEEDBACK_STORE_UP.set(0)
