"""Images as serving sees them: the one module of training that imports serving.

Training evaluates drawn digits through the serving package's own preprocessing
(bytes -> 28x28), so a difference between how MNIST was made and how serving
prepares an upload shows up in the figures instead of in production.
"""

from __future__ import annotations

import numpy as np
from mnist_serving.preprocessing import preprocess

# Serving's default `max_image_pixels`; the drawn digits are far below it.
MAX_PIXELS = 16_777_216


def serving_input(image: bytes) -> np.ndarray:
    """PNG or JPEG bytes to the (28, 28, 1) float32 array serving feeds the model."""
    return preprocess(image, MAX_PIXELS)[..., np.newaxis]
