"""`kedro azure provision`: create or update the Azure ML cluster and environment."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
from kedro.framework.project import settings
from kedro.framework.startup import ProjectMetadata, bootstrap_project

from .resources import build_cluster, build_environment, load_resources

logger = logging.getLogger(__name__)


def azureml_config(project_path: Path, env: str) -> dict[str, Any]:
    """The merged `azureml` config of conf/base + conf/<env>, as Kedro loads it."""
    bootstrap_project(project_path)
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project_path / settings.CONF_SOURCE),
        env=env,
        **settings.CONFIG_LOADER_ARGS,
    )
    return dict(loader["azureml"])


@click.group(name="mnist-mlops")
def commands() -> None:
    """Project commands of mnist-mlops."""


@commands.group(name="azure")
def azure() -> None:
    """Azure ML resources of the project (cluster, training environment)."""


@azure.command()
@click.option("-e", "--env", default="azure", show_default=True, help="Kedro env.")
@click.option(
    "--image",
    default=None,
    help="A pushed training image (e.g. myacr.azurecr.io/mnist-training:<sha>); "
    "default: Azure ML builds conf/azure/environment/Dockerfile.",
)
@click.option("--version", default=None, help="Environment version (default: next).")
@click.option("--dry-run", is_flag=True, help="Print the entities; contact nothing.")
@click.pass_obj
def provision(
    metadata: ProjectMetadata,
    env: str,
    image: str | None,
    version: str | None,
    dry_run: bool,
) -> None:
    """Create or update the compute cluster and the training environment."""
    config = azureml_config(metadata.project_path, env)
    resources = load_resources(config, env)
    cluster = build_cluster(resources.cluster)
    environment = build_environment(
        resources.environment, metadata.project_path, image, version
    )
    if dry_run:
        for entity in (cluster, environment):
            entity.dump(sys.stdout)
            click.echo("---")
        return
    apply(config["azure"], cluster, environment)


def apply(workspace: dict[str, Any], cluster: Any, environment: Any) -> None:
    """Send both entities to the workspace (needs `az login` or another identity)."""
    from azure.ai.ml import MLClient  # noqa: PLC0415 - slow import, only here
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415

    client = MLClient(
        DefaultAzureCredential(),
        subscription_id=workspace["subscription_id"],
        resource_group_name=workspace["resource_group"],
        workspace_name=workspace["workspace_name"],
    )
    made = client.compute.begin_create_or_update(cluster).result()
    click.echo(
        f"Cluster '{made.name}': {made.size}, {made.min_instances}-"
        f"{made.max_instances} nodes, provisioning {made.provisioning_state}."
    )
    if made.identity is not None and made.identity.principal_id:
        click.echo(
            f"Its managed identity (principal {made.identity.principal_id}) needs "
            "'Storage Blob Data Contributor' on the storage account."
        )
    registered = client.environments.create_or_update(environment)
    click.echo(f"Environment '{registered.name}' version {registered.version}.")
