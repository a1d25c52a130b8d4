"""Datasets that kedro-datasets lacks: NumPy arrays, raw bytes, the packaged MNIST."""

from .bytes_dataset import BytesDataset
from .npy_dataset import NpyDataset
from .packaged_mnist import PackagedMnistCSVDataset

__all__ = ["BytesDataset", "NpyDataset", "PackagedMnistCSVDataset"]
