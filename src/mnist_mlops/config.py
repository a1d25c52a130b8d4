"""Config helpers used by settings.py (resolvers of the OmegaConf loader)."""

import os


def env_or_default(name: str, default: str | None = None) -> str | None:
    """`${env:NAME,default}` in conf files: an environment variable or a default.

    Kedro allows `oc.env` only in credentials; this resolver is for settings such
    as MLFLOW_TRACKING_URI that are not secret.
    """
    return os.environ.get(name, default)
