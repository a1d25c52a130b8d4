"""Serving's modules that training imports load in the training image.

The training image installs the serving package with --no-deps, beside only the
packages of its own lock: a serving module that training imports must not reach
for a server dependency (pydantic-settings, prometheus-client, limits, ...).
These tests check it without Docker, in a Python that refuses every package the
image does not have; tests/azure/test_training_image.py runs the image itself.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib.metadata import packages_distributions

from tests.azure.locks import IMAGE_LOCK, normalized, pins
from tests.conftest import ROOT

DOCKERFILE = ROOT / "conf/azure/environment/Dockerfile"
SERVING_SRC = ROOT / "serving" / "src"
OURS = {"mnist-serving", "mnist-mlops"}

# Run in a child Python: refuse every top-level module that comes from a
# distribution outside the image, then import the modules named in argv.
CHILD = """
import importlib, json, sys
from importlib.abc import MetaPathFinder

blocked = set(json.loads(sys.argv[1]))

class NotInImage(MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None

sys.meta_path.insert(0, NotInImage())
failed = {}
for module in sys.argv[2:]:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        failed[module] = exc.name
print(json.dumps(failed))
"""


def serving_imports() -> set[str]:
    """Every `mnist_serving` module that the training package imports."""
    found = set()
    for path in (ROOT / "src" / "mnist_mlops").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                module = node.module or ""
                # `from package import module` imports that module too
                names = [module] + [
                    f"{module}.{alias.name}"
                    for alias in node.names
                    if (
                        SERVING_SRC / module.replace(".", "/") / f"{alias.name}.py"
                    ).exists()
                ]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found |= {name for name in names if name.startswith("mnist_serving")}
    return found


def not_in_image() -> list[str]:
    """Top-level modules of this environment that the training image lacks."""
    image = set(pins(IMAGE_LOCK)) | OURS
    return sorted(
        module
        for module, dists in packages_distributions().items()
        if not {normalized(dist) for dist in dists} & image
    )


def import_without_image_extras(modules: list[str]) -> dict[str, str]:
    """{module: the missing module it needed} for each that fails to import."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(not_in_image()), *modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout)


def test_serving_modules_that_training_imports_need_only_the_images_packages() -> None:
    modules = sorted(serving_imports())
    assert "mnist_serving.model.number_reader" in modules  # the walk finds them
    assert import_without_image_extras(modules) == {}


def test_the_child_refuses_server_dependencies_as_the_image_would() -> None:
    # What the check above would have caught: the review bands once lived in
    # the module that also holds the Prometheus metrics and the settings.
    failed = import_without_image_extras(
        ["mnist_serving.model.predictions", "prometheus_client", "json"]
    )
    assert set(failed) == {"mnist_serving.model.predictions", "prometheus_client"}


def test_the_image_build_imports_every_serving_module_training_imports() -> None:
    (check,) = re.findall(
        r'^RUN python -c "import ([^"]+)"$', DOCKERFILE.read_text(), re.M
    )
    checked = {name.strip() for name in check.split(",")}
    # importing a module imports its packages
    loaded = {
        ".".join(parts[:end])
        for parts in (name.split(".") for name in checked)
        for end in range(1, len(parts) + 1)
    }
    assert serving_imports() <= loaded
