"""Unit quaternions as numpy arrays (x, y, z, w), the order geometry_msgs/Quaternion uses.

The one place loc3r does quaternion math: ros_messages wraps these results in message dicts,
the odometry history interpolates with them and loc3r_ros converts rclpy messages through them.
"""

from __future__ import annotations

import math

import numpy as np

from loc3r_core.geometry import make_pose


def quaternion_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """(x, y, z, w) of a 3x3 rotation (Shepperd's method: stable for any rotation).

    Normalised and with w >= 0, so a rotation has one quaternion (q and -q are the same turn).
    A non-finite or non-3x3 input is a ValueError.
    """
    m = np.asarray(rotation, dtype=np.float64)
    if m.shape != (3, 3) or not np.all(np.isfinite(m)):
        raise ValueError(f"expected a finite 3x3 rotation, got shape {m.shape}")
    trace = float(np.trace(m))
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = np.array([(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s])
    else:  # pivot on the largest diagonal element so s stays far from 0
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 0.0))
        q = np.zeros(4)
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
        q[3] = (m[k, j] - m[j, k]) / s
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return q


def quaternion_from_yaw(yaw: float) -> np.ndarray:
    """(x, y, z, w) of a turn about +z."""
    return np.array([0.0, 0.0, math.sin(float(yaw) / 2), math.cos(float(yaw) / 2)])


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """3x3 rotation of a unit quaternion (x, y, z, w)."""
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def pose_from_quaternion(position: np.ndarray, quaternion: np.ndarray) -> np.ndarray:
    """4x4 pose of a position and a unit quaternion (x, y, z, w): what a geometry_msgs Pose or
    Transform holds."""
    return make_pose(quaternion_matrix(quaternion), position)


def yaw_from_quaternion(q: np.ndarray) -> float:
    """Heading about +z of any rotation (x, y, z, w): its x axis projected on the floor."""
    x, y, z, w = (float(v) for v in q)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Unit quaternion a fraction t of the way from q0 to q1, along the shorter arc."""
    dot = float(np.dot(q0, q1))
    if dot < 0:  # q and -q are the same rotation; take the short way round
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: lerp is exact enough and avoids dividing by sin(~0)
        q = q0 + t * (q1 - q0)
    else:
        theta = np.arccos(dot)
        q = (np.sin((1 - t) * theta) * q0 + np.sin(t * theta) * q1) / np.sin(theta)
    return q / np.linalg.norm(q)
