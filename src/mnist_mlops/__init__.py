"""mnist-mlops: handwritten-digit recognition from the MNIST CSV to a LiteRT model."""

import os

# Before TensorFlow is first imported: hide its CUDA-probe noise on CPU machines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
