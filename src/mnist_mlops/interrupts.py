"""Ctrl-C or SIGTERM during `kedro run` fails the run as an error does: resumable."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

from mnist_mlops.errors import RunInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class InterruptHook:
    """While a pipeline runs, SIGINT (Ctrl-C) and SIGTERM raise `RunInterrupted`.

    On Ctrl-C Python raises KeyboardInterrupt, a BaseException, and SIGTERM ends
    the process at once. Kedro 1.7's runner and session catch only Exception:
    after Ctrl-C they print no resume command (`--from-nodes ...`) and skip
    `on_pipeline_error`, so kedro-mlflow leaves its run open and MLflow's exit
    handler records it as FINISHED. An Exception takes Kedro's failure path
    instead: the runner prints the resume command and kedro-mlflow ends the run
    as FAILED. What the run saved stays complete (atomic, versioned writes).

    The first signal restores the previous handlers, so a second Ctrl-C is a
    plain KeyboardInterrupt, should code that catches Exception swallow the first.
    """

    def __init__(self) -> None:
        """No handlers installed yet."""
        self._previous: dict[int, Any] = {}
        self._node: str | None = None

    @hook_impl
    def before_pipeline_run(self) -> None:
        """Install the handlers (Python allows it in the main thread only)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._raise) for sig in SIGNALS}

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        """Remember the running node, for the message."""
        self._node = node.name

    @hook_impl
    def after_pipeline_run(self) -> None:
        """Restore the previous handlers."""
        self._restore()

    @hook_impl
    def on_pipeline_error(self) -> None:
        """Restore the previous handlers."""
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def _raise(self, signum: int, frame: FrameType | None) -> None:
        self._restore()
        during = f" during node '{self._node}'" if self._node else ""
        raise RunInterrupted(
            f"The run stopped on {signal.Signals(signum).name}{during}. Files it "
            "saved are complete, each under this run's version. Resume as Kedro "
            "says above: add its `--from-nodes` argument to the same command."
        )
