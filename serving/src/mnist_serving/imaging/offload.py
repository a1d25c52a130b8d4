"""Large uploads are opened and decoded in a child process, within a CPU budget.

Opening a file reads every PNG chunk or JPEG marker before its image data, and
decoding runs in Pillow's C code: neither can be interrupted, so both happen in
a child that the kernel stops at DECODE_CPU_SECONDS (a 422), never on the event
loop (`mnist_serving.core.decode_process`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mnist_serving.core.config import Settings
from mnist_serving.core.workers import ImageWorkers
from mnist_serving.imaging.decode import WORK_SIDE, check_bytes, decode_gray


async def decode_in_child(
    workers: ImageWorkers,
    data: bytes,
    settings: Settings,
    max_aspect: int,
    work_side: int | Callable[[int, int], int] = WORK_SIDE,
) -> tuple[np.ndarray, tuple[int, int]]:
    """`decode_gray` of an upload: its reduced gray pixels and (width, height).

    The checks that need only the bytes run here first, so that what they
    refuse costs no child.
    """
    check_bytes(data, settings.max_image_pixels)
    return await workers.isolated(
        decode_gray,
        data,
        settings.max_image_pixels,
        max_aspect,
        work_side,
        cpu_seconds=settings.decode_cpu_seconds,
        what="image",
    )
