"""Report figures: training curves and the confusion matrix.

Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so
no GUI backend is needed and importing this module changes no global state
(a notebook's inline backend keeps working).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay


def training_curves(history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, training vs validation."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history[metric], marker="o", label="train")
        ax.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        ax.set(xlabel="epoch", ylabel=metric, title=metric.capitalize())
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def confusion_matrix_figure(matrix: np.ndarray, title: str) -> Figure:
    """Confusion matrix with counts; rows are true digits, columns predictions."""
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=list(range(10))).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d"
    )
    ax.set_title(title)
    return fig
