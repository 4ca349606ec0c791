"""A robot's fixed transforms (what /tf_static carries) as a tree that answers "where is frame A in frame B".

A robot's URDF puts the camera's mount on /tf_static (robot_state_publisher, or a
static_transform_publisher): base_footprint -> base_link -> camera_link -> camera_optical_frame.
The floor scale needs the camera's pose in the floor's frame, the product of that chain.
tf2_ros does this on a robot but is not on PyPI; the tree here is all loc3r needs of it: static
transforms only (a mount does not move), the latest one per child frame, as tf2 keeps them.
Below runtime/ and io/: the node, the bag reader and the CLI all fill one.
"""

from __future__ import annotations

import numpy as np

from loc3r_core.geometry import invert_pose
from loc3r_core.quaternions import pose_from_quaternion

DEFAULT_FLOOR_FRAME = "base_footprint"  # REP-120: the robot's frame on the floor, z up
MAX_DEPTH = 64  # frames between a frame and its tree's root: more means a cycle, not a robot


class StaticTransforms:
    """child frame -> (parent frame, T_parent_child), filled from TF messages."""

    def __init__(self) -> None:
        self._parents: dict[str, tuple[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._parents)

    def add(self, parent: str, child: str, T_parent_child: np.ndarray) -> None:
        """Add or replace child's transform; ValueError for an unnamed frame, a self-loop or a
        non-finite transform (one bad transform must not poison the tree)."""
        T = np.asarray(T_parent_child, dtype=np.float64)
        if not parent or not child or parent == child:
            raise ValueError(f"a transform needs two different named frames, not {parent!r} -> {child!r}")
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"transform {parent} -> {child} is not a finite 4x4 pose")
        self._parents[child] = (parent, T)

    def add_message(self, message: object) -> list[str]:
        """Add every transform of a tf2_msgs/TFMessage (an rclpy or a rosbags message: both name their
        fields alike); returns one line per transform left out, and why."""
        problems = []
        for stamped in message.transforms:
            t, q = stamped.transform.translation, stamped.transform.rotation
            quaternion = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
            norm = float(np.linalg.norm(quaternion))
            # tf2 drops a leading "/" from frame names (ROS 1 wrote them so)
            parent, child = stamped.header.frame_id.lstrip("/"), stamped.child_frame_id.lstrip("/")
            try:
                if not np.isfinite(norm) or norm < 1e-6:
                    raise ValueError(f"transform {parent} -> {child} has no valid rotation (quaternion {quaternion})")
                self.add(parent, child, pose_from_quaternion(np.array([t.x, t.y, t.z]), quaternion / norm))
            except ValueError as exc:
                problems.append(str(exc))
        return problems

    def _ancestors(self, frame: str) -> dict[str, np.ndarray]:
        """{ancestor: T_ancestor_frame} for frame itself and every frame above it."""
        chain, T, current = {frame: np.eye(4)}, np.eye(4), frame
        for _ in range(MAX_DEPTH):
            if current not in self._parents:
                return chain
            current, T_parent_current = self._parents[current]
            T = T_parent_current @ T
            if current in chain:
                raise ValueError(f"the static transforms loop through frame {current!r}")
            chain[current] = T
        raise ValueError(f"frame {frame!r} lies over {MAX_DEPTH} transforms below its root")

    def lookup(self, target: str, source: str) -> np.ndarray | None:
        """T_target_source: the source frame's pose in the target frame; None where no chain of
        transforms joins them."""
        above_source, above_target = self._ancestors(source), self._ancestors(target)
        for common, T_common_source in above_source.items():  # nearest first
            if common in above_target:
                return invert_pose(above_target[common]) @ T_common_source
        return None
