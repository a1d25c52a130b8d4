"""The SQLite MLflow store is set up by one `kedro run` process at a time."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from mnist_mlops.tracking import MlflowSetupLock, lock_file, sqlite_path


def test_sqlite_path_of_relative_absolute_and_other_uris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_path("sqlite:///mlflow.db") == tmp_path / "mlflow.db"
    assert sqlite_path(f"sqlite:///{tmp_path}/m.db?timeout=30") == tmp_path / "m.db"
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("azureml://workspace") is None
    assert sqlite_path(None) is None


def test_setup_waits_for_the_lock_another_process_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    context = SimpleNamespace(config_loader={"mlflow": {"server": {}}})
    done = threading.Event()

    def set_up() -> None:
        wrapper = MlflowSetupLock().after_context_created(context)
        next(wrapper)  # now kedro-mlflow's hook would run, under the lock
        done.set()
        with pytest.raises(StopIteration):
            wrapper.send(None)

    with lock_file(database).open("a") as other:  # as another run's set-up does
        fcntl.flock(other, fcntl.LOCK_EX)
        thread = threading.Thread(target=set_up)
        thread.start()
        assert not done.wait(0.5)  # blocked while the other holds the lock
    thread.join(5)
    assert done.is_set()
