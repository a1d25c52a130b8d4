"""Opaque binary file dataset, for the exported `.tflite` model."""

from __future__ import annotations

from typing import IO

from ._base import AtomicFileDataset


class BytesDataset(AtomicFileDataset[bytes]):
    """Raw bytes of one file.

    Example catalog entry::

        litert_model:
          type: mnist_mlops.datasets.BytesDataset
          filepath: data/06_models/mnist_cnn.tflite
          versioned: true
    """

    def _decode(self, raw: bytes) -> bytes:
        return raw

    def _encode(self, data: bytes, fh: IO[bytes]) -> None:
        self._check_type(data, bytes | bytearray)
        fh.write(bytes(data))
