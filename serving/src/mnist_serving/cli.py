"""`mnist-serve --host H --port P`: uvicorn, draining on SIGTERM."""

from __future__ import annotations

import argparse
import logging.config
import signal
import sys
import time
from types import FrameType

import uvicorn
from prometheus_client import start_http_server

from mnist_serving.core.config import get_settings
from mnist_serving.core.log_config import logging_config
from mnist_serving.main import create_app
from mnist_serving.model.holder import ModelHolder

log = logging.getLogger(__name__)
STARTUP_FAILURE = 3  # uvicorn's exit status when the app cannot start


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the shutdown a load-balanced pod needs.

    First SIGTERM: /health/ready answers 503 at once, yet requests are still
    accepted and answered for `delay` seconds while load balancers take the pod
    out; then uvicorn's graceful stop lets in-flight requests finish (up to
    --graceful-timeout) and the process exits 0. SIGINT (Ctrl+C), or SIGTERM
    while no model is served, skips the delay. A second signal stops at once.
    """

    def __init__(self, config: uvicorn.Config, holder: ModelHolder, delay: float):
        super().__init__(config)
        self.holder = holder
        self.delay = delay
        self.drain_until: float | None = None
        self._notes: list[str] = []  # logged by the event loop, not the handler

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler: only sets flags; the event loop acts on them."""
        name = signal.Signals(sig).name
        if self.should_exit or self.drain_until is not None:
            self.force_exit = self.should_exit = True
            self._captured_signals.append(sig)  # re-raised after the loop ends
            self._notes.append(f"{name} again: stopping now, cutting open requests")
            return
        self.holder.shutting_down = True
        if sig == signal.SIGTERM and self.delay > 0 and self.holder.model is not None:
            self.drain_until = time.monotonic() + self.delay
            self._notes.append(
                f"{name}: not ready any more; serving {self.delay:g} s longer while "
                "load balancers drop this instance, then stopping gracefully"
            )
        else:
            self.should_exit = True
            self._notes.append(f"{name}: stopping gracefully")

    async def on_tick(self, counter: int) -> bool:
        """Every 0.1 s: log what the handler noted, end the delay when it is up."""
        while self._notes:
            log.info(self._notes.pop(0), extra={"event": "shutdown"})
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; everything else comes from settings (environment)."""
    parser = argparse.ArgumentParser(
        prog="mnist-serve", description="Serve the MNIST digit classifier over HTTP."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8000, help="port to bind")
    parser.add_argument(
        "--graceful-timeout",
        type=int,
        default=20,
        help="seconds in-flight requests get to finish once the server stops "
        "accepting (after SIGTERM and SHUTDOWN_DELAY_SECONDS)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (slower)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Start one uvicorn worker; scale with replicas, not workers."""
    args = parse_args(argv)
    settings = get_settings()
    config = logging_config(settings.log_level)
    logging.config.dictConfig(config)
    app = create_app(settings)
    server_config = uvicorn.Config(
        app,
        # asyncio, not uvloop: under saturation uvloop showed a ~200 ms p99 tail
        # at 32 connections on loopback here, asyncio did not (benchmarks/serving).
        loop="asyncio",
        http="httptools",
        host=args.host,
        port=args.port,
        log_config=config,
        access_log=args.access_log,
        server_header=False,
        timeout_graceful_shutdown=args.graceful_timeout,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    if settings.metrics_port is not None:
        # prometheus-client's own HTTP server, in a thread: the API port, which
        # the Service exposes, then has no /metrics.
        start_http_server(settings.metrics_port, addr=args.host)
    server = DrainingServer(
        server_config, app.state.holder, settings.shutdown_delay_seconds
    )
    try:
        server.run()
    except KeyboardInterrupt:  # a second Ctrl+C, re-raised by uvicorn
        sys.exit(128 + signal.SIGINT)
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
