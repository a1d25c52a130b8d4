"""The project's DataCatalog: a run loads the versions it saved, never another run's."""

from __future__ import annotations

import warnings
from typing import Any

from kedro.framework.context.catalog_mixins import CatalogCommandsMixin
from kedro.io import AbstractVersionedDataset, DataCatalog

from mnist_mlops.azure.versioning import shared_save_version

# After a save, Kedro warns when the newest version on disk is not the one just
# saved, i.e. when another run saved a newer one meanwhile. This catalog loads
# the version it saved anyway, so the warning does not apply to it.
_NEWER_VERSION_ELSEWHERE = r"Save version '.*' did not match load version"


class RunVersionedDataCatalog(DataCatalog, CatalogCommandsMixin):
    """Kedro's DataCatalog, with every versioned dataset a run saved kept to that run.

    Kedro loads the newest version of a versioned dataset, so with two runs at
    once, run A could load the `x_train` or `keras_model` that run B saved a
    moment later. Here a dataset that this run saved loads this run's save
    version; a dataset it did not save (an input of a run resumed with
    `--from-nodes`, or of `--pipeline training`) loads the newest version, as in
    Kedro. An explicit `load(name, version=...)` wins.

    Under Azure ML each step is a session of its own: when MNIST_SAVE_VERSION is
    set, every versioned dataset saves under it and loads it (this job's model,
    not whichever is newest); `--load-versions` still wins for loading.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build Kedro's catalog; no dataset saved yet."""
        self._saved_versions: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    @classmethod
    def from_config(
        cls,
        catalog: dict[str, dict[str, Any]] | None,
        credentials: dict[str, dict[str, Any]] | None = None,
        load_versions: dict[str, str] | None = None,
        save_version: str | None = None,
        validation_enabled: bool = True,
    ) -> DataCatalog:
        """Build the catalog, pinned to the Azure ML job's version when there is one."""
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

    def save(self, ds_name: str, data: Any) -> None:
        """Save; from now on, `ds_name` loads the version just saved."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _NEWER_VERSION_ELSEWHERE, UserWarning)
            super().save(ds_name, data)
        dataset = self.get(ds_name)
        if isinstance(dataset, AbstractVersionedDataset):
            self._saved_versions[ds_name] = str(dataset.resolve_save_version())

    def load(self, ds_name: str, version: str | None = None) -> Any:
        """Load `version`, else the version this run saved, else as Kedro does."""
        return super().load(ds_name, version or self._saved_versions.get(ds_name))
