"""loc3r_core.quaternions: the one home of the quaternion math (x, y, z, w order)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loc3r_core.geometry import rot_z
from loc3r_core.quaternions import (
    quaternion_from_matrix,
    quaternion_from_yaw,
    quaternion_matrix,
    slerp,
    yaw_from_quaternion,
)


def random_rotations(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    rotations = []
    for _ in range(count):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        rotations.append(q * np.sign(np.linalg.det(q)))
    return rotations


def test_matrix_round_trip():
    # The identity, the three half turns (trace -1: Shepperd's pivot branch) and random rotations.
    rotations = [np.eye(3), np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]),
                 *random_rotations(200)]
    for rotation in rotations:
        q = quaternion_from_matrix(rotation)
        assert q.shape == (4,) and q.dtype == np.float64
        assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
        np.testing.assert_allclose(quaternion_matrix(q), rotation, atol=1e-9)


def test_from_yaw_matches_from_matrix():
    for yaw in (0.0, 0.7, -2.0, math.pi - 1e-6, -math.pi + 1e-6):
        np.testing.assert_allclose(quaternion_from_yaw(yaw), quaternion_from_matrix(rot_z(yaw)), atol=1e-9)
        np.testing.assert_allclose(quaternion_matrix(quaternion_from_yaw(yaw)), rot_z(yaw), atol=1e-12)


def test_yaw_inverts_from_yaw_across_the_seam():
    for yaw in np.linspace(-math.pi + 1e-9, math.pi - 1e-9, 41):
        assert yaw_from_quaternion(quaternion_from_yaw(yaw)) == pytest.approx(yaw, abs=1e-12)
    # Just either side of +-pi the heading wraps, it does not jump to 0.
    assert yaw_from_quaternion(quaternion_from_yaw(math.pi + 0.1)) == pytest.approx(-math.pi + 0.1)
    assert yaw_from_quaternion(quaternion_from_yaw(-math.pi - 0.1)) == pytest.approx(math.pi - 0.1)
    # -q (here w < 0) is the same rotation, so the same heading.
    assert yaw_from_quaternion(-quaternion_from_yaw(2.5)) == pytest.approx(2.5)


def test_yaw_is_the_heading_of_the_x_axis():
    for rotation in random_rotations(20):
        x_axis = rotation[:, 0]
        if np.hypot(x_axis[0], x_axis[1]) < 1e-3:
            continue  # x axis vertical: no heading
        expected = math.atan2(x_axis[1], x_axis[0])
        assert yaw_from_quaternion(quaternion_from_matrix(rotation)) == pytest.approx(expected, abs=1e-9)


def test_slerp_endpoints_and_midpoint():
    q0, q1 = quaternion_from_yaw(0.2), quaternion_from_yaw(1.8)
    np.testing.assert_allclose(slerp(q0, q1, 0.0), q0, atol=1e-12)
    np.testing.assert_allclose(slerp(q0, q1, 1.0), q1, atol=1e-12)
    np.testing.assert_allclose(slerp(q0, q1, 0.5), quaternion_from_yaw(1.0), atol=1e-12)
    # q and -q are one rotation: slerp takes the short way, so the midpoint is the same turn.
    np.testing.assert_allclose(quaternion_matrix(slerp(q0, -q1, 0.5)), rot_z(1.0), atol=1e-12)
    # Across the seam: from 170 to -170 degrees the short way passes 180, not 0.
    mid = slerp(quaternion_from_yaw(math.radians(170)), quaternion_from_yaw(math.radians(-170)), 0.5)
    assert abs(yaw_from_quaternion(mid)) == pytest.approx(math.pi)
    # Nearly equal ends take the lerp branch and still give a unit quaternion.
    near = slerp(q0, quaternion_from_yaw(0.2 + 1e-4), 0.5)
    assert np.linalg.norm(near) == pytest.approx(1.0)
    assert yaw_from_quaternion(near) == pytest.approx(0.2 + 5e-5)


@pytest.mark.parametrize("bad", [np.eye(4), np.eye(3)[:2], np.full((3, 3), np.nan),
                                 np.diag([1.0, 1.0, np.inf]), np.zeros(9)])
def test_bad_matrix_is_a_value_error(bad: np.ndarray):
    with pytest.raises(ValueError):
        quaternion_from_matrix(bad)
