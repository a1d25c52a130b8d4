"""One Kedro save version for every step of an Azure ML job.

`kedro run` saves all versioned datasets under one version (the session's
timestamp), which is how serving pairs a model with its card. Under Azure ML
each node is a process with its own session, so the job passes one version to
every step in MNIST_SAVE_VERSION (`kedro azureml run --env-var ...`).
"""

from __future__ import annotations

import os
import re

from kedro.io.core import generate_timestamp

from .errors import AzureSetupError

SAVE_VERSION_ENV = "MNIST_SAVE_VERSION"
# Kedro's own format (generate_timestamp): sorts in time order as text.
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{3}Z")


def shared_save_version() -> str | None:
    """The job-wide save version from MNIST_SAVE_VERSION, or None when unset."""
    value = os.environ.get(SAVE_VERSION_ENV, "").strip()
    if not value:
        return None
    if not _VERSION.fullmatch(value):
        raise AzureSetupError(
            f"{SAVE_VERSION_ENV}={value!r} is not a Kedro version: expected a UTC "
            f"timestamp like {generate_timestamp()!r}. Set it with "
            f"`{SAVE_VERSION_ENV}=$(python -m mnist_mlops.azure.versioning)`."
        )
    return value


if __name__ == "__main__":  # pragma: no cover - prints a fresh version for scripts
    print(generate_timestamp())  # noqa: T201
