"""Read model files from local disk or, through fsspec (adlfs), from Blob storage."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any, Protocol

from mnist_serving.core.errors import ModelLoadError

REMOTE_SCHEMES = ("abfs://", "abfss://", "az://", "memory://")


class Store(Protocol):
    """The few file operations that locating and loading a model needs.

    Paths are the store's own; `describe` writes one as a user would type it.
    """

    def isdir(self, path: str) -> bool: ...
    def isfile(self, path: str) -> bool: ...
    def listdir(self, path: str) -> list[str]: ...
    def read_bytes(self, path: str) -> bytes: ...
    def join(self, *parts: str) -> str: ...
    def parent(self, path: str) -> str: ...
    def name(self, path: str) -> str: ...
    def describe(self, path: str) -> str: ...


class LocalStore:
    """Files on the local disk."""

    def isdir(self, path: str) -> bool:
        """True for an existing folder."""
        return Path(path).is_dir()

    def isfile(self, path: str) -> bool:
        """True for an existing file."""
        return Path(path).is_file()

    def listdir(self, path: str) -> list[str]:
        """Names of the entries of a folder."""
        return [child.name for child in Path(path).iterdir()]

    def read_bytes(self, path: str) -> bytes:
        """The whole file."""
        return Path(path).read_bytes()

    def join(self, *parts: str) -> str:
        """Join path parts."""
        return str(Path(*parts))

    def parent(self, path: str) -> str:
        """The folder holding `path`."""
        return str(Path(path).parent)

    def name(self, path: str) -> str:
        """The last part of `path`."""
        return Path(path).name

    def describe(self, path: str) -> str:
        """The local path itself."""
        return path


class FsspecStore:
    """Files behind an fsspec filesystem (adlfs for abfs://)."""

    def __init__(self, fs: Any, scheme: str) -> None:
        self.fs = fs
        self.scheme = scheme

    def isdir(self, path: str) -> bool:
        """True for an existing folder."""
        return bool(self.fs.isdir(path))

    def isfile(self, path: str) -> bool:
        """True for an existing file."""
        return bool(self.fs.isfile(path))

    def listdir(self, path: str) -> list[str]:
        """Names of the entries of a folder."""
        entries = self.fs.ls(path, detail=False)
        return [posixpath.basename(str(entry).rstrip("/")) for entry in entries]

    def read_bytes(self, path: str) -> bytes:
        """The whole file."""
        return bytes(self.fs.cat_file(path))

    def join(self, *parts: str) -> str:
        """Join path parts."""
        return posixpath.join(*parts)

    def parent(self, path: str) -> str:
        """The folder holding `path`."""
        return posixpath.dirname(path.rstrip("/"))

    def name(self, path: str) -> str:
        """The last part of `path`."""
        return posixpath.basename(path.rstrip("/"))

    def describe(self, path: str) -> str:
        """`path` with its scheme."""
        return f"{self.scheme}://{path.lstrip('/')}"


def is_remote(uri: str) -> bool:
    """True for URLs that need fsspec."""
    return uri.startswith(REMOTE_SCHEMES)


def open_store(uri: str, account_name: str | None = None) -> tuple[Store, str]:
    """The store for `uri` and the path inside it."""
    if uri.startswith("file://"):
        return LocalStore(), uri.removeprefix("file://")
    if not is_remote(uri):
        return LocalStore(), uri
    try:
        import fsspec  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        msg = (
            f"model location {uri} is in Blob storage, which needs the azure extra: "
            "pip install 'mnist-serving[azure]'"
        )
        raise ModelLoadError(msg) from exc
    scheme = uri.split("://", 1)[0]
    # A fresh filesystem each time: fsspec would hand back the cached instance,
    # whose cached listings hide versions uploaded since (a reload would keep
    # serving the old model). Locating happens at start and on reloads only.
    options: dict[str, Any] = {"skip_instance_cache": True}
    if scheme in ("abfs", "abfss", "az"):
        options["anon"] = False  # use DefaultAzureCredential (workload identity)
        if account_name:
            options["account_name"] = account_name
    try:
        fs, path = fsspec.core.url_to_fs(uri, **options)
    except (ImportError, ValueError) as exc:
        msg = f"cannot open model location {uri}: {exc}"
        raise ModelLoadError(msg) from exc
    return FsspecStore(fs, scheme), path
