"""loc3r_core values as ROS 2 messages in plain dicts, without importing ROS.

Each function returns the message as nested dicts keyed by the exact ROS 2 field names, with
lists for arrays/sequences and bytes for uint8[] data. The MCAP writer CDR-encodes them
as they are, and the ROS node turns the same dicts into rclpy messages, so the two outputs
cannot drift apart. Fields left out take the ROS default (zero / empty), except orientations:
a CDR encoder fills a missing quaternion with w = 0, so every pose here sets one.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from loc3r_core.quaternions import quaternion_from_matrix, quaternion_from_yaw
from loc3r_core.types import Layout, MapObject, PlanarPose, WallSegment

Message = dict[str, Any]

# visualization_msgs/Marker constants
CUBE, LINE_STRIP, LINE_LIST, TEXT_VIEW_FACING = 1, 4, 5, 9
ADD, DELETEALL = 0, 3

# Tableau 10: distinct on both RViz's dark and Foxglove's light background.
PALETTE = ((0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.40, 0.74),
           (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81))
TRAJECTORY_COLOR = (1.0, 1.0, 1.0)
WALL_COLOR = (0.85, 0.85, 0.85)
WALL_WIDTH = 0.05  # metres
TEXT_HEIGHT = 0.2  # metres
LINE_WIDTH = 0.03  # metres
MIN_SCALE = 1e-3  # RViz rejects markers with a zero scale


# --- std_msgs, builtin_interfaces ----------------------------------------------------------


def time_msg(stamp_ns: int) -> Message:
    """builtin_interfaces/Time; nanosec stays in [0, 1e9) also for stamps before the epoch."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return {"sec": sec, "nanosec": nanosec}


def header(stamp_ns: int, frame_id: str) -> Message:
    """std_msgs/Header."""
    return {"stamp": time_msg(stamp_ns), "frame_id": frame_id}


def string_msg(text: str) -> Message:
    """std_msgs/String."""
    return {"data": str(text)}


def color_msg(rgb: Sequence[float], alpha: float = 1.0) -> Message:
    """std_msgs/ColorRGBA."""
    return {"r": float(rgb[0]), "g": float(rgb[1]), "b": float(rgb[2]), "a": float(alpha)}


# --- geometry_msgs -------------------------------------------------------------------------


def quaternion_msg(q: Sequence[float]) -> Message:
    """geometry_msgs/Quaternion of an (x, y, z, w) array (see loc3r_core.quaternions)."""
    return {"x": float(q[0]), "y": float(q[1]), "z": float(q[2]), "w": float(q[3])}


def point_msg(xyz: Sequence[float]) -> Message:
    """geometry_msgs/Point (also fits Vector3)."""
    return {"x": float(xyz[0]), "y": float(xyz[1]), "z": float(xyz[2])}


