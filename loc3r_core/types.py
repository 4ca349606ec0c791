"""The values the runtime gives out and io reads and writes: plain data, no ROS, no torch.

Frames in (InputFrame), poses and the layout out (PlanarPose, Layout, MapObject, the
OccupancyGrid cell values). Both loc3r_core.io and loc3r_core.runtime import them, so they
live below both and import nothing of either (the ONNX path has neither ROS nor torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from loc3r_core.geometry import Intrinsics

UNKNOWN, FREE, OCCUPIED = -1, 0, 100  # nav_msgs/OccupancyGrid cell values


@dataclass(frozen=True)
class InputFrame:
    """One camera image as a recording or a driver gives it."""

    stamp_ns: int  # when it was taken (header stamp), nanoseconds
    rgb: np.ndarray  # (H, W, 3) uint8
    intrinsics: Intrinsics | None = None  # None: not known (yet)
    odometry: np.ndarray | None = None  # (4, 4) T_odom_base at stamp_ns, if the robot has odometry
    frame_id: str = "camera"


@dataclass(frozen=True)
class PlanarPose:
    """A pose on the floor of the map frame with its uncertainty (1-sigma, metres / radians)."""

    x: float
    y: float
    yaw: float
    sigma_x: float
    sigma_y: float
    sigma_yaw: float

    def covariance(self) -> np.ndarray:
        """6x6 (x, y, z, roll, pitch, yaw) covariance as geometry_msgs wants it; z/roll/pitch fixed by the floor."""
        cov = np.zeros((6, 6))
        cov[0, 0], cov[1, 1], cov[5, 5] = self.sigma_x**2, self.sigma_y**2, self.sigma_yaw**2
        return cov


@dataclass(frozen=True)
class MapObject:
    """An object of the layout: a labelled box on the floor of the map frame."""

    id: int
    label: str
    center: np.ndarray  # (3,) metres
    size: np.ndarray  # (3,) extent along x, y, z, metres
    yaw: float
    confidence: float  # in [0, 1]


@dataclass(frozen=True)
class WallSegment:
    """A straight stretch of wall on the floor plan, map frame (runtime/walls.py fits them)."""

    start: np.ndarray  # (2,) x, y
    end: np.ndarray  # (2,)
    normal: np.ndarray  # (2,) unit normal

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.end - self.start))


@dataclass(frozen=True)
class Layout:
    """The reconstructed map: an occupancy grid with a label per cell, and its objects.

    Cell (row, col) covers x in origin_x + [col, col + 1) * resolution, y likewise with row,
    which is nav_msgs/OccupancyGrid's layout (row-major, row 0 at the origin).
    """

    occupancy: np.ndarray  # (rows, cols) int8: UNKNOWN, FREE or OCCUPIED
    labels: np.ndarray  # (rows, cols) int16 index into label_names, -1 where unknown
    label_names: tuple[str, ...]
    resolution: float  # metres per cell
    origin: tuple[float, float]  # map-frame x, y of the corner of cell (0, 0)
    objects: tuple[MapObject, ...] = field(default=())
    stamp_ns: int = 0
    walls: tuple[WallSegment, ...] = field(default=())  # the walls the grid draws one cell thick
