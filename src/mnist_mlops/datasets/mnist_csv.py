"""The raw MNIST CSV: pandas' CSVDataset whose parse errors name the damaged line."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from kedro.io import DatasetError
from kedro_datasets.pandas import CSVDataset

from mnist_mlops.errors import RawFileError

# Every byte a text CSV may hold: printable ASCII, tab, CR and LF.
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\r\n"
_PARSE_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)


def find_damage(lines: Iterable[bytes]) -> str | None:
    """Describe the first damaged line of a CSV; None if every line looks whole.

    A line is damaged when it holds non-text bytes or has another number of
    fields than the header (MNIST CSVs are numbers, never quoted).
    """
    width = 0
    for number, line in enumerate(lines, start=1):
        if line.translate(None, _TEXT_BYTES):
            return f"line {number:,} holds binary (non-text) bytes"
        if not line.strip():
            continue
        fields = line.count(b",") + 1
        if not width:
            width = fields
        elif fields != width and not line.endswith(b"\n"):
            return (
                f"the file ends in the middle of line {number:,} ({fields} of "
                f"{width} fields): it was truncated"
            )
        elif fields != width:
            return (
                f"line {number:,} has {fields} fields but the header has {width} "
                "(a ragged row)"
            )
    return None if width else "the file is empty"


class MnistCSVDataset(CSVDataset):
    """`pandas.CSVDataset` that says which line of a damaged CSV is bad, and the fix.

    pandas and pyarrow report a damaged CSV as, for example, "Expected 785
    columns, got 324", without the line. This dataset then scans the file and
    raises RawFileError naming the file, the first damaged line and the fix.

    Example catalog entry::

        mnist_full:
          type: mnist_mlops.datasets.MnistCSVDataset
          filepath: data/01_raw/mnist_full.csv
          load_args:
            engine: pyarrow
    """

    restore_hint = "Restore it, or point the catalog entry at a good copy."

    def load(self) -> pd.DataFrame:
        """Load the CSV; a parse error becomes a RawFileError naming the bad line."""
        try:
            return super().load()
        except DatasetError as exc:
            if not isinstance(exc.__cause__, _PARSE_ERRORS):
                raise
            path = str(self._get_load_path())
            with self._fs.open(path, mode="rb") as fh:
                damage = find_damage(fh) or f"the parser says: {exc.__cause__!s:.200}"
            raise RawFileError(
                f"Raw CSV '{path}' cannot be read: {damage}. {self.restore_hint}"
            ) from exc.__cause__
