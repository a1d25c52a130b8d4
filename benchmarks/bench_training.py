"""Time the pipelines on the full data and print the figures of issues #2 and #12.

Usage (from the project root, after `make install`):
    .venv/bin/python benchmarks/bench_training.py                 # default config
    .venv/bin/python benchmarks/bench_training.py --env seed      # seed config
    .venv/bin/python benchmarks/bench_training.py --only data_processing

Runs each pipeline in its own KedroSession, as `kedro run --pipeline X` would,
and prints, per pipeline, the execution time (nodes, dataset I/O, MLflow
logging) and the session time (plus framework start-up and imports), the total
wall time, and from the `metrics` that the training run saved: the accuracies
(official 10k and drawn set), the calibration errors before and after
temperature scaling, and the share and error rate of each review band.
Targets of the default run: <= 15 min wall with data processing on 2 cores,
official >= 99.5%, drawn >= 99%, ECE <= 1% on both sets, auto_approved error
<= 0.2% on the drawn set. `--env seed`: the seed configuration.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

from kedro.framework.hooks import hook_impl
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

ROOT = Path(__file__).resolve().parents[1]


class PipelineTimer:
    """Times the pipeline itself: nodes, dataset I/O and MLflow logging."""

    def __init__(self) -> None:
        """No time measured yet."""
        self.start = self.seconds = self.session_seconds = 0.0
        self.metrics: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self) -> None:
        """Start the clock once the catalog exists (imports are done)."""
        self.start = time.perf_counter()

    @hook_impl
    def after_pipeline_run(self) -> None:
        """Stop the clock."""
        self.seconds = time.perf_counter() - self.start

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        """Keep this run's metrics (the catalog versions them: another run may save)."""
        if dataset_name == "metrics":
            self.metrics = data


def run(pipeline: str, env: str | None) -> PipelineTimer:
    """Run one pipeline in a fresh session; its timer holds the times and metrics.

    The session time adds framework start-up: kedro-mlflow materialises every
    catalog entry, which imports TensorFlow (several seconds on 2 cores).
    """
    start = time.perf_counter()
    with KedroSession.create(project_path=ROOT, env=env) as session:
        timer = PipelineTimer()
        session._hook_manager.register(timer)  # benchmark-only: no public API
        session.run(pipeline_name=pipeline)
    timer.session_seconds = time.perf_counter() - start
    return timer


def main() -> None:
    """Parse arguments, run the pipelines and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=None, help="Kedro environment")
    parser.add_argument("--only", choices=["data_processing", "feedback", "training"])
    args = parser.parse_args()
    bootstrap_project(ROOT)
    start = time.perf_counter()
    # The feedback pipeline makes training's feedback arrays (empty without a
    # feedback store); it is part of the default run, so it is timed too.
    pipelines = (
        [args.only] if args.only else ["data_processing", "feedback", "training"]
    )
    timers = {name: run(name, args.env) for name in pipelines}
    total = time.perf_counter() - start
    print(f"config: {args.env or 'base (default)'}   cores: {os.cpu_count()}")
    print(f"{'pipeline':>16}  {'execution':>9}  {'session':>9}")
    for name, timer in timers.items():
        print(f"{name:>16}: {timer.seconds:7.1f} s  {timer.session_seconds:7.1f} s")
    print(f"{'total wall':>16}: {total:7.1f} s ({total / 60:.1f} min)")
    if "training" in timers:
        metrics = timers["training"].metrics
        for key in (
            "official_test_accuracy",
            "drawn_test_accuracy",
            "test_accuracy",
            "average_confidence",
            "ece_official_before",
            "ece_official_after",
            "ece_drawn_before",
            "ece_drawn_after",
        ):
            print(f"{key:>24}: {metrics[key]:.4f}")
        for name in ("official", "drawn"):
            for band, figures in metrics["review_bands"][name].items():
                print(
                    f"{name + ' ' + band:>31}: share {figures['share']:.4f}, "
                    f"error rate {figures['error_rate']:.4%} "
                    f"({figures['errors']}/{figures['count']})"
                )


if __name__ == "__main__":
    main()
