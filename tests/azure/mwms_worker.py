"""One worker of a 2-process MultiWorkerMirroredStrategy run (test_distributed.py).

Usage: python -m tests.azure.mwms_worker <index> <host:port,host:port> <data.npz> <out>

Sets TF_CONFIG as Azure ML does for a TensorFlow job, records which rows the
strategy deals to this worker, then trains with the project's loop under that
same strategy (what `train_model` does when `training.distributed.workers` > 1;
one strategy per process, as TensorFlow wants) and saves weights and history.

Each worker gets the sample in its own order (seeded by its index), so the two
see different batches: they can only end with the same weights if every step's
gradients were combined across them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np


def main(index: int, hosts: list[str], data: Path, out: Path) -> None:
    """Train as worker `index` of `hosts`; write <out>/worker<index>.npz."""
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
    )
    import tensorflow as tf  # noqa: PLC0415 - after TF_CONFIG

    from mnist_mlops.modeling.loop import distribute, train  # noqa: PLC0415
    from mnist_mlops.params import TrainingParams  # noqa: PLC0415

    arrays = np.load(data)
    order = np.random.default_rng(index).permutation(len(arrays["y"]))
    x, y = arrays["x"][order], arrays["y"][order]
    cfg = TrainingParams(epochs=2, batch_size=64, distributed={"workers": len(hosts)})

    # The same input pipeline as training, labelled with row numbers instead.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    rows = np.arange(len(x))
    seen = [
        local.numpy()
        for _, batch, _ in distribute(x, rows, cfg, strategy)
        for local in strategy.experimental_local_results(batch)
    ]
    model, history = train(x, y, cfg, strategy)
    np.savez(
        out / f"worker{index}.npz",
        rows=np.concatenate(seen),
        replicas=strategy.num_replicas_in_sync,
        history=json.dumps(history),
        **{f"w{i}": w for i, w in enumerate(model.get_weights())},
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2].split(","), Path(sys.argv[3]), Path(sys.argv[4]))
