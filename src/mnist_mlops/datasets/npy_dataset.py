"""NumPy `.npy` array dataset (kedro-datasets has none), local or on fsspec."""

from __future__ import annotations

import io
from typing import IO

import numpy as np

from ._base import AtomicFileDataset


class NpyDataset(AtomicFileDataset[np.ndarray]):
    """One NumPy array as `.npy`; pickled objects are refused on load.

    Example catalog entry::

        x_train:
          type: mnist_mlops.datasets.NpyDataset
          filepath: data/05_model_input/x_train.npy
    """

    def _decode(self, raw: bytes) -> np.ndarray:
        return np.load(io.BytesIO(raw), allow_pickle=False)

    def _encode(self, data: np.ndarray, fh: IO[bytes]) -> None:
        self._check_type(data, np.ndarray)
        np.save(fh, data, allow_pickle=False)
