"""Datasets of the Azure path: saves by the chief worker only."""

from __future__ import annotations

import logging
from typing import Any

from kedro.io import AbstractDataset

logger = logging.getLogger(__name__)


class ChiefOnlyDataset(AbstractDataset[Any, Any]):
    """Wraps a dataset on a non-chief worker of a distributed job: loads, never saves.

    Every worker of a multi-worker step computes the same model; only the chief
    (rank 0) writes it, as kedro-azureml does for the data it passes between steps.
    """

    def __init__(self, dataset: AbstractDataset, name: str) -> None:
        """Wrap `dataset`, known in the catalog as `name`."""
        self._dataset = dataset
        self._name = name

    def load(self) -> Any:
        """Load the wrapped dataset."""
        return self._dataset.load()

    def save(self, data: Any) -> None:
        """Do not save: the chief worker saves the same data."""
        logger.info("Worker is not the chief: '%s' is saved by the chief.", self._name)

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset, "saves": "chief worker only"}
