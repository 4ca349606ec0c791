"""Odometry as a short history of timed poses, looked up at any stamp.

The bag reader and the ROS node both give each image the odometry pose at its stamp:
interpolated between the two poses that bracket it (linear in position, slerp in rotation),
else the nearest pose within ODOMETRY_TOLERANCE_NS, else none.
"""

from __future__ import annotations

import bisect

import numpy as np

from loc3r_core.errors import DataError
from loc3r_core.quaternions import pose_from_quaternion, slerp

ODOMETRY_TOLERANCE_NS = 100_000_000  # nearest pose accepted this far from the image (0.1 s)
MAX_ODOMETRY_GAP_NS = 1_000_000_000  # no interpolation across an odometry dropout longer than this
ODOMETRY_HISTORY = 512  # poses kept for matching (several seconds at usual rates; bounds memory)


def format_stamp(stamp_ns: int) -> str:
    return f"stamp {stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d} s"


class OdometryHistory:
    """The latest ODOMETRY_HISTORY poses (T_odom_base), sorted by stamp."""

    def __init__(self, source: str) -> None:
        self.source = source  # named in errors, e.g. "rec.mcap: odometry on /odom"
        self.stamps: list[int] = []
        self.poses: list[tuple[np.ndarray, np.ndarray]] = []  # (position, unit quaternion xyzw)

    def add(self, stamp: int, position: np.ndarray, quaternion: np.ndarray) -> None:
        """Keep one pose; a non-finite one or a zero quaternion is a DataError (and is not kept)."""
        position = np.asarray(position, dtype=np.float64)
        quaternion = np.asarray(quaternion, dtype=np.float64)
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(quaternion))):
            raise DataError(f"{self.source} at {format_stamp(stamp)} is not finite "
                            f"(position {position.tolist()}, orientation {quaternion.tolist()})")
        norm = float(np.linalg.norm(quaternion))
        if norm < 1e-6:
            raise DataError(f"{self.source} at {format_stamp(stamp)} has a zero quaternion")
        index = bisect.bisect_right(self.stamps, stamp)  # out-of-order stamps still end up sorted
        self.stamps.insert(index, stamp)
        self.poses.insert(index, (position, quaternion / norm))
        if len(self.stamps) > ODOMETRY_HISTORY:
            del self.stamps[0], self.poses[0]

    def latest(self) -> int | None:
        return self.stamps[-1] if self.stamps else None

    def pose_at(self, stamp: int) -> np.ndarray | None:
        """T_odom_base at stamp (4x4), or None where odometry does not cover it."""
        if not self.stamps:
            return None
        after = bisect.bisect_left(self.stamps, stamp)
        before = after - 1
        if after < len(self.stamps) and self.stamps[after] == stamp:
            return pose_from_quaternion(*self.poses[after])
        if before >= 0 and after < len(self.stamps):
            t0, t1 = self.stamps[before], self.stamps[after]
            if t1 - t0 <= MAX_ODOMETRY_GAP_NS:
                t = (stamp - t0) / (t1 - t0)
                (p0, q0), (p1, q1) = self.poses[before], self.poses[after]
                return pose_from_quaternion(p0 + t * (p1 - p0), slerp(q0, q1, t))
        nearest = min((i for i in (before, after) if 0 <= i < len(self.stamps)),
                      key=lambda i: abs(self.stamps[i] - stamp))
        if abs(self.stamps[nearest] - stamp) <= ODOMETRY_TOLERANCE_NS:
            return pose_from_quaternion(*self.poses[nearest])
        return None
