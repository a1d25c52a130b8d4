"""The exploration notebook runs headless; kedro-viz builds and shows every node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from kedro.framework.startup import bootstrap_project

from mnist_mlops.pipeline_registry import register_pipelines


@pytest.mark.slow
def test_exploration_notebook_runs_on_a_small_sample(project: Path) -> None:
    notebook = project / "notebooks" / "exploration.ipynb"
    output = project / "notebooks" / "executed.ipynb"
    papermill.execute_notebook(
        str(notebook),
        str(output),
        cwd=str(notebook.parent),
        kernel_name="python3",
        parameters={"project_path": str(project), "sample_rows": 500},
        progress_bar=False,
    )
    cells = nbformat.read(output, as_version=4).cells
    images = [
        o
        for c in cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 3  # sample digits, class balance, mean images
    text = "".join(
        o.get("text", "")
        for c in cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "2,000 rows, 785 columns" in text  # read through the project's catalog


@pytest.mark.slow
def test_kedro_viz_build_contains_every_node(project: Path) -> None:
    subprocess.run(
        [Path(sys.executable).parent / "kedro", "viz", "build"],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
    )
    main = json.loads((project / "build" / "api" / "main").read_text())
    bootstrap_project(project)
    shown = {n["name"] for n in main["nodes"] if n["type"] == "task"}
    expected = {n.name for n in register_pipelines()["__default__"].nodes}
    assert expected == shown
    assert {"data_processing", "training"} <= {p["id"] for p in main["pipelines"]}
    layers = {n.get("layer") for n in main["nodes"] if n["type"] == "data"}
    assert {"raw", "model_input", "models", "reporting"} <= layers
