"""The project's DataCatalog: one save version for every step of an Azure ML job."""

from __future__ import annotations

from typing import Any

from kedro.framework.context.catalog_mixins import CatalogCommandsMixin
from kedro.io import DataCatalog

from .versioning import shared_save_version


class JobVersionedDataCatalog(DataCatalog, CatalogCommandsMixin):
    """Kedro's DataCatalog, except that MNIST_SAVE_VERSION, when set, is the version.

    Kedro gives a catalog one save version, the session's. Under Azure ML every
    step has a session of its own, so the steps of one job would save the model,
    its export and its card under different versions. With MNIST_SAVE_VERSION
    set, every versioned dataset saves under it and loads it (this job's model,
    not whichever is newest); `--load-versions` still wins for loading.
    """

    @classmethod
    def from_config(
        cls,
        catalog: dict[str, dict[str, Any]] | None,
        credentials: dict[str, dict[str, Any]] | None = None,
        load_versions: dict[str, str] | None = None,
        save_version: str | None = None,
        validation_enabled: bool = True,
    ) -> DataCatalog:
        """Build the catalog, pinned to the job's version when there is one."""
        if version := shared_save_version():
            pinned = {
                name: version
                for name, config in (catalog or {}).items()
                if isinstance(config, dict) and config.get("versioned")
            }
            load_versions = pinned | (load_versions or {})
            save_version = version
        return super().from_config(
            catalog, credentials, load_versions, save_version, validation_enabled
        )
