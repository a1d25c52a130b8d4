"""training: train the CNN, evaluate it, export LiteRT and check parity."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
