"""Decode costly images in a child process that is stopped at a CPU-time budget.

Pillow's decoders run in C and cannot be interrupted from Python, so a thread
cannot be given a budget: the input limits (pixels, bytes, JPEG scans) bound
what one image can cost, and this bounds it again whatever an image finds that
they miss. Each job gets a fresh child with RLIMIT_CPU set to the budget: the
kernel stops it there (SIGXCPU), and a wall-clock limit catches a child that
waits instead of computing. A child also gives its decoding memory back to the
system as it exits.

The children are forked by a small helper process (`python -m` this module),
single-threaded and with Pillow and NumPy already imported, so a child starts
in a few ms and forking never copies the server's threads. multiprocessing's
forkserver would do the same but, in Python 3.11, runs the program's main
module again in every child (its "__main__" preload never takes effect): about
a second of imports per image under mnist-serve. ProcessPoolExecutor is no
better here: one worker killed at its budget breaks the whole pool.
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mnist_serving.core.errors import InvalidInputError, ServingError

log = logging.getLogger(__name__)
T = TypeVar("T")
CHILD_NICE = 10  # as the image threads: the event loop's requests come first
WALL_FACTOR = 10  # a child may take this many times its CPU budget in wall time
_PID = struct.Struct("!Q")
_BUDGET = struct.Struct("!I")


class DecodeBudgetError(InvalidInputError):
    """The image needed more CPU time to decode than its budget."""


def _budget_error(what: str, cpu_seconds: int) -> DecodeBudgetError:
    return DecodeBudgetError(
        f"{what} needs more than {cpu_seconds} s of CPU time to decode (the "
        "DECODE_CPU_SECONDS budget); send a PNG, or a baseline (not progressive) "
        "JPEG, of a smaller image"
    )


class DecodeProcesses:
    """The helper that forks one child per job; started on first use, restarted
    if it has died."""

    def __init__(self) -> None:
        """Start nothing yet."""
        self._helper: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the helper unless it runs (it imports Pillow and NumPy)."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._helper is not None and self._helper.poll() is None:
            return
        if self._control is not None:
            self._control.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The server's import path, so that a child finds what the server would.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        with theirs:
            self._helper = subprocess.Popen(  # noqa: S603 - this interpreter, this module
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self._control = ours

    def _connect(self, cpu_seconds: int) -> socket.socket:
        """A socket to a new child with `cpu_seconds` of CPU time."""
        mine, theirs = socket.socketpair()
        with theirs, self._lock:
            for attempt in range(2):
                self._start_locked()
                assert self._control is not None  # noqa: S101 - set just above
                try:
                    socket.send_fds(
                        self._control, [_BUDGET.pack(cpu_seconds)], [theirs.fileno()]
                    )
                    return mine
                except OSError:  # the helper has died: start another, once
                    if attempt:
                        mine.close()
                        raise
                    if self._helper is not None:
                        self._helper.kill()
                        self._helper.wait()
        raise AssertionError("unreachable")  # pragma: no cover

    def run(
        self, function: Callable[..., T], *args: Any, cpu_seconds: int, what: str
    ) -> T:
        """`function(*args)` in a fresh child with `cpu_seconds` of CPU time.

        Blocks the calling (worker) thread until the child answers. The child's
        ServingError is raised here as it was; a child stopped at its budget, or
        after WALL_FACTOR times it in wall time, is a DecodeBudgetError (422)
        naming `what` and the budget.
        """
        deadline = time.monotonic() + cpu_seconds * WALL_FACTOR
        with self._connect(cpu_seconds) as conn:
            conn.sendall(pickle.dumps((function, args), pickle.HIGHEST_PROTOCOL))
            conn.shutdown(socket.SHUT_WR)
            reply = _receive(conn, deadline)
        if reply is None:
            raise _budget_error(what, cpu_seconds)
        if len(reply) < _PID.size:  # no child was forked: the server's fault
            raise RuntimeError(
                "the image decoding helper process did not start a child; see the "
                "log for why it failed"
            )
        try:
            done, value = pickle.loads(reply[_PID.size :])  # noqa: S301 - our child
        except (pickle.UnpicklingError, EOFError, ValueError):  # it died mid-way
            _kill(_PID.unpack_from(reply)[0])
            raise _budget_error(what, cpu_seconds) from None
        if done:
            return value
        raise value

    def close(self) -> None:
        """Stop the helper; children in flight end with their jobs."""
        with self._lock:
            if self._control is not None:
                self._control.close()
                self._control = None
            if self._helper is not None:
                self._helper.kill()
                self._helper.wait()
                self._helper = None


def _receive(conn: socket.socket, deadline: float) -> bytes | None:
    """Everything the child sends until it closes, or None past the deadline."""
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(1 << 20)
        except TimeoutError:
            break
        except ConnectionResetError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    reply = b"".join(chunks)
    if len(reply) >= _PID.size:
        _kill(_PID.unpack_from(reply)[0])
    return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it has ended
        pass


def _child(conn: socket.socket, cpu_seconds: int) -> None:
    """In the forked child: budget, job in, answer out."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file when stopped
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    current = os.getpriority(os.PRIO_PROCESS, 0)  # the helper's, from its starter
    os.setpriority(os.PRIO_PROCESS, 0, max(current, CHILD_NICE))
    conn.sendall(_PID.pack(os.getpid()))
    job = b"".join(iter(lambda: conn.recv(1 << 20), b""))
    try:
        function, args = pickle.loads(job)  # noqa: S301 - from our own server
        answer: tuple[bool, Any] = (True, function(*args))
    except ServingError as exc:  # the client's fault: its 4xx, as raised
        answer = (False, exc)
    except Exception as exc:  # a bug: a 500 in the server, with its text
        answer = (False, RuntimeError(f"{type(exc).__name__}: {exc}"))
    conn.sendall(pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))


def serve(control: socket.socket) -> None:
    """The helper's loop: fork a child for each socket the server sends."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, _BUDGET.size, 1)
        except OSError:
            return
        if not message or not fds:  # the server has gone
            return
        (cpu_seconds,) = _BUDGET.unpack(message)
        try:
            pid = os.fork()
        except OSError as exc:  # no process to spare: this job fails, not the helper
            log.error("the image decoding helper cannot fork a child: %s", exc)
            os.close(fds[0])
            continue
        if pid == 0:
            code = 0
            try:
                control.close()
                with socket.socket(fileno=fds[0]) as conn:
                    _child(conn, cpu_seconds)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(fds[0])


if __name__ == "__main__":
    import mnist_serving.imaging.decode  # noqa: F401 - loaded once, shared by children

    serve(socket.socket(fileno=int(sys.argv[1])))
