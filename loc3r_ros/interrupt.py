"""Ctrl-C as a request the spin loop reads between callbacks, never as something that happens
inside rclpy's own code.

Python's default handler raises KeyboardInterrupt at whatever bytecode runs next (CI caught one
half-way through rclpy's Task.__init__, whose __del__ then printed a traceback). rclpy's handler
shuts the context down from another thread instead, which races the executor between its ok()
check and building its wait set (RCLError). So rclpy installs none here, and SIGINT sets a flag.
"""

from __future__ import annotations

import signal

import rclpy
from rclpy.executors import Executor
from rclpy.signals import SignalHandlerOptions

POLL_S = 0.1  # the longest a Ctrl-C waits for the executor to look at it


class StopRequest:
    """Set by SIGINT; a Ctrl-C that comes before spinning starts (model loading) ends the spin at once."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._request)

    def _request(self, signum: int, frame: object) -> None:
        self.requested = True


def init_stopping_on_sigint(args: list[str] | None = None) -> StopRequest:
    """rclpy.init without rclpy's signal handlers, and the flag SIGINT sets in their place."""
    stop = StopRequest()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return stop


def spin_until_stopped(executor: Executor, stop: StopRequest) -> None:
    """Spin until SIGINT (or someone shutting the context down)."""
    while not stop.requested and executor.context.ok():
        executor.spin_once(timeout_sec=POLL_S)
