"""CPU added per prediction by the drift features and windows, measured in-process.

Run from the repository root after `make -C serving install`:

    serving/.venv/bin/python benchmarks/monitoring/bench_drift_cpu.py

The serving path of one image is preprocess -> model -> monitor. This compares,
on the 200 MNIST test images of serving's fixtures (28x28) and on the same
digits as 280x280 scans:
  * before: `grays_to_mnist(gray)` alone, which is the preprocessing without
    the drift block (the code before drift monitoring);
  * after: `grays_to_mnist(gray, features)` plus `DriftTracker.observe`;
and prints the CPU time (process_time) per prediction of each and the
difference, each the least of --rounds interleaved rounds (the round least
disturbed by other work, as timeit advises), then the drift work alone (the
features of one 28x28 input, and one observe call) and the CPU of one scrape
of the drift gauges (collect). On a busy machine the whole-path difference is
noisy; the parts alone are steadier.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "serving" / "tests"))

from conftest import MODEL_URI, make_settings  # noqa: E402
from mnist_serving.imaging.preprocess import (  # noqa: E402
    IMAGE_FEATURES,
    grays_to_mnist,
    image_features,
)
from mnist_serving.model.holder import ModelHolder  # noqa: E402
from mnist_serving.monitoring.drift import DriftTracker  # noqa: E402

FIXTURES = ROOT / "serving" / "tests" / "fixtures"


def per_call_us(work, items: list, repeat: int) -> float:
    """CPU microseconds per call of `work(item)`, over `repeat` passes of `items`."""
    started = time.process_time()
    for _ in range(repeat):
        for item in items:
            work(item)
    return (time.process_time() - started) / (repeat * len(items)) * 1e6


def measure(grays: list[np.ndarray], rounds: int, repeat: int) -> dict[str, float]:
    """Median before/after CPU per prediction, and one scrape's CPU."""
    settings = make_settings(model_uri=MODEL_URI, drift_window=1000)
    holder = ModelHolder()
    model = holder.load(settings)
    assert model is not None, holder.reason  # noqa: S101
    tracker = DriftTracker(holder, settings)
    probabilities = model.predict(np.stack([grays_to_mnist(g[None])[0] for g in grays]))
    rows = [probabilities[i : i + 1] for i in range(len(grays))]
    items = list(zip(grays, rows, strict=True))

    def before(item: tuple[np.ndarray, np.ndarray]) -> None:
        grays_to_mnist(item[0][None])

    def after(item: tuple[np.ndarray, np.ndarray]) -> None:
        features = np.empty((1, len(IMAGE_FEATURES)))
        grays_to_mnist(item[0][None], features)
        tracker.observe(model, features, item[1])

    befores, afters = [], []
    for _ in range(rounds):
        befores.append(per_call_us(before, items, repeat))
        afters.append(per_call_us(after, items, repeat))
    scrape = min(
        per_call_us(lambda _: list(tracker.collect()), [None], 200)
        for _ in range(rounds)
    )
    features = np.empty((1, len(IMAGE_FEATURES)))
    fields = [(grays_to_mnist(g[None])[0] * 255.0, g.shape) for g in grays]
    parts = min(
        per_call_us(
            lambda item: image_features(item[0], (4, 24, 4, 24), item[1]),
            fields,
            repeat,
        )
        for _ in range(rounds)
    )
    observe = min(
        per_call_us(lambda row: tracker.observe(model, features, row), rows, repeat)
        for _ in range(rounds)
    )
    b, a = min(befores), min(afters)
    return {
        "before": b,
        "after": a,
        "added": a - b,
        "scrape": scrape,
        "features": parts,
        "observe": observe,
    }


def main() -> None:
    """Print the figures for 28x28 images and for 280x280 scans."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    images = np.load(FIXTURES / "mnist_test_sample.npz")["images"]
    small = [image.astype(np.float32) for image in images]
    large = [np.kron(image, np.ones((10, 10), np.float32)) for image in small]
    for name, grays in (("28x28", small), ("280x280", large)):
        found = measure(grays, args.rounds, args.repeat)
        print(
            f"{name}: preprocessing {found['before']:.1f} us/prediction before, "
            f"{found['after']:.1f} us with drift features and windows: "
            f"+{found['added']:.1f} us CPU per prediction (least of "
            f"{args.rounds} rounds); the drift work alone: features "
            f"{found['features']:.1f} us + observe {found['observe']:.1f} us; "
            f"one scrape of the drift gauges {found['scrape']:.0f} us"
        )


if __name__ == "__main__":
    main()
