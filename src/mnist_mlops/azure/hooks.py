"""Azure hooks: Blob pre-flight check, one version per job, chief-only saves."""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from kedro_azureml.distributed.utils import (
    is_distributed_environment,
    is_distributed_master_node,
)

from .datasets import ChiefOnlyDataset
from .errors import AzureSetupError
from .storage import blob_targets, check_container
from .versioning import SAVE_VERSION_ENV, shared_save_version

logger = logging.getLogger(__name__)

AZURE_RUNNER = "AzurePipelinesRunner"


class AzureRunHooks:
    """Make a run on Blob and Azure ML behave like one `kedro run` on a laptop."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow wraps or uses the datasets
    def after_catalog_created(self, catalog: DataCatalog) -> None:
        """On a worker other than the chief of a distributed step, save nothing."""
        if is_distributed_environment() and not is_distributed_master_node():
            for name in list(catalog.config_resolver.config):
                catalog[name] = ChiefOnlyDataset(catalog.get(name), name)

    @hook_impl(tryfirst=True)  # before kedro-mlflow starts its run
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        """Fail before anything is written: a step without its version, Blob down."""
        if AZURE_RUNNER in str(run_params.get("runner")) and not shared_save_version():
            raise AzureSetupError(
                f"This Azure ML step has no {SAVE_VERSION_ENV}: each step would save "
                "its models under its own Kedro version and serving could not pair "
                "the model with its card. Submit with `kedro azureml run --env-var "
                f"{SAVE_VERSION_ENV}=$(python -m mnist_mlops.azure.versioning) ...`."
            )
        targets = blob_targets(catalog.config_resolver.config, pipeline.datasets())
        for target in targets:
            check_container(target)
        if targets:
            logger.info(
                "Blob containers reachable: %s.",
                ", ".join(t.container for t in targets),
            )
