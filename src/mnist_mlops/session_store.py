"""A session id (the run's save version) that no other run of the project shares."""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kedro.framework.session.store import BaseSessionStore

# Kedro's version format (kedro.io.core.VERSION_FORMAT), cut to milliseconds.
VERSION_FORMAT = "%Y-%m-%dT%H.%M.%S.%fZ"
SESSION_ID = "session_id"


def next_version(version: str) -> str:
    """The Kedro version one millisecond after `version`."""
    moment = datetime.strptime(version, VERSION_FORMAT).replace(tzinfo=UTC)
    text = (moment + timedelta(milliseconds=1)).strftime(VERSION_FORMAT)
    return text[:-4] + text[-1:]  # microseconds -> milliseconds, as Kedro does


def claims_file(project_path: Path) -> Path:
    """Where the project's last claimed version is kept: the temp folder, by path."""
    digest = hashlib.sha256(str(project_path.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mnist-mlops-versions-{digest}"


def claim_version(claims: Path, proposed: str) -> str:
    """`proposed`, or the version after the last one claimed if that is not earlier.

    Versions sort in time order as text, so comparing strings is enough; the
    exclusive lock makes read-compare-write one step across processes.
    """
    with claims.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        last = handle.read().strip()
        version = next_version(last) if last and last >= proposed else proposed
        handle.seek(0)
        handle.truncate()
        handle.write(version)
    return version


class UniqueVersionStore(BaseSessionStore):
    """Kedro's ephemeral session store, with a session id unique in the project.

    Kedro makes the session id from the clock at millisecond resolution and uses
    it as the save version of every versioned dataset. Two `kedro run` started
    in the same millisecond would then share a version, and the second would
    fail on save paths the first had made. The id set by `KedroSession.create`
    is claimed here instead: a run that finds its millisecond taken gets the
    next free one. Kedro's run reads the id from this store, so the save
    version and the `run_id` the hooks see are the claimed one.
    """

    def __setitem__(self, key: str, value: Any) -> None:
        """Store `value`; a session id is first made unique."""
        if key == SESSION_ID and isinstance(value, str):
            value = claim_version(claims_file(Path(self._path).parent), value)
        super().__setitem__(key, value)
