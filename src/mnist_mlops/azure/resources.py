"""The Azure ML cluster and training environment: from conf/<env> to entities."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from azure.ai.ml.entities import (
    AmlCompute,
    BuildContext,
    Environment,
    IdentityConfiguration,
    ManagedIdentityConfiguration,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import AzureSetupError

RESOURCES_FILE = "azureml_resources.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterSpec(_Strict):
    """The `cluster` key: an Azure ML compute cluster (AmlCompute)."""

    name: str = Field(min_length=2, max_length=16)
    size: str
    min_instances: int = Field(ge=0)
    max_instances: int = Field(ge=1)
    idle_time_before_scale_down: int = Field(ge=0)
    tier: Literal["dedicated", "low_priority"] = "dedicated"
    identity: Literal["system_assigned", "user_assigned"] = "system_assigned"
    user_assigned_identity_id: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSpec:
        if self.max_instances < self.min_instances:
            raise ValueError("max_instances is below min_instances")
        if (self.identity == "user_assigned") != bool(self.user_assigned_identity_id):
            raise ValueError(
                "user_assigned_identity_id must be set exactly when identity is "
                "user_assigned"
            )
        return self


class EnvironmentSpec(_Strict):
    """The `environment` key: the Azure ML environment the steps run in."""

    name: str
    description: str = ""
    build_context: str


class Resources(_Strict):
    """Both keys of azureml_resources.yml."""

    cluster: ClusterSpec
    environment: EnvironmentSpec


def load_resources(azureml_config: dict[str, Any], env: str) -> Resources:
    """Validate the resources part of the `azureml` config of environment `env`."""
    raw = {k: azureml_config.get(k) for k in ("cluster", "environment")}
    try:
        resources = Resources.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise AzureSetupError(
            f"Invalid Azure ML resources in conf/{env}/{RESOURCES_FILE}: {problems}. "
            f"Fix the file (every key is documented in conf/azure/{RESOURCES_FILE})."
        ) from exc
    default = azureml_config["azure"]["compute"]["__default__"]["cluster_name"]
    if resources.cluster.name != default:
        raise AzureSetupError(
            f"conf/{env}: cluster '{resources.cluster.name}' in {RESOURCES_FILE} is "
            f"not the cluster '{default}' that azureml.yml runs the steps on. Give "
            "both the same name."
        )
    return resources


def build_cluster(spec: ClusterSpec) -> AmlCompute:
    """The AmlCompute entity of the cluster."""
    identities = (
        [ManagedIdentityConfiguration(resource_id=spec.user_assigned_identity_id)]
        if spec.user_assigned_identity_id
        else None
    )
    return AmlCompute(
        name=spec.name,
        description="mnist-mlops training cluster (kedro azure provision)",
        size=spec.size,
        min_instances=spec.min_instances,
        max_instances=spec.max_instances,
        idle_time_before_scale_down=spec.idle_time_before_scale_down,
        tier=spec.tier,
        identity=IdentityConfiguration(
            type=spec.identity, user_assigned_identities=identities
        ),
    )


def build_environment(
    spec: EnvironmentSpec,
    project_path: Path,
    image: str | None = None,
    version: str | None = None,
) -> Environment:
    """The Environment entity: a pushed `image`, or Azure ML builds the Dockerfile."""
    common = {
        "name": spec.name,
        "description": spec.description,
        "version": version,
        "tags": {"project": "mnist-mlops"},
    }
    if image:
        return Environment(image=image, **common)
    context = project_path / spec.build_context
    if not (context / "Dockerfile").is_file():
        raise AzureSetupError(
            f"Environment '{spec.name}': no Dockerfile in {context}. Fix "
            f"environment.build_context in {RESOURCES_FILE} or pass --image."
        )
    return Environment(
        build=BuildContext(path=str(context), dockerfile_path="Dockerfile"), **common
    )