def pose_msg(xyz: Sequence[float], orientation: Message | None = None) -> Message:
    """geometry_msgs/Pose; the identity orientation unless one is given."""
    return {"position": point_msg(xyz), "orientation": orientation or {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}


def transform_msg(T_parent_child: np.ndarray, parent: str, child: str, stamp_ns: int) -> Message:
    """geometry_msgs/TransformStamped of a 4x4 rigid transform, as tf2 sends it on /tf."""
    pose = np.asarray(T_parent_child, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"expected a 4x4 transform, got shape {pose.shape}")
    rotation = quaternion_msg(quaternion_from_matrix(pose[:3, :3]))
    return {"header": header(stamp_ns, parent), "child_frame_id": child,
            "transform": {"translation": point_msg(pose[:3, 3]), "rotation": rotation}}


def tf_message(transforms: Sequence[Message]) -> Message:
    """tf2_msgs/TFMessage of TransformStamped dicts (see transform_msg)."""
    return {"transforms": list(transforms)}


def pose_with_covariance_msg(pose: PlanarPose, stamp_ns: int, frame_id: str) -> Message:
    """geometry_msgs/PoseWithCovarianceStamped of a pose on the floor (z = 0), row-major 6x6 covariance."""
    return {"header": header(stamp_ns, frame_id),
            "pose": {"pose": pose_msg((pose.x, pose.y, 0.0), quaternion_msg(quaternion_from_yaw(pose.yaw))),
                     "covariance": [float(v) for v in pose.covariance().ravel()]}}


# --- sensor_msgs, nav_msgs -----------------------------------------------------------------


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Message:
    """sensor_msgs/Image, rgb8, rows packed (step = 3 * width)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    return {"header": header(stamp_ns, frame_id), "height": height, "width": width, "encoding": "rgb8",
            "is_bigendian": 0, "step": 3 * width, "data": np.ascontiguousarray(rgb).tobytes()}


def occupancy_grid_msg(layout: Layout, frame_id: str) -> Message:
    """nav_msgs/OccupancyGrid of the layout, stamped (and loaded) at the layout's stamp.

    Layout already uses the message's cell order (row-major, row 0 at the origin, y up), so the
    grid goes out as it is; the origin is the corner of cell (0, 0) on the floor, unrotated.
    """
    grid = np.asarray(layout.occupancy)
    if grid.ndim != 2:
        raise ValueError(f"expected a (rows, cols) occupancy grid, got shape {grid.shape}")
    if grid.size and (grid.min() < -1 or grid.max() > 100):
        raise ValueError("occupancy values must be -1 (unknown) or in [0, 100]")
    rows, cols = grid.shape
    info = {"map_load_time": time_msg(layout.stamp_ns), "resolution": float(layout.resolution),
            "width": cols, "height": rows, "origin": pose_msg((layout.origin[0], layout.origin[1], 0.0))}
    return {"header": header(layout.stamp_ns, frame_id), "info": info,
            "data": grid.astype(np.int8).ravel().tolist()}


# --- visualization_msgs --------------------------------------------------------------------


def label_color(label: str) -> tuple[float, float, float]:
    """The same colour for a label in every run (crc32, not hash(), which is salted per process)."""
    return PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]


def confidence_alpha(confidence: float) -> float:
    """Opacity from confidence: unsure objects fade but never vanish."""
    return 0.2 + 0.7 * min(max(float(confidence), 0.0), 1.0)


def _marker(ns: str, marker_id: int, marker_type: int, stamp_ns: int, frame_id: str, **fields: Any) -> Message:
    """A visualization_msgs/Marker with an identity pose (a missing quaternion would be all zeros)."""
    return {"header": header(stamp_ns, frame_id), "ns": ns, "id": int(marker_id), "type": marker_type,
            "action": ADD, "pose": pose_msg((0.0, 0.0, 0.0)), "frame_locked": False, **fields}


def object_markers(obj: MapObject, ns: str, stamp_ns: int, frame_id: str) -> list[Message]:
    """A box and a floating label for one object."""
    center, size = np.asarray(obj.center, dtype=np.float64), np.asarray(obj.size, dtype=np.float64)
    rgb = label_color(obj.label)
    box = _marker(f"{ns}/objects", obj.id, CUBE, stamp_ns, frame_id,
                  pose=pose_msg(center, quaternion_msg(quaternion_from_yaw(obj.yaw))),
                  scale=point_msg(np.maximum(size, MIN_SCALE)), color=color_msg(rgb, confidence_alpha(obj.confidence)))
    above = center + np.array([0.0, 0.0, size[2] / 2 + TEXT_HEIGHT])
    text = _marker(f"{ns}/labels", obj.id, TEXT_VIEW_FACING, stamp_ns, frame_id,
                   pose=pose_msg(above), scale=point_msg((0.0, 0.0, TEXT_HEIGHT)), color=color_msg(rgb),
                   text=f"{obj.label} {obj.confidence:.0%}")
    return [box, text]


def trajectory_marker(trajectory: np.ndarray, ns: str, stamp_ns: int, frame_id: str) -> Message:
    """A LINE_STRIP through the path; (N, 2) points lie on the floor."""
    points = np.asarray(trajectory, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"expected (N, 2) or (N, 3) trajectory points, got shape {points.shape}")
    if points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points))])
    return _marker(f"{ns}/trajectory", 0, LINE_STRIP, stamp_ns, frame_id, scale=point_msg((LINE_WIDTH, 0.0, 0.0)),
                   color=color_msg(TRAJECTORY_COLOR, 0.9), points=[point_msg(p) for p in points])


def walls_marker(walls: Sequence[WallSegment], ns: str, stamp_ns: int, frame_id: str) -> Message:
    """A LINE_LIST on the floor, one pair of points per wall segment."""
    points = [point_msg((*end, 0.0)) for wall in walls for end in (wall.start, wall.end)]
    return _marker(f"{ns}/walls", 0, LINE_LIST, stamp_ns, frame_id, scale=point_msg((WALL_WIDTH, 0.0, 0.0)),
                   color=color_msg(WALL_COLOR, 0.9), points=points)


def marker_array_msg(objects: Sequence[MapObject], trajectory_xy: np.ndarray, stamp_ns: int, frame_id: str,
                     namespace: str = "loc3r", walls: Sequence[WallSegment] = ()) -> Message:
    """visualization_msgs/MarkerArray: the objects as labelled boxes, the walls and the path as lines.

    Each array replaces the previous one: it starts with DELETEALL (one per namespace, since
    some viewers clear only the namespace named), so objects dropped from the layout vanish.
    A path of fewer than two points has no line (RViz warns about such strips), a layout
    without walls no wall list.
    """
    namespaces = (f"{namespace}/objects", f"{namespace}/labels", f"{namespace}/trajectory", f"{namespace}/walls")
    markers = [{"header": header(stamp_ns, frame_id), "ns": ns, "id": 0, "action": DELETEALL,
                "pose": pose_msg((0.0, 0.0, 0.0))} for ns in namespaces]
    for obj in objects:
        markers.extend(object_markers(obj, namespace, stamp_ns, frame_id))
    if len(walls):
        markers.append(walls_marker(walls, namespace, stamp_ns, frame_id))
    trajectory = np.asarray(trajectory_xy, dtype=np.float64)
    if trajectory.ndim == 2 and len(trajectory) >= 2:
        markers.append(trajectory_marker(trajectory, namespace, stamp_ns, frame_id))
    return {"markers": markers}
