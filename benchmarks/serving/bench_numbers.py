"""Number-reading benchmarks: accuracy on composed numbers, latency and throughput.

Run from the repository root with the ROOT virtual environment (`make install`:
it holds the training project, which composes the numbers, and the serving
package), and wrk from Debian:

    .venv/bin/python benchmarks/serving/bench_numbers.py [--model-uri PATH]

Prints, for the model at --model-uri (default: serving's small fixture model):
  * number_test_exact, the touching subset's exact rate and digit accuracy on
    --count numbers of 2-12 digits composed from the official MNIST test
    digits (the training pipeline's own set, read by serving's reader), or,
    with --digits train, from the 60,000 official training digits with
    another seed: the set to tune the segmentation on, so that the test
    figure stays unseen; the exact rate on numbers without a touching pair; the
    time one reading takes in-process (p50); how many numbers some split of
    the candidate crops would read right, every mark cut as finely as the
    reader's second look cuts (the most a better score could reach with those
    cuts: below it, the cuts are what fails); and for each
    review band the share of numbers routed to it and the share of those read
    wrong; with --touching-digit D, the same on numbers of 3-5 digits whose
    touching pair holds D (1: a narrow digit against its neighbour);
  * POST /predict-number of one 6-digit number (raw PNG body) on a real
    mnist-serve with one uvicorn worker on 127.0.0.1: p50 at 1 client and
    numbers/s at 32 connections (wrk), with errors.
The machine is shared: timings vary between runs; use --repeat for a range.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import (
    DEFAULT_MODEL,
    free_port,
    measure,
    png_bytes,
    run_wrk,
    server,
    wrk_script,
)
from mnist_serving.core.config import Settings
from mnist_serving.core.errors import ServingError
from mnist_serving.imaging.decode import open_image
from mnist_serving.imaging.preprocess import grays_to_mnist
from mnist_serving.imaging.segment import (
    EVERY_MARK,
    MAX_ASPECT,
    Segmentation,
    segment_gray,
    work_image,
)
from mnist_serving.model.card import digit_probabilities
from mnist_serving.model.number_reader import read_number_image
from mnist_serving.model.review import number_review

from mnist_mlops.datasets.packaged_mnist import (
    locate_packaged_mnist,
    read_packaged_mnist,
)
from mnist_mlops.modeling.number_set import (
    ComposedNumber,
    compose_number,
    compose_numbers,
    number_metrics,
    to_png,
)
from mnist_mlops.modeling.serving_view import litert_predictor

OFFICIAL_TEST_ROWS = 10_000
SEED = 20261213  # conf/base/parameters_training.yml: training.numbers.seed
TUNING_SEED = 7  # numbers composed from the training digits, for tuning
BENCH_DIGITS = 6


def official_digits(part: str) -> tuple[np.ndarray, np.ndarray]:
    """The official "test" (10,000) or "train" (60,000) digits and labels."""
    table = read_packaged_mnist(locate_packaged_mnist())
    split = len(table) - OFFICIAL_TEST_ROWS
    table = table.iloc[split:] if part == "test" else table.iloc[:split]
    images = table.iloc[:, 1:].to_numpy(np.uint8).reshape(-1, 28, 28)
    return images, table["label"].to_numpy()


def model_file(uri: str) -> Path:
    """The .tflite file of a model path or of its Kedro-versioned folder."""
    path = Path(uri)
    if path.is_file():
        return path
    return sorted(path.glob("*/*.tflite"))[-1]


def readable(seg: Segmentation, digits: list[int], label: str) -> bool:
    """Whether some split of the candidates reads `label`: what a perfect score
    could reach with these cuts, the ceiling of the segmentation's candidates.
    """
    ends = {0}
    for want in label:
        ends = {
            end
            for (first, end), digit in zip(seg.segments, digits, strict=True)
            if first in ends and digit == int(want)
        }
    return len(seg.atoms) in ends


def touching_numbers(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int, digit: int
) -> list[ComposedNumber]:
    """`count` numbers of 3-5 digits, each with one touching pair holding `digit`
    (on either side): the pairs the composed set has too few of to measure.
    """
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(labels == digit)
    numbers = []
    for _ in range(count):
        size = int(rng.integers(3, 6))
        picks = rng.choice(len(images), size=size, replace=False)
        at = int(rng.integers(0, size - 1))
        picks[at + int(rng.integers(0, 2))] = rng.choice(pool)
        image = compose_number(images[picks], at, rng)
        label = "".join(str(int(d)) for d in labels[picks])
        numbers.append(ComposedNumber(image, label, True))
    return numbers


def accuracy(model: bytes, numbers: list[ComposedNumber]) -> dict:
    """The composed set's figures, as the training pipeline computes them, plus
    each review band's share of the numbers and the share of those read wrong.
    """
    count = len(numbers)
    predict, settings = litert_predictor(model), Settings(model_uri="unused")
    readings, bands, seconds, reachable = [], [], [], []
    for number in numbers:
        data = to_png(number)
        started = time.perf_counter()
        try:
            reading = read_number_image(data, predict, 20, 16_777_216)
        except ServingError:
            readings.append(None)
            bands.append("refused")
            continue
        finally:
            seconds.append(time.perf_counter() - started)
        readings.append(reading.number)
        bands.append(number_review(reading.confidence, reading.doubts, settings))
        # Every mark cut as finely as the second look cuts the doubted ones: the
        # candidates of either look are (nearly all) among these. So many that
        # serving's candidate limit for 20 digits would refuse some: 200 here.
        image = open_image(data, 16_777_216, max_aspect=MAX_ASPECT)
        seg = segment_gray(work_image(image), image.size, 200, EVERY_MARK)
        outputs = predict(grays_to_mnist(seg.crops))
        digits = digit_probabilities(outputs).argmax(axis=1).tolist()
        reachable.append(readable(seg, digits, number.label))
    figures = number_metrics(numbers, readings)
    figures["read_p50_ms"] = round(float(np.median(seconds)) * 1000, 2)
    figures["mean_digits"] = round(float(np.mean([len(n.label) for n in numbers])), 2)
    right = [r == n.label for n, r in zip(numbers, readings, strict=True)]
    apart = [ok for ok, n in zip(right, numbers, strict=True) if not n.touching]
    figures["apart_exact"] = float(np.mean(apart)) if apart else 0.0
    read = [n for n, r in zip(numbers, readings, strict=True) if r is not None]
    touching = [ok for ok, n in zip(reachable, read, strict=True) if n.touching]
    figures["reachable"] = float(np.mean(reachable)) if reachable else 0.0
    figures["touching_reachable"] = float(np.mean(touching)) if touching else 0.0
    for band in ("auto_approved", "secondary_verification", "manual_review"):
        hits = [ok for ok, b in zip(right, bands, strict=True) if b == band]
        figures[band] = (len(hits) / count, 1 - float(np.mean(hits)) if hits else 0.0)
    return figures


def six_digit_png(images: np.ndarray) -> bytes:
    """One 6-digit number of official test digits, dark on light, as a PNG."""
    rng = np.random.default_rng(SEED)
    digits = images[rng.choice(len(images), BENCH_DIGITS, replace=False)]
    return png_bytes(255 - compose_number(digits, None, rng))


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-uri", default=str(DEFAULT_MODEL))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--digits",
        choices=("test", "train"),
        default="test",
        help="compose from the official test digits (the reported figure) or "
        "from the training digits (to tune on), then stop after the accuracy",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="compose with this seed instead (default: the pipeline's seed for "
        f"test, {TUNING_SEED} for train); another seed on train checks that "
        "what was tuned holds on numbers the tuning never saw",
    )
    parser.add_argument(
        "--touching-digit",
        type=int,
        choices=range(10),
        help="instead, numbers of 3-5 digits whose touching pair holds this "
        "digit (1: a narrow digit against its neighbour); stops after the accuracy",
    )
    args = parser.parse_args()
    images, labels = official_digits(args.digits)
    model = model_file(args.model_uri).read_bytes()
    seed = SEED if args.digits == "test" else TUNING_SEED
    seed = seed if args.seed is None else args.seed
    if args.touching_digit is None:
        numbers = compose_numbers(images, labels, args.count, seed)
    else:
        numbers = touching_numbers(
            images, labels, args.count, seed, args.touching_digit
        )
    figures = accuracy(model, numbers)
    print(f"model: {model_file(args.model_uri)}; {args.digits} digits, seed {seed}")
    print(
        f"composed numbers: {figures['number_test_samples']} "
        f"(mean {figures['mean_digits']} digits), "
        f"number_test_exact {figures['number_test_exact']:.4f}, touching "
        f"{figures['number_test_touching_exact']:.4f} "
        f"({figures['number_test_touching_samples']}), digit accuracy "
        f"{figures['number_test_digit_accuracy']:.4f}, refused "
        f"{figures['number_test_refused']}, no touching pair "
        f"{figures['apart_exact']:.4f}, in-process read p50 "
        f"{figures['read_p50_ms']} ms"
    )
    print(
        "  a split reading the number exists among the candidates (the ceiling "
        f"of a perfect score): {figures['reachable']:.4f} of the numbers read, "
        f"touching {figures['touching_reachable']:.4f}"
    )
    for band in ("auto_approved", "secondary_verification", "manual_review"):
        share, wrong = figures[band]
        print(f"  review {band}: {share:.1%} of the numbers, {wrong:.1%} of them wrong")
    if args.digits == "train" or args.touching_digit is not None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        with server(args.model_uri, port, work / "server.log") as (proc, _):
            base = f"http://127.0.0.1:{port}"
            script = wrk_script(
                work, "/predict-number", six_digit_png(images), "image/png"
            )
            run_wrk(base, script, args.connections, 2)  # warm-up
            for _ in range(args.repeat):
                one = measure(proc, base, script, 1, args.seconds)
                many = measure(proc, base, script, args.connections, args.seconds)
                print(
                    f"/predict-number, {BENCH_DIGITS} digits: p50 at 1 client "
                    f"{one['p50_ms']:.2f} ms; {args.connections} connections "
                    f"{many['rps']:.0f} numbers/s, p99 {many['p99_ms']:.1f} ms, "
                    f"errors {one['errors'] + many['errors']}, server CPU "
                    f"{many.get('server_cpu_us', '?')} us/number"
                )


if __name__ == "__main__":
    main()
