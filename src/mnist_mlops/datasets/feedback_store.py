"""The feedback store (serving's SQLite or PostgreSQL) read as a pandas query."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from azure.core.exceptions import ClientAuthenticationError
from kedro.io.core import DatasetError
from kedro_datasets.pandas import SQLQueryDataset
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from mnist_mlops.azure.postgres import use_entra_token

logger = logging.getLogger(__name__)

# The columns of serving's `predictions` table that the feedback pipeline reads.
COLUMNS = ("request_id", "model_version", "digit", "label", "input")
TABLE = "predictions"
PLAIN_POSTGRES = "postgresql://"
PSYCOPG = "postgresql+psycopg://"
SET_URL = (
    "Set DATABASE_URL (the store serving writes), or the `feedback_db` entry of "
    "conf/local/credentials.yml"
)
AUTHS = ("password", "entra")
ENTRA_FIX = (
    "With `auth: entra` the URL names the PostgreSQL role of the managed identity "
    "and no password, e.g. postgresql://mnist-training@<server>.postgres.database"
    ".azure.com:5432/feedback?sslmode=require"
)


class FeedbackStoreDataset(SQLQueryDataset):
    """kedro-datasets' SQLQueryDataset, aware that the store may not exist yet.

    Before serving has stored its first prediction there is no SQLite file and
    no `predictions` table: that is "no feedback yet", an empty frame, so
    training runs on MNIST alone. So is an empty connection string or `none`
    (serving's "no store"; the `azure` environment without DATABASE_URL), with
    a warning that names the setting. A plain `postgresql://` URL, as serving
    takes it, is read with psycopg.
    A store that is configured but cannot be read (PostgreSQL down, wrong
    password) is an error that names it.

    `auth: entra` (the `azure` environment) signs in to Azure Database for
    PostgreSQL with a Microsoft Entra token of the step's managed identity
    instead of a password, so no secret reaches the Azure ML job.

    Example catalog entry::

        feedback_records:
          type: mnist_mlops.datasets.FeedbackStoreDataset
          sql: SELECT request_id, model_version, digit, label, input
               FROM predictions WHERE label IS NOT NULL
          credentials: feedback_db  # {con: sqlite:///data/feedback/feedback.db}
    """

    def __init__(
        self,
        sql: str,
        credentials: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Create the dataset; an empty connection string reads as no feedback."""
        credentials = dict(credentials or {})
        con = str(credentials.get("con") or "").strip()
        self._auth = str(credentials.pop("auth", None) or "password").strip().lower()
        if self._auth not in AUTHS:
            raise DatasetError(
                f"Feedback store: `auth: {self._auth}` is not one of {AUTHS}. Set "
                "`auth` of `feedback_db` in credentials.yml to one of them."
            )
        self._missing_con = con.lower() in {"", "none"}  # serving's "no store"
        if con.startswith(PLAIN_POSTGRES):  # serving's form; use the installed driver
            con = PSYCOPG + con.removeprefix(PLAIN_POSTGRES)
        credentials["con"] = "sqlite://" if self._missing_con else con
        super().__init__(sql=sql, credentials=credentials, **kwargs)
        if self._auth == "entra" and not self._missing_con:
            self._check_entra_url()

    def _check_entra_url(self) -> None:
        try:
            url = make_url(self._connection_str)
        except ArgumentError as exc:
            raise DatasetError(
                f"Feedback store URL {self._where()} is not a SQLAlchemy URL: {exc}. "
                f"{ENTRA_FIX}."
            ) from exc
        if url.get_backend_name() != "postgresql" or not url.username or url.password:
            raise DatasetError(
                f"Feedback store URL {self._where()} does not fit `auth: entra`: it "
                "must be PostgreSQL, with a user and without a password (the "
                f"password is an Entra token). {ENTRA_FIX}."
            )

    @property
    def engine(self) -> Engine:
        """kedro-datasets' shared engine, signing in with Entra when asked."""
        engine = super().engine
        if self._auth == "entra":
            use_entra_token(engine)
        return engine

    def _where(self) -> str:
        try:
            return make_url(self._connection_str).render_as_string(hide_password=True)
        except ArgumentError:
            return "<unparseable URL>"

    def _sqlite_file(self) -> Path | None:
        url = make_url(self._connection_str)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database)

    def load(self) -> pd.DataFrame:
        """The query's rows; an empty frame while the store holds no table yet."""
        if self._missing_con:
            logger.warning(
                "No feedback store is configured (empty connection string): no "
                "feedback is read. %s.",
                SET_URL,
            )
            return pd.DataFrame(columns=list(COLUMNS))
        try:
            url_file = self._sqlite_file()
        except ArgumentError as exc:
            raise DatasetError(
                f"Feedback store URL {self._where()} is not a SQLAlchemy URL: "
                f"{exc}. {SET_URL}."
            ) from exc
        if url_file is not None and not url_file.is_file():
            logger.warning(
                "No feedback yet: the feedback store %s does not exist.", url_file
            )
            return pd.DataFrame(columns=list(COLUMNS))
        try:
            if not inspect(self.engine).has_table(TABLE):
                logger.warning(
                    "No feedback yet: %s has no %r table.", self._where(), TABLE
                )
                return pd.DataFrame(columns=list(COLUMNS))
            return super().load()
        except ClientAuthenticationError as exc:
            raise DatasetError(
                f"Feedback store {self._where()}: no Microsoft Entra token for "
                f"PostgreSQL ({type(exc).__name__}: {str(exc).splitlines()[0]}). On "
                "Azure ML the compute cluster needs a managed identity (and, if "
                "user-assigned, AZURE_CLIENT_ID); elsewhere run `az login`. The "
                "identity needs a PostgreSQL role of the URL's user name."
            ) from exc
        except SQLAlchemyError as exc:
            raise DatasetError(
                f"Feedback store {self._where()} cannot be read: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0]}. Check that the "
                f"database is running and reachable. {SET_URL}."
            ) from exc
