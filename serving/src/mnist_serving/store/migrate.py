"""Bring a database to the newest schema with the Alembic migrations in this package."""

from __future__ import annotations

import threading

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

SCRIPT_LOCATION = "mnist_serving.store:migrations"
# Any fixed number: replicas starting together take turns on PostgreSQL.
MIGRATION_LOCK = 704_2026
# Alembic keeps the running migration's context in module globals
# (`alembic.context`), so two upgrades at once in one process (two apps, as in
# the tests) break each other; one at a time per process.
_ALEMBIC = threading.Lock()


def upgrade(engine: Engine) -> None:
    """Run every migration not yet applied, in one transaction.

    On PostgreSQL an advisory lock makes replicas that start together migrate
    one after the other instead of racing to create the same table.
    """
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    with _ALEMBIC, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
