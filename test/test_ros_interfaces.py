"""The rosidl-built interfaces over real DDS: one process serves SpatialQuery/Localize, this
test process calls them, receives the objects (transient local) and /tf."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require_ros
from loc3r_core.world.scene_io import SceneFolder
from ros_client import RosClient

pytestmark = pytest.mark.ros
HELPER = Path(__file__).parent / "ros_helpers" / "ground_truth_server.py"


@pytest.fixture
def ros():
    require_ros()
    client = RosClient()
    yield client
    client.close()


@pytest.fixture
def server(scene_dirs):
    process = subprocess.Popen([sys.executable, str(HELPER), str(scene_dirs[0])],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield SceneFolder(scene_dirs[0])
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, f"server exited with {process.returncode}: {stderr}"
    assert "Traceback" not in stderr, stderr


def test_spatial_query_is_served_and_called_over_dds(ros, server):
    from loc3r.srv import SpatialQuery
    from loc3r_ros.convert import planar_pose_from_msg

    client = ros.node.create_client(SpatialQuery, "/loc3r_gt/query")
    situation = server.situations[0]
    asked = 0
    for question in situation.questions:
        response = ros.call(client, SpatialQuery.Request(question=question.question, situation=situation.text))
        assert response.success, response.message
        assert response.answer == question.answer and response.confidence == pytest.approx(1.0)
        x, y, yaw, covariance = planar_pose_from_msg(response.asker_pose)
        assert response.asker_pose.header.frame_id == "map"
        assert (x, y) == pytest.approx(tuple(situation.position), abs=1e-9)
        assert yaw == pytest.approx(situation.yaw, abs=1e-9)
        variances = (covariance[0, 0], covariance[1, 1], covariance[5, 5])
        assert variances == pytest.approx((0.1**2, 0.2**2, math.radians(5) ** 2))
        asked += 1
    assert asked >= 2

    refused = ros.call(client, SpatialQuery.Request(question="   ", situation=situation.text))
    assert not refused.success and refused.message == "empty question"
    unknown = ros.call(client, SpatialQuery.Request(question="Where am I?", situation="I am on the moon."))
    assert not unknown.success and "unknown situation" in unknown.message


def test_localize_objects_and_tf_arrive(ros, server):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from loc3r.msg import SceneObjectArray
    from loc3r.srv import Localize
    from loc3r_ros.convert import matrix_from_quaternion, planar_pose_from_msg

    got: dict = {}
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    ros.node.create_subscription(SceneObjectArray, "/loc3r_gt/objects", lambda m: got.setdefault("objects", m), latched)
    ros.node.create_subscription(TFMessage, "/tf", lambda m: got.setdefault("tf", m), 10)

    situation = server.situations[-1]
    response = ros.call(ros.node.create_client(Localize, "/loc3r_gt/localize"),
                    Localize.Request(situation=situation.text))
    assert response.success
    assert planar_pose_from_msg(response.pose)[:2] == pytest.approx(tuple(situation.position), abs=1e-9)

    assert ros.spin_until(lambda: {"objects", "tf"} <= set(got)), f"received only {sorted(got)}"
    objects = got["objects"]
    assert objects.header.frame_id == "map"
    assert sorted(o.label for o in objects.objects) == sorted(o.label for o in server.scene.objects)
    first = server.scene.objects[0]
    sent = next(o for o in objects.objects if o.id == first.id)
    assert (sent.position.x, sent.size.z, sent.yaw) == pytest.approx((first.center[0], first.size[2], first.yaw))
    transform = got["tf"].transforms[0]
    assert (transform.header.frame_id, transform.child_frame_id) == ("map", "first_camera")
    first = server.scene.frames[0].T_world_camera
    assert transform.transform.translation.z == pytest.approx(first[2, 3])
    np.testing.assert_allclose(matrix_from_quaternion(transform.transform.rotation), first[:3, :3], atol=1e-9)


def test_rotation_conversions_round_trip():
    require_ros()
    from loc3r_core.geometry import camera_rotation
    from loc3r_ros.convert import (
        matrix_from_quaternion,
        quaternion_from_matrix,
        quaternion_from_yaw,
        yaw_from_quaternion,
    )

    rng = np.random.default_rng(0)
    for yaw, pitch, roll in [(0.0, 0.0, 0.0), (3.1, -1.5, 0.2), (-2.0, 1.4, -3.0), *rng.uniform(-3, 3, (20, 3))]:
        rotation = camera_rotation(yaw, pitch, roll)
        q = quaternion_from_matrix(rotation)
        assert q.x**2 + q.y**2 + q.z**2 + q.w**2 == pytest.approx(1.0)
        np.testing.assert_allclose(matrix_from_quaternion(q), rotation, atol=1e-12)
    assert yaw_from_quaternion(quaternion_from_yaw(2.5)) == pytest.approx(2.5)
    # yaw_from_quaternion is the heading of the frame's x axis: for an OpenCV camera looking
    # along world x, that axis points right, to -y.
    assert yaw_from_quaternion(quaternion_from_matrix(camera_rotation(0.0, 0.0))) == pytest.approx(-math.pi / 2)
