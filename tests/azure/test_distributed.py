"""Two TensorFlow workers on loopback (TF_CONFIG) train one model together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.azure.azurite import free_port
from tests.azure.steps import minimal_env
from tests.conftest import ROOT

WORKERS = 2
TIMEOUT_S = 240


@pytest.mark.slow
def test_two_workers_train_one_model_on_disjoint_shards(
    sample_table: pd.DataFrame, tmp_path: Path
) -> None:
    train = sample_table.head(1700)
    x = (train.iloc[:, 1:].to_numpy().reshape(-1, 28, 28, 1) / 255).astype("float32")
    np.savez(tmp_path / "data.npz", x=x, y=train["label"].to_numpy())
    hosts = ",".join(f"127.0.0.1:{free_port()}" for _ in range(WORKERS))
    env = minimal_env(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    data = str(tmp_path / "data.npz")
    worker = [sys.executable, "-m", "tests.azure.mwms_worker"]
    procs = [
        subprocess.Popen(
            [*worker, str(i), hosts, data, str(tmp_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(WORKERS)
    ]
    try:
        logs = [proc.communicate(timeout=TIMEOUT_S)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log[-3000:]

    results = [np.load(tmp_path / f"worker{i}.npz") for i in range(WORKERS)]
    shards = [set(r["rows"].tolist()) for r in results]
    assert all(int(r["replicas"]) == WORKERS for r in results)
    assert shards[0].isdisjoint(shards[1]), "each worker sees its own examples"
    assert shards[0] | shards[1] == set(range(len(x))), "together, all of them"
    weights = [[r[k] for k in sorted(r.files) if k.startswith("w")] for r in results]
    assert len(weights[0]) == 8  # 2 conv + 2 dense layers, kernel and bias each
    for mine, theirs in zip(*weights, strict=True):
        np.testing.assert_array_equal(mine, theirs)  # one model, kept in sync
    # Training loss and accuracy are sums over both workers' shards, so they
    # agree; each worker validates on the tail of its own ordering.
    histories = [json.loads(str(r["history"])) for r in results]
    for key in ("loss", "accuracy"):
        assert histories[0][key] == histories[1][key]
    assert min(h["val_accuracy"][-1] for h in histories) > 0.5, "the model learned"
