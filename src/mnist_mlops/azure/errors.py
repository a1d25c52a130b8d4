"""Errors of the Azure path, in the project's exception hierarchy."""

from mnist_mlops.errors import MnistMlopsError


class BlobStorageError(MnistMlopsError):
    """A Blob container the catalog uses cannot be reached or used."""


class AzureSetupError(MnistMlopsError):
    """The Azure configuration (conf/<env>, environment variables) is incomplete."""
