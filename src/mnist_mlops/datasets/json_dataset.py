"""JSON file dataset written atomically, for the model card and the reports."""

from __future__ import annotations

import json
from typing import IO, Any

from kedro.io.core import Version

from ._base import AtomicFileDataset


class JsonDataset(AtomicFileDataset[Any]):
    """One JSON document; a run killed mid-write leaves no partial file.

    kedro-datasets' `json.JSONDataset` writes in place, so a killed run could
    leave a truncated `model_card.json` in the newest version folder, which
    serving would pick. This one writes a temporary file and renames it.

    Example catalog entry::

        model_card:
          type: mnist_mlops.datasets.JsonDataset
          filepath: data/06_models/model_card.json
          versioned: true
          save_args:
            indent: 2
    """

    def __init__(  # noqa: PLR0913 - Kedro passes each catalog key as a keyword
        self,
        *,
        filepath: str,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset; `save_args` go to `json.dumps` (e.g. `indent`)."""
        super().__init__(
            filepath=filepath,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )
        self._save_args = save_args or {}

    def _decode(self, raw: bytes) -> Any:
        return json.loads(raw)

    def _encode(self, data: Any, fh: IO[bytes]) -> None:
        fh.write(json.dumps(data, **self._save_args).encode())
