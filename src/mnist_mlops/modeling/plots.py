"""Report figures: training curves and the confusion matrix."""

from __future__ import annotations

import matplotlib as mpl

mpl.use("Agg")  # headless: figures are only saved

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay


def training_curves(history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, training vs validation."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history[metric], marker="o", label="train")
        ax.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        ax.set(xlabel="epoch", ylabel=metric, title=metric.capitalize())
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def confusion_matrix_figure(matrix: np.ndarray, title: str) -> Figure:
    """Confusion matrix with counts; rows are true digits, columns predictions."""
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    ConfusionMatrixDisplay(matrix, display_labels=list(range(10))).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d"
    )
    ax.set_title(title)
    return fig
