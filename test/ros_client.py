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

    def call(self, client, request, resend_after: float = 5.0):
        """One request; sent again while unanswered, since DDS can drop the first response.

        `wait_for_service` returns once this side has matched the server, but the server may not yet
        have matched our response reader: Fast DDS then waits 100 ms and drops the response
        (ros2/rmw_fastrtps#390), which a loaded machine hits on a call made right after discovery.
        The node's services are idempotent, so the first answer to any copy is the answer.
        """
        assert client.wait_for_service(timeout_sec=TIMEOUT), f"{client.srv_name} never appeared"
        futures = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            futures.append(client.call_async(request))
            if self.spin_until(lambda: any(f.done() for f in futures), min(resend_after, deadline - time.monotonic())):
                return next(f for f in futures if f.done()).result()
        raise AssertionError(f"no response from {client.srv_name} in {TIMEOUT:.0f} s ({len(futures)} requests)")

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
