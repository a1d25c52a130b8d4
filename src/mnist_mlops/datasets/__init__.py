"""Datasets that kedro-datasets lacks: atomic writes, the raw and packaged MNIST."""

from .bytes_dataset import BytesDataset
from .champion import ChampionModelDataset, ChampionReleaseDataset
from .feedback_store import FeedbackStoreDataset
from .json_dataset import JsonDataset
from .mnist_csv import MnistCSVDataset
from .npy_dataset import NpyDataset
from .packaged_mnist import PackagedMnistCSVDataset

__all__ = [
    "BytesDataset",
    "ChampionModelDataset",
    "ChampionReleaseDataset",
    "FeedbackStoreDataset",
    "JsonDataset",
    "MnistCSVDataset",
    "NpyDataset",
    "PackagedMnistCSVDataset",
]
