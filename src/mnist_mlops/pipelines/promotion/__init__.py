"""`promotion`: the champion/challenger gate, run after training."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
