"""Find the exported model from the Kedro catalog YAML, without importing Kedro."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from mnist_serving.core.errors import ModelLoadError

MODEL_ENTRY = "litert_model"
CARD_ENTRY = "model_card"
# The promotion gate's release folder: <filepath>/<file>/<version>/<file> for the
# model and its card. When the catalog has it, serving loads the champion.
CHAMPION_ENTRY = "champion_release"
MODEL_FILE = "mnist_cnn.tflite"
CARD_FILE = "model_card.json"
_INTERPOLATION = re.compile(r"\$\{([^}]+)\}")


def _load_yaml_files(folder: Path, pattern: str) -> dict[str, Any]:
    """Merge the top-level keys of every YAML file under `folder` matching `pattern`."""
    merged: dict[str, Any] = {}
    if not folder.is_dir():
        return merged
    for path in sorted(folder.glob(f"**/{pattern}")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            msg = f"Kedro config {path} cannot be read: {exc}; fix the YAML"
            raise ModelLoadError(msg) from exc
        if isinstance(data, dict):
            merged.update(data)
    return merged


def _resolve(value: str, globals_: dict[str, Any]) -> str:
    """Resolve ${globals:a.b} and ${oc.env:NAME[,default]} as Kedro's OmegaConf does."""

    def replace(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("globals:"):
            node: Any = globals_
            for part in expr.removeprefix("globals:").split("."):
                if not isinstance(node, dict) or part not in node:
                    msg = f"catalog value {value!r} names unknown global {expr!r}"
                    raise ModelLoadError(msg)
                node = node[part]
            return str(node)
        if expr.startswith("oc.env:"):
            name, _, default = expr.removeprefix("oc.env:").partition(",")
            resolved = os.environ.get(name.strip(), default.strip() or None)
            if resolved is None:
                msg = f"catalog value {value!r} needs environment variable {name}"
                raise ModelLoadError(msg)
            return resolved
        msg = (
            f"catalog value {value!r} uses {expr!r}, which serving cannot resolve; "
            "set MODEL_URI instead"
        )
        raise ModelLoadError(msg)

    return _INTERPOLATION.sub(replace, value)


def catalog_entries(project_dir: Path, env: str) -> dict[str, Any]:
    """The catalog of `conf/base` overlaid with `conf/<env>`, as Kedro merges it."""
    conf = project_dir / "conf"
    if not (conf / "base").is_dir():
        msg = (
            f"no Kedro configuration at {conf / 'base'}; start mnist-serve from the "
            "project root, set PROJECT_DIR, or set MODEL_URI"
        )
        raise ModelLoadError(msg)
    envs = ["base"] if env == "base" else ["base", env]
    catalog: dict[str, Any] = {}
    globals_: dict[str, Any] = {}
    for name in envs:
        catalog.update(_load_yaml_files(conf / name, "catalog*.yml"))
        globals_.update(_load_yaml_files(conf / name, "globals*.yml"))
    catalog["_globals"] = globals_
    return catalog


def _absolute(filepath: str, project_dir: Path) -> str:
    if "://" not in filepath and not Path(filepath).is_absolute():
        return str(project_dir / filepath)
    return filepath


def export_filepaths(project_dir: Path, env: str) -> tuple[str, str, bool]:
    """(model filepath, card filepath, versioned) that serving loads by default.

    The champion's release folder when the catalog names one (only a model the
    promotion gate promoted), else the training run's export entries.
    """
    catalog = catalog_entries(project_dir, env)
    globals_ = catalog.pop("_globals")
    champion = catalog.get(CHAMPION_ENTRY)
    if isinstance(champion, dict) and isinstance(champion.get("filepath"), str):
        root = _absolute(_resolve(champion["filepath"], globals_), project_dir)
        root = root.rstrip("/")
        return f"{root}/{MODEL_FILE}", f"{root}/{CARD_FILE}", True
    paths = []
    versioned = []
    for entry in (MODEL_ENTRY, CARD_ENTRY):
        spec = catalog.get(entry)
        if not isinstance(spec, dict) or not isinstance(spec.get("filepath"), str):
            msg = (
                f"catalog entry {entry!r} with a filepath is missing from "
                f"{project_dir / 'conf'} (env {env!r}); add it or set MODEL_URI"
            )
            raise ModelLoadError(msg)
        paths.append(_absolute(_resolve(spec["filepath"], globals_), project_dir))
        versioned.append(bool(spec.get("versioned", False)))
    if versioned[0] != versioned[1]:
        msg = (
            f"catalog entries {MODEL_ENTRY!r} and {CARD_ENTRY!r} must both be versioned"
        )
        raise ModelLoadError(msg)
    return paths[0], paths[1], versioned[0]
