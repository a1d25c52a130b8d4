"""mnist_serving: a thin LiteRT prediction service for the MNIST digit classifier."""

__version__ = "0.1.0"
