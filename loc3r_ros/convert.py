"""loc3r_core values <-> ROS 2 messages. No logic beyond the conversion itself.

Messages are built by loc3r_core.io.ros_messages as plain dicts (the same ones `loc3r run`
writes to MCAP) and turned into rclpy messages here, so the node and the recordings publish
exactly the same content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from importlib import import_module

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseWithCovarianceStamped, Quaternion, TransformStamped, Vector3

from loc3r.msg import SceneObject, SceneObjectArray
from loc3r_core import quaternions
from loc3r_core.io import ros_messages as msgs
from loc3r_core.types import MapObject, PlanarPose

_NESTED = re.compile(r"(?:sequence<)?(\w+/\w+)(?:, \d+)?>?(?:\[\d+\])?")


def message_from_dict(cls: type, fields: Mapping) -> object:
    """An rclpy message of class cls from a ros_messages dict; a field the type lacks raises."""
    message, types = cls(), cls.get_fields_and_field_types()
    for name, value in fields.items():
        if name not in types:
            raise ValueError(f"{cls.__name__} has no field {name!r}")
        nested = _NESTED.fullmatch(types[name])
        if nested and isinstance(value, Mapping):
            value = message_from_dict(message_class(nested[1]), value)
        elif nested and isinstance(value, list) and value and isinstance(value[0], Mapping):
            value = [message_from_dict(message_class(nested[1]), item) for item in value]
        setattr(message, name, value)
    return message


def message_class(type_name: str) -> type:
    """"pkg/msg/Type" or "pkg/Type" -> the rosidl-generated class."""
    package, *_, name = type_name.split("/")
    return getattr(import_module(f"{package}.msg"), name)


def stamp_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def time_msg(nanoseconds: int) -> Time:
    return message_from_dict(Time, msgs.time_msg(nanoseconds))


def quaternion_msg(q: np.ndarray) -> Quaternion:
    """geometry_msgs/Quaternion of an (x, y, z, w) array."""
    return Quaternion(**msgs.quaternion_msg(q))


def quaternion_array(q: Quaternion) -> np.ndarray:
    """(x, y, z, w) array of a geometry_msgs/Quaternion, the order loc3r_core.quaternions uses."""
    return np.array([q.x, q.y, q.z, q.w], dtype=np.float64)


def quaternion_from_matrix(rotation: np.ndarray) -> Quaternion:
    return quaternion_msg(quaternions.quaternion_from_matrix(rotation))


def matrix_from_quaternion(q: Quaternion) -> np.ndarray:
    return quaternions.quaternion_matrix(quaternion_array(q))


def transform_msg(pose: np.ndarray, parent: str, child: str, stamp: Time) -> TransformStamped:
    """A 4x4 rigid transform T_parent_child as the message tf2 sends on /tf."""
    return message_from_dict(TransformStamped, msgs.transform_msg(pose, parent, child, stamp_ns(stamp)))


def quaternion_from_yaw(yaw: float) -> Quaternion:
    return quaternion_msg(quaternions.quaternion_from_yaw(yaw))


def yaw_from_quaternion(q: Quaternion) -> float:
    """Heading about +z of any rotation (its x axis projected on the floor)."""
    return quaternions.yaw_from_quaternion(quaternion_array(q))


def planar_pose_msg(
    x: float, y: float, yaw: float, sigma_xy: Sequence[float], sigma_yaw: float, frame_id: str, stamp: Time
) -> PoseWithCovarianceStamped:
    """A pose on the floor (z = 0) with per-axis standard deviations (m, m, rad)."""
    pose = PlanarPose(float(x), float(y), float(yaw), float(sigma_xy[0]), float(sigma_xy[1]), float(sigma_yaw))
    return pose_with_covariance(pose, frame_id, stamp)


def pose_with_covariance(pose: PlanarPose, frame_id: str, stamp: Time) -> PoseWithCovarianceStamped:
    return message_from_dict(PoseWithCovarianceStamped, msgs.pose_with_covariance_msg(pose, stamp_ns(stamp), frame_id))


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


def map_objects_msg(objects: Sequence[MapObject], frame_id: str, stamp: Time) -> SceneObjectArray:
    """The layout's objects as loc3r/msg/SceneObjectArray."""
    return scene_object_array_msg([scene_object_msg(o.id, o.label, o.confidence, o.center, o.size, o.yaw)
                                   for o in objects], frame_id, stamp)
