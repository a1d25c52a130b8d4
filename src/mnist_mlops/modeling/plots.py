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


def drawn_examples_figure(
    images: np.ndarray, labels: np.ndarray, probs: np.ndarray, shown: int = 24
) -> Figure:
    """A few drawn-set digits as the model sees them, with prediction and confidence.

    The first images of the set, then its most confident mistakes (in red), at most
    a third of the grid, so a reader sees both what works and what does not.
    """
    predicted, confidence = probs.argmax(-1), probs.max(-1)
    wrong = np.flatnonzero(predicted != labels)
    mistakes = wrong[np.argsort(-confidence[wrong])][: shown // 3]
    right = np.flatnonzero(predicted == labels)[: shown - len(mistakes)]
    picks = np.concatenate([right, mistakes]).astype(int)
    columns = 8
    rows = max(1, -(-len(picks) // columns))
    fig = Figure(figsize=(columns * 1.3, rows * 1.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, i in zip(axes, picks, strict=False):
        ax.imshow(images[i].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        colour = "black" if predicted[i] == labels[i] else "red"
        ax.set_title(
            f"{labels[i]} → {predicted[i]} ({confidence[i]:.2f})",
            fontsize=8,
            color=colour,
        )
    fig.suptitle("Drawn test set (as serving sees it): true → predicted (confidence)")
    return fig
