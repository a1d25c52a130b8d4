"""Kedro project settings: hooks, config loader and disabled plugin hooks."""

from kedro.config import OmegaConfigLoader

from mnist_mlops.azure.hooks import AzureRunHooks
from mnist_mlops.catalog import RunVersionedDataCatalog
from mnist_mlops.config import env_or_default
from mnist_mlops.hooks import RunInfoHook
from mnist_mlops.interrupts import InterruptHook
from mnist_mlops.session_store import UniqueVersionStore
from mnist_mlops.tracking import MlflowSetupLock

HOOKS = (RunInfoHook(), AzureRunHooks(), InterruptHook(), MlflowSetupLock())

# Kedro's DataCatalog, except that a run loads the versions it saved (never those of
# a run beside it) and the steps of an Azure ML job share one save version.
DATA_CATALOG_CLASS = RunVersionedDataCatalog

# Kedro's ephemeral store, except that two runs started in the same millisecond
# still get different session ids, which are their save versions.
SESSION_STORE_CLASS = UniqueVersionStore

# kedro-azureml's hook only serves AzureMLAssetDataset entries, which this project
# does not use (Blob data goes through adlfs), and it makes a plain `kedro run`
# fail when no azureml.yml is found. kedro-telemetry must never prompt in CI.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-azureml", "kedro-telemetry")

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
        "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],
        "azureml": ["azureml*", "azureml*/**", "**/azureml*"],
    },
    # Environments override only the parameter keys they name.
    "merge_strategy": {"parameters": "soft"},
    "custom_resolvers": {"env": env_or_default},
}
