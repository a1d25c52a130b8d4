"""`feedback`: labelled predictions from the feedback store become training data."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
