"""The map's scale from the floor: a camera at a known height sees each floor pixel at a known distance.

A monocular model has to guess the scene's scale, and the shipped model's guess is off by several per
cent per scene (val: its wall points 0.90-1.22 times their true distance from the camera, scene by
scene). The walls then fuse a few decimetres out of place, and no fusion rule can tell. Its floor
points carry the same error (their ratio tracks the walls' with correlation 0.8 across scenes), and
the floor's true distance follows from the camera's mount alone: its height above the floor and its
pitch, which a robot knows from its TF tree. So each keyframe's floor points give its scale error,
and every point the keyframe gives the map is moved along its ray from the camera to undo it.
results/experiments.md (session 46) has the measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loc3r_core.data.targets import subdivide
from loc3r_core.geometry import Intrinsics, camera_rotation, make_pose
from loc3r_core.runtime.preprocess import square_crop
from loc3r_core.static_transforms import StaticTransforms

MAX_FLOOR_DISTANCE_M = 6.0  # floor rays flatter than this say little: a degree of pitch moves them far
MIN_FLOOR_POINTS = 5  # fewer floor points than this in a keyframe: its scale is left alone
MAX_MOUNT_ROLL_DEG = 5.0  # the floor distances take the roll as zero: a camera rolled more is not used
# where an evaluated walk's camera mount comes from: the generated scene's (the height and pitch a
# robot's TF would give the node), or none (the model's own scale, the node's default)
CAMERA_MOUNTS = ("none", "scene")


@dataclass(frozen=True)
class CameraMount:
    """Where the camera sits on the robot: height above the floor and pitch (radians' sign as
    geometry.camera_rotation: negative looks down). Roll is taken as zero."""

    height_m: float
    pitch_deg: float = 0.0

    def validate(self) -> None:
        if not (math.isfinite(self.height_m) and 0.0 < self.height_m <= 10.0):
            raise ValueError(f"camera height must lie in (0, 10] m, not {self.height_m}")
        if not (math.isfinite(self.pitch_deg) and -90.0 < self.pitch_deg < 90.0):
            raise ValueError(f"camera pitch must lie in (-90, 90) degrees, not {self.pitch_deg}")


@dataclass(frozen=True)
class FloorScaleConfig:
    """scale = 1 + shrink * (floor ratio - floor_bias): the floor's median ratio of the model's
    distance to the true one, centred on its typical value and shrunk toward 1 (the floor's ratio
    tracks the walls' only in part). Both fitted on train keyframes (session 46)."""

    shrink: float = 0.57
    floor_bias: float = 1.014
    max_correction: float = 0.25  # the scale stays within 1 -+ this: a bad keyframe cannot fling the map

    def validate(self) -> None:
        if not (0.0 <= self.shrink <= 1.0 and 0.5 <= self.floor_bias <= 2.0 and 0.0 <= self.max_correction < 1.0):
            raise ValueError("floor scale needs shrink in [0, 1], floor_bias in [0.5, 2], max_correction in [0, 1)")


def mount_from_pose(T_floor_camera: np.ndarray) -> CameraMount:
    """The mount of a camera at T_floor_camera, its image frame (REP-103's optical frame: z forward,
    x right, y down) in a frame whose z = 0 plane is the floor, z up. ValueError if that is no camera
    the floor scale can use: below the floor, rolled, or looking straight up or down."""
    R, height = np.asarray(T_floor_camera, dtype=np.float64)[:3, :3], float(T_floor_camera[2, 3])
    forward, right = R[:, 2], R[:, 0]
    pitch = math.degrees(math.asin(float(np.clip(forward[2], -1.0, 1.0))))
    if abs(pitch) > 80.0:
        raise ValueError(f"the camera looks {'up' if pitch > 0 else 'down'} at {abs(pitch):.0f} degrees: "
                         "is its frame the optical one (z forward)?")
    roll = math.degrees(math.asin(float(np.clip(-right[2] / math.cos(math.radians(pitch)), -1.0, 1.0))))
    if abs(roll) > MAX_MOUNT_ROLL_DEG:
        raise ValueError(f"the camera is rolled {roll:.1f} degrees (the floor scale takes up to "
                         f"{MAX_MOUNT_ROLL_DEG:.0f})")
    mount = CameraMount(height, pitch)
    mount.validate()
    return mount


def mount_pose(mount: CameraMount) -> np.ndarray:
    """T_floor_camera of a mount (the inverse of mount_from_pose): the camera's optical frame over the
    floor frame's origin, looking along its x axis."""
    return make_pose(camera_rotation(0.0, math.radians(mount.pitch_deg)), np.array([0.0, 0.0, mount.height_m]))


def find_camera_mount(transforms: StaticTransforms, floor_frame: str, camera_frame: str) -> CameraMount:
    """The camera's mount from a robot's static transforms; ValueError saying what is missing or wrong."""
    T_floor_camera = transforms.lookup(floor_frame, camera_frame)
    if T_floor_camera is None:
        raise ValueError(f"no chain of static transforms from {floor_frame} to the image's frame {camera_frame} "
                         f"({len(transforms)} transforms known)")
    try:
        return mount_from_pose(T_floor_camera)
    except ValueError as exc:
        raise ValueError(f"{floor_frame} -> {camera_frame}: {exc}") from None


def floor_distances(intrinsics: Intrinsics, mount: CameraMount, grid: tuple[int, int], subdivision: int,
                    max_distance: float = MAX_FLOOR_DISTANCE_M) -> np.ndarray:
    """(rows * cols * s * s,) horizontal distance from the camera to where the ray through each map
    point's sub-patch centre meets the floor, in the map head's order (tokens row-major, sub-patches
    row-major within each); NaN where the ray meets no floor within max_distance."""
    rows, cols = grid[0] * subdivision, grid[1] * subdivision
    left, top, side = square_crop(intrinsics.width, intrinsics.height, intrinsics)
    u = left + (np.arange(cols) + 0.5) * side / cols
    v = top + (np.arange(rows) + 0.5) * side / rows
    uu, vv = np.meshgrid(u, v)
    rays = np.stack([(uu - intrinsics.cx) / intrinsics.fx, (vv - intrinsics.cy) / intrinsics.fy, np.ones_like(uu)], -1)
    level = rays @ camera_rotation(0.0, math.radians(mount.pitch_deg)).T  # x forward, z up, on the floor's axes
    down = -level[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.where(down > 0, mount.height_m * np.hypot(level[..., 0], level[..., 1]) / down, np.nan)
    distance[distance > max_distance] = np.nan
    return subdivide(distance, grid, subdivision).reshape(-1)


def keyframe_scale(distances: np.ndarray, floor_distances_m: np.ndarray, is_floor: np.ndarray,
                   config: FloorScaleConfig) -> float:
    """The factor a keyframe's points are moved by along their rays (1: left alone): from the model's
    distances (P,) of its points from the camera, the floor's true ones (P,) and which points the
    model calls floor (P,)."""
    usable = is_floor & np.isfinite(floor_distances_m) & (distances > 0)
    if usable.sum() < MIN_FLOOR_POINTS:
        return 1.0
    ratio = float(np.median(distances[usable] / floor_distances_m[usable]))
    error = float(np.clip(config.shrink * (ratio - config.floor_bias), -config.max_correction, config.max_correction))
    return 1.0 / (1.0 + error)
