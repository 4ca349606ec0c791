"""loc3r_core values <-> ROS 2 messages. No logic beyond the conversion itself."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseWithCovarianceStamped, Quaternion, Vector3

from loc3r.msg import SceneObject, SceneObjectArray

_NANOS = 1_000_000_000


def stamp_from_seconds(seconds: float) -> Time:
    nanos = round(seconds * _NANOS)
    return Time(sec=nanos // _NANOS, nanosec=nanos % _NANOS)


def seconds_from_stamp(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec / _NANOS


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
