"""Base of our file datasets: fsspec paths, Kedro versioning, atomic writes."""

from __future__ import annotations

import os
import tempfile
from abc import abstractmethod
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import IO, Any, Generic, TypeVar

import fsspec
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_protocol_and_path,
)

T = TypeVar("T")


def atomic_write(
    path: str, write: Callable[[str], None], *, exclusive: bool = False
) -> None:
    """Call `write(tmp)` on a temporary sibling of `path`, then rename it into place.

    The rename is atomic on POSIX: readers see the old file or the whole new one,
    and a process killed mid-write leaves only a hidden `.tmp-*` file behind.
    With `exclusive`, the file is hard-linked into place instead, which raises
    FileExistsError if `path` exists: a create-if-absent that no reader can see
    half-written (fsspec's local `mode="create"` checks, then writes).
    """
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-", suffix=".part")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
    try:
        write(tmp)
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class AtomicFileDataset(AbstractVersionedDataset[T, T], Generic[T]):
    """A versioned dataset of one file whose writes are all-or-nothing.

    Local files are written to a temporary sibling and renamed into place
    (atomic on POSIX), so a run killed mid-write leaves the previous file intact.
    Object stores (abfs, s3, gcs) commit a blob only when its upload completes,
    so a direct write is already all-or-nothing there.
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset for `filepath`, a local path or an fsspec URL."""
        self._protocol, path = get_protocol_and_path(filepath)
        fs_args = dict(fs_args or {})
        if self._protocol == "file":
            fs_args.setdefault("auto_mkdir", True)
        self._fs = fsspec.filesystem(self._protocol, **(credentials or {}), **fs_args)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    @abstractmethod
    def _decode(self, raw: bytes) -> T:
        """Turn the file's bytes into the object."""

    @abstractmethod
    def _encode(self, data: T, fh: IO[bytes]) -> None:
        """Write the object to an open binary file."""

    def load(self) -> T:
        """Read the file and decode it."""
        with self._fs.open(str(self._get_load_path()), mode="rb") as fh:
            return self._decode(fh.read())

    def save(self, data: T) -> None:
        """Encode and write the object; readers never see a partial file."""
        path = str(self._get_save_path())
        if self._protocol != "file":
            with self._fs.open(path, mode="wb") as fh:
                self._encode(data, fh)
        else:
            atomic_write(path, lambda tmp: self._write_file(tmp, data))
        self._fs.invalidate_cache(str(self._filepath))

    def _write_file(self, tmp: str, data: T) -> None:
        with open(tmp, "wb") as fh:
            self._encode(data, fh)

    def _check_type(self, data: object, expected: type | tuple[type, ...]) -> None:
        if not isinstance(data, expected):
            raise DatasetError(
                f"{type(self).__name__} '{self._filepath}' got {type(data).__name__}; "
                f"the node that produces it must return {expected}."
            )

    def _exists(self) -> bool:
        try:
            path = self._get_load_path()
        except DatasetError:
            return False
        return self._fs.exists(str(path))

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "protocol": self._protocol,
            "version": self._version,
        }
