"""Decide which model file and card to load: MODEL_URI, else the Kedro catalog."""

from __future__ import annotations

from dataclasses import dataclass

from mnist_serving.core.config import Settings
from mnist_serving.core.errors import ModelLoadError
from mnist_serving.model.catalog import export_filepaths
from mnist_serving.model.storage import Store, open_store

CARD_NAME = "model_card.json"
RUN_EXPORT = "run `kedro run` to train and export one, or set MODEL_URI"


@dataclass(frozen=True)
class ModelLocation:
    """Where one model version and its card live."""

    store: Store
    model_path: str
    card_path: str
    version: str | None

    @property
    def model_uri(self) -> str:
        """The model's location as a user would write it."""
        return self.store.describe(self.model_path)

    @property
    def card_uri(self) -> str:
        """The card's location as a user would write it."""
        return self.store.describe(self.card_path)


def newest_version(store: Store, model_root: str, card_root: str) -> str:
    """The newest Kedro version folder that holds both the model and its card."""
    model_name, card_name = store.name(model_root), store.name(card_root)
    if not store.isdir(model_root):
        msg = f"no exported model at {store.describe(model_root)}; {RUN_EXPORT}"
        raise ModelLoadError(msg)
    for version in sorted(store.listdir(model_root), reverse=True):
        model = store.join(model_root, version, model_name)
        card = store.join(card_root, version, card_name)
        if store.isfile(model) and store.isfile(card):
            return version
    msg = (
        f"no version under {store.describe(model_root)} has both {model_name} and "
        f"its card in {store.describe(card_root)}; {RUN_EXPORT}"
    )
    raise ModelLoadError(msg)


def _versioned(store: Store, model_root: str, card_root: str) -> ModelLocation:
    """Location of the newest complete version under two versioned roots."""
    version = newest_version(store, model_root, card_root)
    return ModelLocation(
        store=store,
        model_path=store.join(model_root, version, store.name(model_root)),
        card_path=store.join(card_root, version, store.name(card_root)),
        version=version,
    )


def _beside_file(store: Store, model_path: str) -> ModelLocation:
    """The card of a model file: in Kedro's versioned layout, else next to it."""
    folder = store.parent(model_path)
    root = store.parent(folder)
    if store.name(root) == store.name(model_path):  # <root>/<version>/<file>
        version = store.name(folder)
        card = store.join(store.parent(root), CARD_NAME, version, CARD_NAME)
        if store.isfile(card):
            return ModelLocation(store, model_path, card, version)
    card = store.join(folder, CARD_NAME)
    if store.isfile(card):
        return ModelLocation(store, model_path, card, None)
    msg = (
        f"model card for {store.describe(model_path)} not found (looked for "
        f"{CARD_NAME} in the same version and beside it); export both files together"
    )
    raise ModelLoadError(msg)


def _from_folder(store: Store, folder: str) -> ModelLocation:
    """A versioned root, one version folder, or a flat folder with a .tflite."""
    name = store.name(folder)
    if name.endswith(".tflite"):  # Kedro versioned root
        card_root = store.join(store.parent(folder), CARD_NAME)
        return _versioned(store, folder, card_root)
    parent_name = store.name(store.parent(folder))
    inner = store.join(folder, parent_name)
    if parent_name.endswith(".tflite") and store.isfile(inner):  # one version
        return _beside_file(store, inner)
    models = sorted(n for n in store.listdir(folder) if n.endswith(".tflite"))
    if len(models) == 1:
        path = store.join(folder, models[0])
        if store.isdir(path):
            return _from_folder(store, path)
        return _beside_file(store, path)
    msg = (
        f"{store.describe(folder)} holds {len(models)} .tflite entries, expected one; "
        "point MODEL_URI at the model file or its versioned folder"
    )
    raise ModelLoadError(msg)


def locate_uri(uri: str, account_name: str | None = None) -> ModelLocation:
    """Location for MODEL_URI: a .tflite file or a folder holding one."""
    store, path = open_store(uri, account_name)
    path = path.rstrip("/") or path
    if store.isfile(path):
        return _beside_file(store, path)
    if store.isdir(path):
        return _from_folder(store, path)
    msg = f"MODEL_URI {uri} does not exist; fix the setting or {RUN_EXPORT}"
    raise ModelLoadError(msg)


def locate_model(settings: Settings) -> ModelLocation:
    """MODEL_URI when set, else the export entries of the Kedro catalog."""
    if settings.model_uri:
        return locate_uri(settings.model_uri, settings.azure_storage_account_name)
    model_fp, card_fp, versioned = export_filepaths(
        settings.project_dir, settings.kedro_env
    )
    store, model_path = open_store(model_fp, settings.azure_storage_account_name)
    _, card_path = open_store(card_fp, settings.azure_storage_account_name)
    if versioned:
        return _versioned(store, model_path, card_path)
    for path in (model_path, card_path):
        if not store.isfile(path):
            msg = f"no file at {store.describe(path)}; {RUN_EXPORT}"
            raise ModelLoadError(msg)
    return ModelLocation(store, model_path, card_path, None)
