"""Runs started together share a SQLite MLflow store: its set-up goes one at a time."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

SQLITE = "sqlite:///"


def sqlite_path(uri: str | None) -> Path | None:
    """The absolute path of the database of a `sqlite:///` URI; None for others."""
    if not uri or not uri.startswith(SQLITE):
        return None
    path = uri.removeprefix(SQLITE).split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).resolve()


def lock_file(database: Path) -> Path:
    """The lock file of a database: in the temp folder, named by the database path."""
    digest = hashlib.sha256(str(database).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mnist-mlops-mlflow-{digest}.lock"


def tracking_uri(context: KedroContext) -> str | None:
    """The tracking URI that kedro-mlflow will use: mlflow.yml, else the environment."""
    try:
        server = context.config_loader["mlflow"].get("server") or {}
    except MissingConfigException:
        server = {}
    return server.get("mlflow_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")


class MlflowSetupLock:
    """Lets one `kedro run` process at a time set up a SQLite MLflow store.

    On a new `mlflow.db`, kedro-mlflow's set-up (its `after_context_created`
    hook) creates MLflow's tables and the experiment. MLflow 3 creates the
    tables without a lock, so two runs started together fail with "table
    _alembic_tmp_experiments already exists" or on the experiment's unique name.
    This hook wraps every `after_context_created` hook in an exclusive file lock.
    Later writes are short transactions, which SQLite serialises (MLflow sets a
    20 s busy timeout).
    """

    @hook_impl(wrapper=True)
    def after_context_created(self, context: KedroContext) -> Generator[None, Any, Any]:
        """Run the other `after_context_created` hooks under the store's lock."""
        database = sqlite_path(tracking_uri(context))
        if database is None:
            return (yield)
        with lock_file(database).open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # released when the file closes
            logger.debug("Holding the MLflow set-up lock of %s.", database)
            return (yield)
