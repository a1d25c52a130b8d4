"""Entra sign-in to the feedback store, against a real PostgreSQL.

Azure's token service is out of reach here; the server is real and checks the
password. A role whose password is the token stands for Azure Database for
PostgreSQL's role of a managed identity, and a TokenCredential that hands out
that token stands for azure-identity's managed identity credential.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from azure.core.credentials import AccessToken
from azure.identity import EnvironmentCredential
from kedro.io import DatasetError
from sqlalchemy import create_engine, text

from mnist_mlops.azure import postgres
from mnist_mlops.datasets import FeedbackStoreDataset
from tests.feedback_store import create_store, records
from tests.pipelines.feedback.postgres import Postgres, postgres_server

SQL = "SELECT request_id, label FROM predictions WHERE label IS NOT NULL"
ROLE = "mnist-training"  # an identity's role name, with a dash as Azure's often have
TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJvaWQiOiJ0ZXN0In0.c2lnbmF0dXJl"  # noqa: S105 - a test token


class TokenService:
    """A TokenCredential that counts the tokens it hands out, and their scopes."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: object) -> AccessToken:
        """One access token for `scopes`, valid for an hour."""
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture(scope="module")
def server() -> Iterator[Postgres]:
    """PostgreSQL with serving's table, and a role that signs in with TOKEN only."""
    with postgres_server() as pg:
        rows = records(np.zeros((3, 28, 28), np.uint8), np.array([1, 2, 3]))
        create_store(pg.url, rows)
        hba = pg.data / "pg_hba.conf"  # the role must give its password, others trust
        rule = f'host all "{ROLE}" 127.0.0.1/32 scram-sha-256\n'
        hba.write_text(rule + hba.read_text())
        admin = create_engine(pg.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as con:
            con.execute(text(f"CREATE ROLE \"{ROLE}\" LOGIN PASSWORD '{TOKEN}'"))
            con.execute(text(f'GRANT SELECT ON predictions TO "{ROLE}"'))
            con.execute(text("SELECT pg_reload_conf()"))
        admin.dispose()
        yield pg


def _url(pg: Postgres, password: str = "") -> str:
    where = pg.url.split("@", 1)[1]
    return f"postgresql://{ROLE}{':' + password if password else ''}@{where}"


def _dataset(url: str) -> FeedbackStoreDataset:
    FeedbackStoreDataset.engines.pop(
        url.replace("postgresql:", "postgresql+psycopg:"), None
    )
    return FeedbackStoreDataset(sql=SQL, credentials={"con": url, "auth": "entra"})


def test_the_token_is_the_password(
    server: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = TokenService()
    monkeypatch.setattr(postgres, "credential", lambda: service)
    frame = _dataset(_url(server)).load()
    assert sorted(frame["label"]) == [1, 2, 3]
    assert service.scopes and set(service.scopes) == {(postgres.SCOPE,)}


def test_a_token_the_server_refuses_is_a_clear_error(
    server: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "credential", lambda: TokenService("expired"))
    with pytest.raises(DatasetError) as err:
        _dataset(_url(server)).load()
    assert f'password authentication failed for user "{ROLE}"' in str(err.value)
    assert "expired" not in str(err.value)


def test_no_identity_is_a_clear_error(
    server: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(postgres, "credential", EnvironmentCredential)  # none set
    with pytest.raises(DatasetError) as err:
        _dataset(_url(server)).load()
    message = str(err.value)
    assert "no Microsoft Entra token for PostgreSQL" in message
    assert "CredentialUnavailableError" in message
    assert "managed identity" in message and "az login" in message


@pytest.mark.parametrize(
    ("con", "problem"),
    [
        ("postgresql://mnist-training:secret@db.example:5432/feedback", "password"),
        ("postgresql://db.example:5432/feedback", "user"),
        ("sqlite:///feedback.db", "PostgreSQL"),
    ],
)
def test_a_url_that_does_not_fit_entra_is_refused_at_once(
    con: str, problem: str
) -> None:
    with pytest.raises(DatasetError) as err:
        FeedbackStoreDataset(sql=SQL, credentials={"con": con, "auth": "entra"})
    message = str(err.value)
    assert "does not fit `auth: entra`" in message and problem in message
    assert "secret" not in message
    assert "postgres.database.azure.com" in message  # the example of a right URL


def test_an_unknown_auth_names_the_choices() -> None:
    with pytest.raises(DatasetError, match=r"`auth: token` is not one of"):
        FeedbackStoreDataset(sql=SQL, credentials={"con": "sqlite://", "auth": "token"})


def test_no_store_needs_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    service = TokenService()
    monkeypatch.setattr(postgres, "credential", lambda: service)
    dataset = FeedbackStoreDataset(sql=SQL, credentials={"con": "", "auth": "entra"})
    assert dataset.load().empty
    assert not service.scopes
