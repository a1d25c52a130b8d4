"""Worker threads for costly image work, below the event loop's CPU priority.

A large valid image (up to the pixel limit) costs a worker thread far more
decoding and resizing than a small request costs the event loop, and the GIL is
released meanwhile. On a pod's one core, an equal share of the CPU between that thread
and the event loop would halve how fast every small request is answered. These
threads run at a higher nice value (Linux keeps one per thread), so the event
loop, and the small requests it answers in microseconds, come first; the big
image still gets all the CPU they leave. anyio's shared threads are not used:
they also run the framework's own work, which must keep its priority.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)
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
    """A small pool of low-priority threads for decoding and resizing big images."""

    def __init__(self, threads: int = IMAGE_THREADS) -> None:
        """Start no thread yet: they start with the first job."""
        self._pool = ThreadPoolExecutor(
            threads, thread_name_prefix="mnist-image", initializer=lower_thread_priority
        )

    async def run(self, function: Callable[P, T], *args: P.args) -> T:
        """`function(*args)` on a worker thread, awaited without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(function, *args))

    def close(self) -> None:
        """Stop the threads once their jobs end; queued jobs are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)
