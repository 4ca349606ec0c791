"""Test helper: a node that serves loc3r's interfaces from a generated scene's ground truth.

    python ground_truth_server.py SCENE_DIR

Serves /loc3r_gt/query (loc3r/srv/SpatialQuery) and /loc3r_gt/localize (loc3r/srv/Localize)
for the scene's own situations and questions, publishes its objects on /loc3r_gt/objects
(reliable, transient local) and map -> first_camera on /tf. Stops cleanly on SIGINT.
"""

from __future__ import annotations

import math
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from loc3r.msg import SceneObjectArray
from loc3r.srv import Localize, SpatialQuery
from loc3r_core.world.scene_io import SceneFolder
from loc3r_ros.convert import planar_pose_msg, scene_object_array_msg, scene_object_msg, transform_msg
from loc3r_ros.interrupt import init_stopping_on_sigint, spin_until_stopped

SIGMA_XY = (0.1, 0.2)  # what the oracle reports as its standard deviations, m
SIGMA_YAW = math.radians(5)


class GroundTruthServer(Node):
    def __init__(self, scene_dir: str) -> None:
        super().__init__("ground_truth_server", namespace="loc3r_gt")
        folder = SceneFolder(scene_dir)
        self.scene = folder.scene
        self.situations = {s.text: s for s in folder.situations}
        self.create_service(SpatialQuery, "query", self.on_query)
        self.create_service(Localize, "localize", self.on_localize)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        objects = [scene_object_msg(o.id, o.label, 1.0, o.center, o.size, o.yaw) for o in self.scene.objects]
        self.create_publisher(SceneObjectArray, "objects", latched).publish(
            scene_object_array_msg(objects, "map", self.get_clock().now().to_msg()))
        self.tf = self.create_publisher(TFMessage, "/tf", 10)
        self.create_timer(0.1, self.publish_tf)

    def publish_tf(self) -> None:
        pose = self.scene.frames[0].T_world_camera
        stamp = self.get_clock().now().to_msg()
        self.tf.publish(TFMessage(transforms=[transform_msg(pose, "map", "first_camera", stamp)]))

    def _place(self, text: str, response: SpatialQuery.Response | Localize.Response, field: str) -> bool:
        situation = self.situations.get(text)
        if situation is None:
            response.success, response.message = False, f"unknown situation: {text!r}"
            return False
        setattr(response, field, planar_pose_msg(*situation.position, situation.yaw, SIGMA_XY, SIGMA_YAW, "map",
                                                 self.get_clock().now().to_msg()))
        return True

    def on_query(self, request: SpatialQuery.Request, response: SpatialQuery.Response) -> SpatialQuery.Response:
        if not request.question.strip():
            response.success, response.message = False, "empty question"
            return response
        if not self._place(request.situation, response, "asker_pose"):
            return response
        situation = self.situations[request.situation]
        match = next((q for q in situation.questions if q.question == request.question), None)
        if match is None:
            response.success, response.message = False, "no ground truth for this question"
            return response
        response.success, response.answer, response.confidence = True, match.answer, 1.0
        return response

    def on_localize(self, request: Localize.Request, response: Localize.Response) -> Localize.Response:
        response.success = self._place(request.situation, response, "pose")
        return response


def main() -> int:
    stop = init_stopping_on_sigint()
    node = GroundTruthServer(sys.argv[1])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_until_stopped(executor, stop)
    except ExternalShutdownException:
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
