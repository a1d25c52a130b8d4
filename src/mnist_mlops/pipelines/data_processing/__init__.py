"""data_processing: validate the raw MNIST table, normalise it and split it."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
