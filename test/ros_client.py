"""A test-side ROS 2 node that waits with timeouts (never bare sleeps)."""

from __future__ import annotations

import time

TIMEOUT = 30.0


class RosClient:
    """A node in its own context with its own executor; everything waits with a timeout."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("loc3r_test_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, done, timeout: float = TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return done()

    def call(self, client, request):
        assert client.wait_for_service(timeout_sec=TIMEOUT), f"{client.srv_name} never appeared"
        future = client.call_async(request)
        assert self.spin_until(future.done), f"no response from {client.srv_name}"
        return future.result()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
