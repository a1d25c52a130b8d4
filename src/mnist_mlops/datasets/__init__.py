"""Datasets that kedro-datasets lacks: arrays, raw bytes, the raw and packaged MNIST."""

from .bytes_dataset import BytesDataset
from .mnist_csv import MnistCSVDataset
from .npy_dataset import NpyDataset
from .packaged_mnist import PackagedMnistCSVDataset

__all__ = ["BytesDataset", "MnistCSVDataset", "NpyDataset", "PackagedMnistCSVDataset"]
