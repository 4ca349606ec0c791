"""Pose and polygon helpers against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loc3r_core.geometry import (
    Intrinsics,
    anchor_frame,
    backproject,
    camera_rotation,
    camera_yaw,
    invert_pose,
    make_pose,
    rot_z,
    transform_planar,
    wrap_angle,
)
from loc3r_core.world.polygon import box_corners, contains, convex_inside, convex_overlap, distance_to_boundary

L_ROOM = np.array([[0, 0], [4, 0], [4, 2], [2, 2], [2, 4], [0, 4]], dtype=float)


def test_camera_rotation_follows_opencv_axes():
    r = camera_rotation(yaw=math.pi / 2, pitch=0.0)  # looking along world +y
    np.testing.assert_allclose(r[:, 2], [0, 1, 0], atol=1e-12)  # z forward
    np.testing.assert_allclose(r[:, 0], [1, 0, 0], atol=1e-12)  # x right
    np.testing.assert_allclose(r[:, 1], [0, 0, -1], atol=1e-12)  # y down
    tilted = camera_rotation(yaw=0.3, pitch=-0.4, roll=0.1)
    np.testing.assert_allclose(tilted.T @ tilted, np.eye(3), atol=1e-12)
    assert np.linalg.det(tilted) == pytest.approx(1.0)
    assert tilted[2, 2] == pytest.approx(math.sin(-0.4))  # looks down
    assert float(camera_yaw(make_pose(tilted, np.zeros(3)))) == pytest.approx(0.3)


def test_anchor_frame_puts_the_first_camera_above_the_origin_looking_along_x():
    pose = make_pose(camera_rotation(2.0, -0.3), np.array([3.0, -1.0, 1.2]))
    anchored = anchor_frame(pose) @ pose
    np.testing.assert_allclose(anchored[:3, 3], [0.0, 0.0, 1.2], atol=1e-12)
    assert float(camera_yaw(anchored)) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(anchor_frame(pose)[2], [0, 0, 1, 0], atol=1e-12)  # gravity stays z


def test_invert_pose_and_planar_transform_agree_with_matrices():
    pose = make_pose(rot_z(0.7), np.array([1.0, 2.0, 0.0]))
    np.testing.assert_allclose(invert_pose(pose) @ pose, np.eye(4), atol=1e-12)
    xy, yaw = transform_planar(pose, np.array([1.0, 0.0]), 0.2)
    np.testing.assert_allclose(xy, (pose @ [1.0, 0.0, 0.0, 1.0])[:2])
    assert float(yaw) == pytest.approx(0.9)
    assert float(wrap_angle(3 * math.pi)) == pytest.approx(-math.pi)


def test_backproject_recovers_a_plane():
    k = Intrinsics.from_vertical_fov(64, 48, 60.0)
    assert k.fx == k.fy and (k.cx, k.cy) == (32, 24)
    pose = make_pose(camera_rotation(0.0, 0.0), np.array([0.0, 0.0, 1.0]))
    depth = np.full((48, 64), 2.5)  # a wall 2.5 m ahead
    points = backproject(depth, k, pose)
    np.testing.assert_allclose(points[..., 0], 2.5)
    centre = points[23:25, 31:33]  # the four pixels around the principal point
    np.testing.assert_allclose(centre[..., 1:].mean(axis=(0, 1)), [0.0, 1.0], atol=1e-12)
    assert np.isnan(backproject(np.zeros((48, 64)), k, pose)).all()


def test_polygon_queries_on_an_l_shaped_room():
    pts = np.array([[1, 1], [3, 3], [1, 3], [3.9, 1.9]])
    assert contains(L_ROOM, pts).tolist() == [True, False, True, True]
    np.testing.assert_allclose(distance_to_boundary(L_ROOM, np.array([[1.0, 1.0], [3.0, 1.5]])), [1.0, 0.5])
    assert convex_inside(L_ROOM, box_corners([1, 1], [1, 1], 0.0))
    # A box around the reflex corner: all its corners inside, yet it pokes out of the room.
    assert not convex_inside(L_ROOM, np.array([[1.5, 1.5], [2.5, 1.5], [2.5, 2.5], [1.5, 2.5]]))
    assert convex_overlap(box_corners([0, 0], [2, 1], 0.0), box_corners([1.4, 0], [1, 1], math.pi / 4))
    assert not convex_overlap(box_corners([0, 0], [2, 1], 0.0), box_corners([1.8, 0], [1, 1], math.pi / 4))
