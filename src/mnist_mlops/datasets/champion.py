"""The champion: the MLflow registry alias and the files serving loads.

Two systems hold the champion: the registry alias (which model version is
champion) and a stable folder of published files (what serving loads). A
promotion changes both in this order, so that it either completes or leaves
the old champion in place:

1. Find the challenger's registered version (by its MLflow run). Missing: stop,
   nothing changed.
2. Write the LiteRT model into `<root>/mnist_cnn.tflite/<version>/`. Serving
   ignores a version without its card, so this file alone changes nothing.
3. Write the card into `<root>/model_card.json/<version>/`: the commit point of
   the files (local: a temporary file renamed into place; Blob: a blob commits
   whole). Serving's poll now finds the new version.
4. Set the registry alias to the challenger's version.

A failure in 2-4 deletes what this promotion wrote (card first), so the newest
complete version is the old champion again and the alias was never moved.
A process killed between 3 and 4 cannot clean up: serving then runs the new
files while the alias still names the old version. Running the promotion again
(`kedro run --pipeline promotion`) finishes that promotion: it finds the same
files already in place, checks their sha256 and sets the alias, or removes them
if that fails.

Two promotions at once (a local run and the scheduled Azure run, say) take
turns: steps 2-4 run under a lock file, `<root>/promotion.lock`, created only
if absent (a Blob upload that must not overwrite; locally a whole file
hard-linked into place, which fails if the name exists). Under it
the release checks that the alias still names the champion the challenger was
scored against, and that no newer version is published (serving loads the
newest), so the later promotion stops with a PromotionError to re-run it,
rather than silently undoing the other or splitting alias and files. A lock
left by a killed process is taken over after LOCK_STALE_SECONDS.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import fsspec
import mlflow
from kedro.io import AbstractDataset
from kedro.io.core import DatasetError, get_protocol_and_path
from mlflow.exceptions import MlflowException
from mnist_serving.model.card import MODEL_FILE

from mnist_mlops.datasets._base import atomic_write
from mnist_mlops.errors import PromotionError

logger = logging.getLogger(__name__)

CARD_FILE = "model_card.json"
ARTIFACTS = "model"  # where mnist_mlops.hooks.register_model logs the export and card
RUN_ID = re.compile(r"[0-9a-f]{32}")
LOCK_FILE = "promotion.lock"
LOCK_WAIT_SECONDS = 60.0  # a promotion's steps 2-4 take seconds
LOCK_STALE_SECONDS = 900.0  # older than this, the lock's holder is gone
LOCK_POLL_SECONDS = 0.5


def _client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient()


class ChampionModelDataset(AbstractDataset[None, dict[str, Any]]):
    """Load the model holding a registry alias: its LiteRT export and card.

    `{}` when no version holds the alias yet (the first model). Read-only.

    Example catalog entry::

        champion_model:
          type: mnist_mlops.datasets.ChampionModelDataset
          model_name: mnist-digit-classifier
          alias: champion
    """

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Name the registered model and the alias."""
        self._model_name = model_name
        self._alias = alias
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        """{registry_version, run_id, model_bytes, card}, or {} with no champion yet."""
        client = _client()
        try:
            version = client.get_model_version_by_alias(self._model_name, self._alias)
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                logger.info(
                    "No model holds the alias '%s' of '%s' yet: the challenger "
                    "is compared with the floors only.",
                    self._alias,
                    self._model_name,
                )
                return {}
            raise DatasetError(
                f"MLflow registry: cannot read alias '{self._alias}' of model "
                f"'{self._model_name}': {exc.message}. Check MLFLOW_TRACKING_URI."
            ) from exc
        where = f"runs:/{version.run_id}/{ARTIFACTS}"
        try:
            path = mlflow.artifacts.download_artifacts(f"{where}/{MODEL_FILE}")
            with open(path, "rb") as fh:
                model_bytes = fh.read()
            card = mlflow.artifacts.load_dict(f"{where}/{CARD_FILE}")
        except (MlflowException, OSError) as exc:
            raise DatasetError(
                f"Champion '{self._model_name}' version {version.version} (alias "
                f"'{self._alias}') has no {ARTIFACTS}/{MODEL_FILE} and "
                f"{ARTIFACTS}/{CARD_FILE} in MLflow run {version.run_id}: {exc}. "
                "Move the alias to a version trained by the training pipeline, or "
                "delete it to promote the next model on its floors alone."
            ) from exc
        return {
            "registry_version": str(version.version),
            "run_id": version.run_id,
            "model_bytes": model_bytes,
            "card": card,
        }

    def save(self, data: None) -> None:
        """Not supported: the champion changes only through a promotion."""
        raise DatasetError(
            "ChampionModelDataset is read-only; champion_release publishes."
        )

    def _describe(self) -> dict[str, Any]:
        return {"model_name": self._model_name, "alias": self._alias}


class ChampionReleaseDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """Publish a promoted model: files under a stable root, then the registry alias.

    Saving `{"promote": False, ...}` changes nothing. See the module docstring
    for the order of the steps and what a failure leaves. Loading returns the
    newest published version's card.

    Example catalog entry::

        champion_release:
          type: mnist_mlops.datasets.ChampionReleaseDataset
          filepath: data/06_models/champion  # or abfs://mnist/releases/champion
          model_name: mnist-digit-classifier
          alias: champion
    """

    def __init__(  # noqa: PLR0913 - a catalog entry's keys
        self,
        *,
        filepath: str,
        model_name: str,
        alias: str = "champion",
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset for the release root `filepath` (local or fsspec URL)."""
        self._protocol, path = get_protocol_and_path(filepath)
        self._root = PurePosixPath(path)
        self._fs = fsspec.filesystem(
            self._protocol, **(credentials or {}), **(fs_args or {})
        )
        self._model_name = model_name
        self._alias = alias
        self.metadata = metadata

    def paths(self, version: str) -> tuple[str, str]:
        """(model path, card path) of one published version."""
        return (
            str(self._root / MODEL_FILE / version / MODEL_FILE),
            str(self._root / CARD_FILE / version / CARD_FILE),
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._root), "protocol": self._protocol}

    def load(self) -> dict[str, Any]:
        """The newest published version's card (the one serving loads)."""
        versions = self.published_versions()
        if not versions:
            raise DatasetError(f"No champion published under {self._root} yet.")
        with self._fs.open(self.paths(versions[-1])[1], "rb") as fh:
            return json.load(fh)

    def save(self, data: dict[str, Any]) -> None:
        """Publish when `data["promote"]`: files, card last, then the alias."""
        if not data.get("promote"):
            logger.info("Champion unchanged: %s", data.get("reason", "not promoted"))
            return
        card = data["card"]
        registry_version = self.registry_version(card)
        with self.lock():
            self._check_unchanged(registry_version, data["champion_registry_version"])
            self._check_newest(card["version"])
            self._publish(data, registry_version)

    def _publish(self, data: dict[str, Any], registry_version: str) -> None:
        card = data["card"]
        model_path, card_path = self.paths(card["version"])
        written: list[str] = []
        already = self._published(card_path, card)  # a promotion killed before 4
        try:
            if already:
                written = [model_path, card_path]
            else:
                self.write(model_path, data["model_bytes"])
                written.append(model_path)
                self.write(card_path, json.dumps(card, indent=2).encode())
                written.append(card_path)
            self.set_alias(registry_version)
        except Exception as exc:
            self._remove(reversed(written))
            raise PromotionError(
                f"Promoting '{self._model_name}' version {registry_version} failed "
                f"({type(exc).__name__}: {exc}); its files were removed and the "
                f"alias '{self._alias}' was not moved, so the previous champion "
                "stays in place. Fix the cause and run `kedro run --pipeline "
                "promotion` again."
            ) from exc
        logger.info(
            "Promoted '%s' version %s (%s): alias '%s' set, files under %s.",
            self._model_name,
            registry_version,
            card["version"],
            self._alias,
            self._root,
        )

    def current_alias(self) -> str | None:
        """The registered version holding the alias now; None if none does."""
        try:
            found = _client().get_model_version_by_alias(self._model_name, self._alias)
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                return None
            raise
        return str(found.version)

    def _check_unchanged(self, challenger: str, scored_against: str | None) -> None:
        """Stop if another promotion moved the alias since this one's scoring."""
        now = self.current_alias()
        if now in {scored_against, challenger}:
            return  # unchanged, or this very model (a promotion finished again)
        raise PromotionError(
            f"The alias '{self._alias}' of '{self._model_name}' now names version "
            f"{now}, not {scored_against or 'none'}, against which challenger "
            f"version {challenger} was scored: another promotion finished "
            "meanwhile. Nothing was changed. Run `kedro run --pipeline promotion` "
            "again to compare the challenger with the new champion."
        )

    def _check_newest(self, version: str) -> None:
        """Stop if a newer model is published: serving would keep loading it."""
        newer = [v for v in self.published_versions() if v > version]
        if newer:
            raise PromotionError(
                f"Version {newer[-1]}, newer than challenger {version}, is already "
                f"published under {self._root}; serving loads the newest, so "
                "promoting an older model would leave the alias and the served "
                "files apart. Nothing was changed. Promote a newer training run."
            )

    def published_versions(self) -> list[str]:
        """Versions with a card under the root (the ones serving can load), sorted."""
        cards = self._fs.glob(str(self._root / CARD_FILE / "*" / CARD_FILE))
        return sorted(PurePosixPath(path).parent.name for path in cards)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold `<root>/promotion.lock` (created only if absent) while promoting."""
        path = str(self._root / LOCK_FILE)
        mine = json.dumps(
            {
                "owner": f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}",
                "since": datetime.now(UTC).isoformat(),
            }
        ).encode()
        self._fs.makedirs(str(self._root), exist_ok=True)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while not self._try_lock(path, mine):
            if time.monotonic() > deadline:
                raise PromotionError(
                    f"Another promotion holds {path} (for up to "
                    f"{LOCK_STALE_SECONDS:g} s); nothing was changed. Run the "
                    "promotion again once it has finished."
                )
            time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            self._unlock(path, mine)

    def _create(self, path: str, payload: bytes) -> None:
        """Write `path` whole, only if absent: FileExistsError if it exists."""
        if self._protocol == "file":
            atomic_write(path, lambda tmp: _write_bytes(tmp, payload), exclusive=True)
        else:  # one Put Blob with If-None-Match: *, all or nothing
            self._fs.pipe_file(path, payload, mode="create")

    def _try_lock(self, path: str, mine: bytes) -> bool:
        try:
            self._create(path, mine)
        except FileExistsError:
            pass
        else:
            return True
        held: Any = None
        try:
            with self._fs.open(path, "rb") as fh:
                raw = fh.read()
            try:
                held = json.loads(raw)
                since = datetime.fromisoformat(held["since"])
            except (ValueError, KeyError, TypeError):  # not ours: age it by its time
                since = self._fs.modified(path)
        except FileNotFoundError:
            return False  # released meanwhile: try again
        age = (datetime.now(UTC) - since).total_seconds()
        if age > LOCK_STALE_SECONDS:
            logger.warning(
                "Taking over %s, held by %s for %.0f s (its promotion is gone).",
                path,
                held.get("owner") if isinstance(held, dict) else "?",
                age,
            )
            self._unlock(path, raw)  # only if still the lock judged stale
        return False

    def _unlock(self, path: str, mine: bytes) -> None:
        try:
            with self._fs.open(path, "rb") as fh:
                if fh.read() != mine:
                    return  # taken over as stale: not ours to remove
            self._fs.rm_file(path)
        except FileNotFoundError:
            pass

    def _published(self, card_path: str, card: dict[str, Any]) -> bool:
        """Whether this very model is already published under its version."""
        if not self._fs.exists(card_path):
            return False
        with self._fs.open(card_path, "rb") as fh:
            published = json.load(fh)
        if published.get("model_sha256") != card["model_sha256"]:
            raise PromotionError(
                f"{card_path} already holds another model (sha256 "
                f"{published.get('model_sha256')}); the champion was left in "
                "place. Remove that folder or promote a new training run."
            )
        logger.warning(
            "Version %s is already published (an earlier promotion stopped before "
            "setting the alias); setting the alias now.",
            card["version"],
        )
        return True

    def registry_version(self, card: dict[str, Any]) -> str:
        """The registered version of the card's MLflow run; PromotionError if none."""
        run_id = str(card.get("mlflow_run_id") or "")
        found = (  # an MLflow run id is 32 hex digits; anything else matches nothing
            _client().search_model_versions(
                f"name='{self._model_name}' and run_id='{run_id}'"
            )
            if RUN_ID.fullmatch(run_id)
            else []
        )
        if not found:
            raise PromotionError(
                f"Challenger {card.get('version')} (MLflow run {run_id}) is not a "
                f"registered version of '{self._model_name}', so it cannot become "
                "champion; nothing was changed. Train it with the training pipeline "
                "in the same run, which registers it."
            )
        return str(max(int(v.version) for v in found))

    def set_alias(self, registry_version: str) -> None:
        """Point the registry alias at `registry_version`."""
        _client().set_registered_model_alias(
            self._model_name, self._alias, registry_version
        )

    def write(self, path: str, payload: bytes) -> None:
        """Write one whole file: renamed into place locally, one blob upload else."""
        if self._protocol == "file":
            atomic_write(path, lambda tmp: _write_bytes(tmp, payload))
        else:
            self._fs.pipe_file(path, payload)

    def _remove(self, paths: Any) -> None:
        for path in paths:
            try:
                self._fs.rm_file(path)
                if self._protocol == "file":
                    os.rmdir(os.path.dirname(path))  # the now empty version folder
            except OSError as exc:  # reported, the original error is raised
                logger.error(
                    "Could not remove %s after a failed promotion: %s", path, exc
                )


def _write_bytes(path: str, payload: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(payload)
