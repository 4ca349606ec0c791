"""loc3r_core values <-> ROS 2 messages. No logic beyond the conversion itself."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseWithCovarianceStamped, Quaternion, TransformStamped, Vector3

from loc3r.msg import SceneObject, SceneObjectArray


def quaternion_from_matrix(rotation: np.ndarray) -> Quaternion:
    """Unit quaternion of a 3x3 rotation matrix (Shepperd's method: stable for any rotation)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        xyz = [0.0, 0.0, 0.0]
        xyz[i] = 0.25 * s
        xyz[j] = (m[j, i] + m[i, j]) / s
        xyz[k] = (m[k, i] + m[i, k]) / s
        w = (m[k, j] - m[j, k]) / s
        x, y, z = xyz
    return Quaternion(x=x, y=y, z=z, w=w)


def matrix_from_quaternion(q: Quaternion) -> np.ndarray:
    x, y, z, w = q.x, q.y, q.z, q.w
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def transform_msg(pose: np.ndarray, parent: str, child: str, stamp: Time) -> TransformStamped:
    """A 4x4 rigid transform T_parent_child as the message tf2 sends on /tf."""
    msg = TransformStamped(child_frame_id=child)
    msg.header.frame_id = parent
    msg.header.stamp = stamp
    msg.transform.translation = Vector3(x=float(pose[0, 3]), y=float(pose[1, 3]), z=float(pose[2, 3]))
    msg.transform.rotation = quaternion_from_matrix(pose[:3, :3])
    return msg


def quaternion_from_yaw(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def yaw_from_quaternion(q: Quaternion) -> float:
    """Heading about +z of any rotation (its x axis projected on the floor)."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def planar_pose_msg(
    x: float, y: float, yaw: float, sigma_xy: Sequence[float], sigma_yaw: float, frame_id: str, stamp: Time
) -> PoseWithCovarianceStamped:
    """A pose on the floor (z = 0) with per-axis standard deviations (m, m, rad).

    z, roll and pitch are fixed by the floor plane, so their variances are 0.
    """
    msg = PoseWithCovarianceStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    msg.pose.pose.position = Point(x=float(x), y=float(y), z=0.0)
    msg.pose.pose.orientation = quaternion_from_yaw(float(yaw))
    covariance = np.zeros((6, 6))
    covariance[0, 0], covariance[1, 1] = (float(s) ** 2 for s in sigma_xy)
    covariance[5, 5] = float(sigma_yaw) ** 2
    msg.pose.covariance = covariance.flatten().tolist()
    return msg


def planar_pose_from_msg(msg: PoseWithCovarianceStamped) -> tuple[float, float, float, np.ndarray]:
    """(x, y, yaw, 6x6 covariance) of a pose message."""
    pose = msg.pose.pose
    return (pose.position.x, pose.position.y, yaw_from_quaternion(pose.orientation),
            np.asarray(msg.pose.covariance, dtype=np.float64).reshape(6, 6))


def scene_object_msg(
    object_id: int, label: str, confidence: float, center: Sequence[float], size: Sequence[float], yaw: float
) -> SceneObject:
    return SceneObject(
        id=int(object_id),
        label=label,
        confidence=float(confidence),
        position=Point(x=float(center[0]), y=float(center[1]), z=float(center[2])),
        size=Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2])),
        yaw=float(yaw),
    )


def scene_object_array_msg(objects: Sequence[SceneObject], frame_id: str, stamp: Time) -> SceneObjectArray:
    msg = SceneObjectArray(objects=sorted(objects, key=lambda o: -o.confidence))
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    return msg
