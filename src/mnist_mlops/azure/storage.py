"""Check, before a run writes anything, that every Blob container it uses answers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from adlfs import AzureBlobFileSystem
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import ContainerClient

from .errors import BlobStorageError

BLOB_PROTOCOLS = ("abfs", "abfss", "az")
PROBE_TIMEOUT_S = 5
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class BlobTarget:
    """One container of one account, as the catalog's datasets reach it."""

    container: str
    options: tuple[tuple[str, Any], ...]  # adlfs arguments (credentials, fs_args)

    def filesystem(self) -> AzureBlobFileSystem:
        """The adlfs filesystem the datasets use (it resolves env vars the same way)."""
        return AzureBlobFileSystem(**dict(self.options))


def _blob_locations(config: Mapping[str, Any]) -> Iterator[BlobTarget]:
    """Blob targets in one dataset config, including wrapped datasets."""
    filepath = config.get("filepath")
    if isinstance(filepath, str) and urlsplit(filepath).scheme in BLOB_PROTOCOLS:
        options = {**(config.get("credentials") or {}), **(config.get("fs_args") or {})}
        container = urlsplit(filepath).netloc.split("@")[0]
        yield BlobTarget(container, tuple(sorted(options.items())))
    for value in config.values():
        if isinstance(value, Mapping):
            yield from _blob_locations(value)


def blob_targets(
    configs: Mapping[str, Mapping[str, Any]], names: Iterable[str]
) -> list[BlobTarget]:
    """The distinct Blob containers that the datasets `names` live in."""
    found = {
        target
        for name in names
        if name in configs
        for target in _blob_locations(configs[name])
    }
    return sorted(found, key=lambda t: (t.container, t.options))


def _client(fs: AzureBlobFileSystem, container: str) -> ContainerClient:
    """A synchronous client with adlfs's settings, failing fast (no retries)."""
    fast = {"retry_total": 0, "connection_timeout": PROBE_TIMEOUT_S}
    if fs.connection_string:
        return ContainerClient.from_connection_string(
            fs.connection_string, container, **fast
        )
    credential = fs.sync_credential or fs.account_key or fs.sas_token
    return ContainerClient(fs.account_url, container, credential=credential, **fast)


def _fix(host: str, account: str, container: str) -> str:
    if host in LOOPBACK:
        return (
            "Start Azurite (`.ci/node_modules/.bin/azurite-blob --blobPort 10000 "
            "--inMemoryPersistence`, after `npm ci --prefix .ci`) or set "
            "AZURITE_BLOB_PORT to the port it listens on."
        )
    return (
        f"Check AZURE_STORAGE_ACCOUNT_NAME ('{account}'), your network and the "
        f"account's firewall; `az storage container show --account-name {account} "
        f"--name {container} --auth-mode login` must succeed."
    )


def check_container(target: BlobTarget) -> None:
    """Raise BlobStorageError naming account, container and fix unless it answers."""
    fs = target.filesystem()
    client = _client(fs, target.container)
    account = client.account_name or fs.account_name
    where = (
        f"Blob container '{target.container}' of storage account '{account}' "
        f"({client.primary_endpoint})"
    )
    host = urlsplit(client.primary_endpoint).hostname or ""
    try:
        client.get_container_properties(timeout=PROBE_TIMEOUT_S)
    except ResourceNotFoundError as exc:
        raise BlobStorageError(
            f"{where} does not exist. Create it: `az storage container create "
            f"--account-name {account} --name {target.container} --auth-mode login`."
        ) from exc
    except ClientAuthenticationError as exc:
        raise BlobStorageError(
            f"{where}: sign-in failed: {exc.message}. Sign in (`az login`, or "
            "a managed identity on Azure ML) as an identity with the role "
            "'Storage Blob Data Contributor' on the account."
        ) from exc
    except ServiceRequestError as exc:
        raise BlobStorageError(
            f"{where} cannot be reached: {exc.message}. "
            + _fix(host, account, target.container)
        ) from exc
    except HttpResponseError as exc:
        raise BlobStorageError(
            f"{where} answered {exc.status_code} {exc.reason}: {exc.message}. "
            "Check that the identity may read and write blobs in it."
        ) from exc
    finally:
        client.close()
