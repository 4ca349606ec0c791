"""Poses, cameras and back-projection in the conventions every part of loc3r shares.

- World: metric, gravity-aligned, z up, floor at z = 0.
- Camera: OpenCV (x right, y down, z forward); `T_world_camera` maps camera points to world.
- Pixels: (u, v) = (column, row); the centre of pixel (u, v) is at (u + 0.5, v + 0.5).
- Yaw: rotation about +z from world x, radians; bird's-eye view (BEV) = the world x-y plane.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of width x height."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_vertical_fov(cls, width: int, height: int, fovy_deg: float) -> Intrinsics:
        """Square pixels and a centred principal point, as a MuJoCo camera renders them."""
        f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
        return cls(fx=f, fy=f, cx=width / 2, cy=height / 2, width=width, height=height)

    def to_dict(self) -> dict:
        return asdict(self)

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)


def rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def make_pose(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = translation
    return pose


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms (..., 4, 4) without a general matrix inverse."""
    rotation_t = np.swapaxes(pose[..., :3, :3], -1, -2)
    inverse = np.zeros_like(pose)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -(rotation_t @ pose[..., :3, 3:4])[..., 0]
    inverse[..., 3, 3] = 1.0
    return inverse


def camera_rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """R_world_camera for an OpenCV camera looking along `yaw`, tilted up by `pitch` (radians).

    Roll turns the image clockwise as seen by the camera (about its optical axis).
    """
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    down = np.cross(forward, right)
    c, s = math.cos(roll), math.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    return np.stack([right, down, forward], axis=1)


def camera_yaw(pose: np.ndarray) -> np.ndarray:
    """Heading of the optical axis projected on the floor, for poses (..., 4, 4)."""
    forward = pose[..., :3, 2]
    return np.arctan2(forward[..., 1], forward[..., 0])


def planar_camera_pose(pose: np.ndarray) -> np.ndarray:
    """(..., 4, 4) camera poses -> (..., 3) their position on the floor and heading (the ego pose's convention)."""
    return np.concatenate([pose[..., :2, 3], camera_yaw(pose)[..., None]], axis=-1)


def anchor_frame(T_world_camera0: np.ndarray) -> np.ndarray:
    """T_anchor_world: the frame loc3r expresses a clip in, anchored to its first camera.

    Origin on the floor below the first camera, x along its viewing direction projected on
    the floor, z up. Everything of a clip (poses, layout, situations) is mapped with it.
    """
    yaw = float(camera_yaw(T_world_camera0))
    origin = np.array([T_world_camera0[0, 3], T_world_camera0[1, 3], 0.0])
    return invert_pose(make_pose(rot_z(yaw), origin))


def transform_points(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to points (..., 3)."""
    return points @ pose[:3, :3].T + pose[:3, 3]


def transform_planar(pose: np.ndarray, xy: np.ndarray, yaw: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Map BEV positions (..., 2) and headings through a gravity-aligned transform."""
    xy = np.asarray(xy, dtype=np.float64)
    moved = xy @ pose[:2, :2].T + pose[:2, 3]
    heading = wrap_angle(np.asarray(yaw) + math.atan2(pose[1, 0], pose[0, 0]))
    return moved, heading


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap radians to [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2 * math.pi) - math.pi


def heading_to(origin: np.ndarray, target: np.ndarray) -> float:
    """Direction from one floor point to another, radians from world x."""
    return math.atan2(float(target[1] - origin[1]), float(target[0] - origin[0]))


def pixel_rays(intrinsics: Intrinsics) -> np.ndarray:
    """Camera-frame rays (H, W, 3) with z = 1 through every pixel centre."""
    u = np.arange(intrinsics.width) + 0.5
    v = np.arange(intrinsics.height) + 0.5
    uu, vv = np.meshgrid(u, v)
    x = (uu - intrinsics.cx) / intrinsics.fx
    y = (vv - intrinsics.cy) / intrinsics.fy
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def backproject(depth: np.ndarray, intrinsics: Intrinsics, T_world_camera: np.ndarray) -> np.ndarray:
    """World points (H, W, 3) of a z-depth image in metres; pixels with depth 0 give NaN."""
    points_camera = pixel_rays(intrinsics) * depth[..., None]
    points_world = transform_points(T_world_camera, points_camera)
    points_world[depth <= 0] = np.nan
    return points_world


# --- planar poses (x, y, yaw) on the floor: odometry, the ego pose, the map frame -------------


def planar_from_transform(pose: np.ndarray) -> np.ndarray:
    """(x, y, yaw) of a 4x4 transform whose x axis is forward (ROS body frames, REP-103)."""
    return np.array([pose[0, 3], pose[1, 3], math.atan2(pose[1, 0], pose[0, 0])])


def compose_planar(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a ∘ b: the pose b, given in the frame of pose a, expressed in a's parent frame."""
    c, s = math.cos(a[2]), math.sin(a[2])
    return np.array([a[0] + c * b[0] - s * b[1], a[1] + s * b[0] + c * b[1], float(wrap_angle(a[2] + b[2]))])


RIGHT_ANGLE = math.pi / 2


def wrap_right_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap radians to [-pi/4, pi/4): an angle modulo 90 degrees, as a heading against a room's axes."""
    return (np.asarray(angle) + RIGHT_ANGLE / 2) % RIGHT_ANGLE - RIGHT_ANGLE / 2


def snap_to_room_axes(pose: np.ndarray, turn_modulo_right_angle: float) -> np.ndarray:
    """The planar pose turned by less than 45 degrees so that its heading differs from the chain's
    first by turn_modulo_right_angle, modulo 90 degrees: in a room whose walls meet at right angles
    a frame's heading against the walls is seen in the frame itself, so a chained heading that has
    drifted by less than 45 degrees is put back (the Manhattan-world assumption of indoor SLAM)."""
    correction = float(wrap_right_angle(turn_modulo_right_angle - pose[2]))
    return np.array([pose[0], pose[1], float(wrap_angle(pose[2] + correction))])


def chain_step(pose: np.ndarray, step: np.ndarray, room_turn: float | None = None) -> np.ndarray:
    """The pose after a step; with room_turn (the new frame's room heading less the chain's first
    frame's) its heading snapped to the room's axes: what the chain and the runtime's odometry do."""
    moved = compose_planar(pose, step)
    return moved if room_turn is None else snap_to_room_axes(moved, room_turn)


def relative_planar(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a⁻¹ ∘ b: pose b seen from pose a (both in the same parent frame)."""
    c, s = math.cos(a[2]), math.sin(a[2])
    dx, dy = b[0] - a[0], b[1] - a[1]
    return np.array([c * dx + s * dy, -s * dx + c * dy, float(wrap_angle(b[2] - a[2]))])
