"""Ctrl-C stops a loc3r process between callbacks (loc3r_ros.interrupt), never inside rclpy: CI once
caught a KeyboardInterrupt half-way through rclpy's Task.__init__, whose __del__ then printed a
traceback on the way out."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from conftest import require_ros
from ros_client import TIMEOUT

pytestmark = pytest.mark.ros

# A node whose 1 ms timer keeps the executor making Tasks, spun the way loc3r_node spins: every
# moment of rclpy's loop is exposed to the signal, so a KeyboardInterrupt or a shutdown from
# rclpy's signal thread would show up here as a traceback or a non-zero exit.
SPIN_A_BUSY_NODE = """
import rclpy
from rclpy.executors import MultiThreadedExecutor
from loc3r_ros.interrupt import init_stopping_on_sigint, spin_until_stopped

stop = init_stopping_on_sigint()
node = rclpy.create_node("loc3r_interrupt_test")
ticks = []


def tick():
    ticks.append(1)
    if len(ticks) == 100:  # the executor is well into its loop
        print("ready", flush=True)


node.create_timer(0.001, tick)
executor = MultiThreadedExecutor(num_threads=2)
executor.add_node(node)
spin_until_stopped(executor, stop)
executor.shutdown(timeout_sec=1.0)
node.destroy_node()
rclpy.try_shutdown()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("attempt", range(5))
def test_sigint_stops_a_busy_spin_loop_cleanly(attempt):
    require_ros()
    process = subprocess.Popen([sys.executable, "-c", SPIN_A_BUSY_NODE],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert stdout.strip() == "stopped"
    assert "Traceback" not in stderr, stderr
