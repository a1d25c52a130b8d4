"""Serving never imports TensorFlow or Kedro, and its venv does not even have them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from conftest import MODEL_URI

FORBIDDEN = ("tensorflow", "keras", "kedro", "tf_keras", "torch")

# The default feedback store (SQLite under the project folder) is on, in a temp folder.
PROBE = """
import json, sys
from fastapi.testclient import TestClient
from mnist_serving.core.config import Settings
from mnist_serving.main import create_app
import mnist_serving.cli
app = create_app(Settings(model_uri={model!r}, project_dir={project!r}))
with TestClient(app) as client:
    assert client.get("/health/ready").status_code == 200
print(json.dumps(sorted(sys.modules)))
"""


def test_app_imports_no_tensorflow_or_kedro(tmp_path):
    probe = PROBE.format(model=MODEL_URI, project=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    roots = {name.split(".")[0] for name in modules}
    assert "mnist_serving" in roots
    assert "ai_edge_litert" in roots
    assert roots.isdisjoint(FORBIDDEN), roots & set(FORBIDDEN)


def test_serving_environment_has_no_tensorflow_or_kedro():
    for name in FORBIDDEN:
        assert importlib.util.find_spec(name) is None, f"{name} is installed"
