"""Microsoft Entra sign-in to Azure Database for PostgreSQL: a token as password.

Azure ML steps read the feedback store with the compute cluster's managed
identity, so no database password travels in a job definition or a GitHub
secret. Each new connection asks azure-identity for an access token (which it
caches until shortly before expiry) and sends it as the password; the user is
the PostgreSQL role made for that identity, named in the URL.

Microsoft's azure-postgresql-auth does the same, but takes the user from the
token's claims and raises for a system-assigned identity (the cluster's
default), whose role name only the URL can give; hence these few lines.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from azure.core.credentials import TokenCredential
from sqlalchemy import Engine, event

# The audience of Azure Database for PostgreSQL's Entra tokens.
SCOPE = "https://ossrdbms-aad.database.windows.net/.default"


@functools.cache
def credential() -> TokenCredential:
    """DefaultAzureCredential: the managed identity on Azure ML, `az login` elsewhere.

    A user-assigned identity is chosen by AZURE_CLIENT_ID, or by the
    DEFAULT_IDENTITY_CLIENT_ID that Azure ML sets on such a compute.
    """
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - Azure only

    client_id = os.environ.get("DEFAULT_IDENTITY_CLIENT_ID")
    if client_id and not os.environ.get("AZURE_CLIENT_ID"):
        return DefaultAzureCredential(managed_identity_client_id=client_id)
    return DefaultAzureCredential()


def token_as_password(
    dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]
) -> None:
    """`do_connect` listener: a fresh (or cached, still valid) token per connection."""
    del dialect, conn_rec, cargs  # the listener's signature
    cparams["password"] = credential().get_token(SCOPE).token


def use_entra_token(engine: Engine) -> None:
    """Sign each new connection of `engine` in with an Entra token (listen once)."""
    if not event.contains(engine, "do_connect", token_as_password):
        event.listen(engine, "do_connect", token_as_password)
