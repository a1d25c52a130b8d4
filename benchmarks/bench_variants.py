"""How a model reads flagged 1s, closed 4s and crossed 7s: writing MNIST lacks.

Usage (from the project root, after `make install`):
    .venv/bin/python benchmarks/bench_variants.py [--model-uri PATH] [--count N]

The official test 1s are drawn with a flag (half of them with a base too), as
many closed 4s are drawn from their strokes, and the official 7s get a bar
across their stem (`mnist_mlops.modeling.variants`), each by the drawn test
set's renderer and read back through serving's preprocessing. The same 1s,
4s, 7s and 9s drawn plainly are the comparison: a model that learns the
variants must not read the plain digits worse. Prints, for each row, the
accuracy, the wrong answers that serving would auto-approve (confidence >=
0.95) and what the wrong ones were read as.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

sys.path.insert(0, str(Path(__file__).resolve().parent / "serving"))
from bench_numbers import model_file, official_digits
from mnist_serving.model.card import digit_probabilities

from mnist_mlops.modeling import variants
from mnist_mlops.modeling.drawn import fine_skeletons
from mnist_mlops.modeling.serving_view import litert_predictor, skeleton_inputs

AUTO_APPROVE = 0.95
SEED = 20261205  # not a seed that training draws with


def main() -> None:
    """Draw each row's digits, read them with the model, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="data/06_models/mnist_cnn.tflite")
    parser.add_argument("--count", type=int, default=500, help="digits a row")
    args = parser.parse_args()
    predict = litert_predictor(model_file(args.model_uri).read_bytes())
    images, labels = official_digits("test")
    rng = np.random.default_rng(SEED)

    def skeletons_of(digit: int) -> np.ndarray:
        return fine_skeletons(
            images[labels == digit][: args.count].astype(np.float32) / 255.0
        )

    ones = skeletons_of(1)
    rows = {
        "1 with a flag (half with a base)": (
            1,
            variants.vary(ones, np.ones(len(ones), int), variants.Shares(1.0), rng),
        ),
        "4 closed at the top": (
            4,
            np.stack([variants.closed_four(rng) for _ in range(args.count)]),
        ),
        **{
            f"{digit} as MNIST writes it": (digit, skeletons_of(digit))
            for digit in (1, 4, 7, 9)
        },
        # Last, so that the rows above keep their seeds.
        "7 crossed": (
            7,
            np.stack([variants.crossed_seven(s, rng) for s in skeletons_of(7)]),
        ),
    }
    print(f"model: {model_file(args.model_uri)}")
    for i, (name, (digit, skeletons)) in enumerate(rows.items()):
        inputs = skeleton_inputs(skeletons, SEED + i)
        probabilities = digit_probabilities(predict(inputs))
        read = probabilities.argmax(axis=1)
        wrong = read != digit
        sure = wrong & (probabilities.max(axis=1) >= AUTO_APPROVE)
        misread = ", ".join(
            f"{d} x{n}" for d, n in Counter(read[wrong].tolist()).most_common(4)
        )
        print(
            f"{name:36s} accuracy {1 - wrong.mean():7.2%} of {len(read)}; "
            f"auto-approved wrong {sure.sum():3d}; read as: {misread or '-'}"
        )


if __name__ == "__main__":
    main()
