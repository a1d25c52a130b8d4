"""SIGINT and SIGTERM during a pipeline raise RunInterrupted; handlers come back."""

from __future__ import annotations

import signal

import pytest
from kedro.pipeline import Node

from mnist_mlops.errors import RunInterrupted
from mnist_mlops.interrupts import SIGNALS, InterruptHook


def identity(x: int) -> int:
    """A node function."""
    return x


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_during_a_node_raises_and_restores_the_handlers(
    sig: signal.Signals,
) -> None:
    before = {s: signal.getsignal(s) for s in SIGNALS}
    hook = InterruptHook()
    hook.before_pipeline_run()
    hook.before_node_run(Node(identity, "x", "y", name="train_model_node"))
    with pytest.raises(RunInterrupted) as err:
        signal.raise_signal(sig)
    assert str(err.value).startswith(
        f"The run stopped on {sig.name} during node 'train_model_node'."
    )
    assert "add its `--from-nodes` argument to the same command" in str(err.value)
    assert {s: signal.getsignal(s) for s in SIGNALS} == before  # a 2nd Ctrl-C: default
    hook.on_pipeline_error()  # the session's error path: nothing left to restore


def test_handlers_are_restored_after_a_run() -> None:
    before = {s: signal.getsignal(s) for s in SIGNALS}
    hook = InterruptHook()
    hook.before_pipeline_run()
    assert signal.getsignal(signal.SIGINT) != before[signal.SIGINT]
    hook.after_pipeline_run()
    assert {s: signal.getsignal(s) for s in SIGNALS} == before
