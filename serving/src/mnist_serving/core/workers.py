"""Worker threads for costly image work, below the event loop's CPU priority.

A large valid image (up to the pixel limit) costs a worker thread far more
decoding and resizing than a small request costs the event loop, and the GIL is
released meanwhile. On a pod's one core, an equal share of the CPU between that thread
and the event loop would halve how fast every small request is answered. These
threads run at a higher nice value (Linux keeps one per thread), so the event
loop, and the small requests it answers in microseconds, come first; the big
image still gets all the CPU they leave. anyio's shared threads are not used:
they also run the framework's own work, which must keep its priority.

Decoding itself happens in a child process with a CPU-time budget
(`mnist_serving.core.decode_process`), which the worker thread waits for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ParamSpec, TypeVar

from PIL import Image

from mnist_serving.core.config import Settings
from mnist_serving.core.decode_process import DecodeProcesses

log = logging.getLogger(__name__)
INLINE_BYTES = 64 * 1024  # larger uploads are decoded off the event loop
IMAGE_THREADS = 2  # costly decodes at once; more wait their turn
# The event loop's is 0; at 10 a thread gets about a tenth of its CPU when both
# want the same core.
IMAGE_THREAD_NICE = 10

P = ParamSpec("P")
T = TypeVar("T")


def lower_thread_priority(nice: int = IMAGE_THREAD_NICE) -> None:
    """Give the calling thread (only) at least `nice`; warn where it cannot be."""
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, max(current, nice))
    except OSError as exc:  # not Linux: the threads keep the process's priority
        log.warning(
            "image worker threads keep the event loop's CPU priority: %s",
            exc,
            extra={"event": "thread_priority_unavailable"},
        )


class ImageWorkers:
    """Low-priority threads for costly image work, and the decoding processes."""

    def __init__(self, threads: int = IMAGE_THREADS) -> None:
        """Start no thread or process yet: they start with the first job."""
        self._pool = ThreadPoolExecutor(
            threads, thread_name_prefix="mnist-image", initializer=lower_thread_priority
        )
        self._processes = DecodeProcesses()

    async def run(self, function: Callable[P, T], *args: P.args) -> T:
        """`function(*args)` on a worker thread, awaited without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(function, *args))

    async def isolated(
        self, function: Callable[..., T], *args: Any, cpu_seconds: int, what: str
    ) -> T:
        """`function(*args)` in a fresh child process within `cpu_seconds` of CPU
        time, waited for on a worker thread: at most IMAGE_THREADS at once.

        See `mnist_serving.core.decode_process` for the errors it raises.
        """
        run = partial(self._processes.run, cpu_seconds=cpu_seconds, what=what)
        return await self.run(run, function, *args)

    def prepare(self) -> None:
        """Start the decoding helper process on a worker, not at startup."""
        self._pool.submit(self._start_processes)

    def _start_processes(self) -> None:
        try:
            self._processes.start()
        except OSError as exc:  # each big image then fails with the same, a 500
            log.exception(
                "the image decoding process cannot start: %s",
                exc,
                extra={"event": "decode_process_unavailable"},
            )

    def close(self) -> None:
        """Stop the threads once their jobs end (queued jobs are dropped), and the
        decoding helper."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._processes.close()


def small(data: bytes) -> bool:
    """Whether an upload is few enough bytes to open on the event loop.

    Opening reads every chunk or marker up to the image data, and a few MB of
    them cost Pillow seconds; larger uploads are opened in the child process.
    """
    return len(data) <= INLINE_BYTES


def inline(image: Image.Image, settings: Settings) -> bool:
    """Whether an opened small upload has few enough pixels to decode inline."""
    return image.width * image.height <= settings.inline_pixels
