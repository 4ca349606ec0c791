"""The camera's mount from a robot's static transforms (static_transforms.py, floor_scale.mount_from_pose):
chains compose through any common ancestor in either direction, loops and bad transforms are refused
with a reason, and a mount survives the trip to a transform and back while a rolled, upside-down or
unjoined camera is refused."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from loc3r_core.geometry import camera_rotation, invert_pose, make_pose, rot_z
from loc3r_core.quaternions import quaternion_from_matrix
from loc3r_core.runtime.floor_scale import CameraMount, find_camera_mount, mount_from_pose, mount_pose
from loc3r_core.static_transforms import StaticTransforms


def shifted(x: float, y: float, z: float, yaw: float = 0.0) -> np.ndarray:
    return make_pose(rot_z(yaw), np.array([x, y, z]))


def stamped(parent: str, child: str, T: np.ndarray, quaternion: np.ndarray | None = None) -> SimpleNamespace:
    """A geometry_msgs/TransformStamped as rclpy and rosbags both shape it."""
    q = quaternion_from_matrix(T[:3, :3]) if quaternion is None else quaternion
    return SimpleNamespace(header=SimpleNamespace(frame_id=parent), child_frame_id=child, transform=SimpleNamespace(
        translation=SimpleNamespace(x=T[0, 3], y=T[1, 3], z=T[2, 3]),
        rotation=SimpleNamespace(x=q[0], y=q[1], z=q[2], w=q[3])))


def same_mount(a: CameraMount, b: CameraMount) -> bool:
    return math.isclose(a.height_m, b.height_m, abs_tol=1e-9) and math.isclose(a.pitch_deg, b.pitch_deg, abs_tol=1e-9)


def robot(mount: CameraMount) -> tuple[StaticTransforms, np.ndarray]:
    """REP-120's tree for a mobile robot: base_footprint -> base_link -> camera_link -> camera_optical,
    and an arm on the side; the camera's true pose over the footprint."""
    T_fp_optical = mount_pose(mount)
    T_fp_bl, T_bl_link = shifted(0.0, 0.0, 0.08), shifted(0.12, 0.0, mount.height_m - 0.08, yaw=0.0)
    T_link_optical = invert_pose(T_fp_bl @ T_bl_link) @ T_fp_optical
    tree = StaticTransforms()
    for parent, child, T in (("base_footprint", "base_link", T_fp_bl), ("base_link", "camera_link", T_bl_link),
                             ("camera_link", "camera_optical", T_link_optical),
                             ("base_link", "arm", shifted(0.0, 0.2, 0.3, yaw=1.0))):
        tree.add(parent, child, T)
    return tree, T_fp_optical


def test_a_chain_composes_both_ways_and_through_a_common_ancestor() -> None:
    tree, T_fp_optical = robot(CameraMount(0.9, -12.0))
    assert np.allclose(tree.lookup("base_footprint", "camera_optical"), T_fp_optical)
    assert np.allclose(tree.lookup("camera_optical", "base_footprint"), invert_pose(T_fp_optical))
    T_arm_optical = tree.lookup("arm", "camera_optical")  # siblings: up to base_link, then down
    assert np.allclose(tree.lookup("base_footprint", "arm") @ T_arm_optical, T_fp_optical)
    assert np.allclose(tree.lookup("camera_link", "camera_link"), np.eye(4))
    assert tree.lookup("base_footprint", "lidar") is None  # not in the tree
    tree.add("odom", "wheel", np.eye(4))
    assert tree.lookup("base_footprint", "wheel") is None  # another tree


def test_the_latest_transform_of_a_child_wins_and_loops_are_refused() -> None:
    tree = StaticTransforms()
    tree.add("a", "b", shifted(1.0, 0.0, 0.0))
    tree.add("a", "b", shifted(2.0, 0.0, 0.0))
    assert len(tree) == 1 and np.isclose(tree.lookup("a", "b")[0, 3], 2.0)
    tree.add("b", "c", np.eye(4))
    tree.add("c", "a", np.eye(4))
    with pytest.raises(ValueError, match="loop"):
        tree.lookup("a", "c")


def test_bad_transforms_are_left_out_with_a_reason_and_the_rest_kept() -> None:
    tree = StaticTransforms()
    message = SimpleNamespace(transforms=[
        stamped("base_footprint", "camera", mount_pose(CameraMount(1.0, -5.0))),
        stamped("base_footprint", "lidar", np.eye(4), quaternion=np.zeros(4)),
        stamped("/base_footprint", "imu", np.eye(4)),  # a ROS 1 style leading slash
        stamped("base_footprint", "base_footprint", np.eye(4)),
        stamped("base_footprint", "sonar", np.full((4, 4), np.nan), quaternion=np.array([0.0, 0.0, 0.0, 1.0])),
    ])
    problems = tree.add_message(message)
    assert len(problems) == 3 and "lidar" in problems[0] and "two different named frames" in problems[1]
    assert "not a finite" in problems[2]
    assert len(tree) == 2 and tree.lookup("base_footprint", "imu") is not None
    assert same_mount(find_camera_mount(tree, "base_footprint", "camera"), CameraMount(1.0, -5.0))


@pytest.mark.parametrize("mount", [CameraMount(0.6, 0.0), CameraMount(0.9, -12.0), CameraMount(1.4, -20.0),
                                   CameraMount(1.1, 8.0)])
def test_a_mount_survives_the_trip_through_the_robots_tree(mount) -> None:
    tree, _ = robot(mount)
    assert same_mount(find_camera_mount(tree, "base_footprint", "camera_optical"), mount)
    turned = shifted(3.0, -2.0, 0.0, yaw=2.0) @ mount_pose(mount)  # where on the floor it stands does not matter
    assert same_mount(mount_from_pose(turned), mount)


def test_a_camera_the_floor_scale_cannot_use_is_refused_with_why() -> None:
    with pytest.raises(ValueError, match=r"rolled 9\.0 degrees"):
        mount_from_pose(make_pose(camera_rotation(0.0, math.radians(-10), math.radians(9)), np.array([0, 0, 1.0])))
    body_frame = make_pose(np.eye(3), np.array([0, 0, 1.0]))  # x forward, z up: not the optical frame
    with pytest.raises(ValueError, match="optical"):
        mount_from_pose(body_frame)
    with pytest.raises(ValueError, match="camera height"):
        mount_from_pose(make_pose(camera_rotation(0.0, 0.0), np.array([0, 0, -0.5])))  # below the floor
    tree, _ = robot(CameraMount(0.9, -12.0))
    with pytest.raises(ValueError, match="no chain of static transforms from base_footprint to the image's frame "
                                         "camera"):
        find_camera_mount(tree, "base_footprint", "camera")
