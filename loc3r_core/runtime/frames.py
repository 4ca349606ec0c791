"""REP-105 transforms from the session's estimates: what goes on /tf.

With odometry, map->odom absorbs the difference between where the model puts the robot and
where odometry does (odom->base stays the odometry's, continuous); without it, map->base.
"""

from __future__ import annotations

import numpy as np

from loc3r_core.geometry import invert_pose, make_pose, rot_z
from loc3r_core.types import PlanarPose


def pose_matrix(pose: PlanarPose) -> np.ndarray:
    """T_map_base of a planar pose (on the floor, z = 0)."""
    return make_pose(rot_z(pose.yaw), np.array([pose.x, pose.y, 0.0]))


def map_to_odom(pose: PlanarPose, T_odom_base: np.ndarray) -> np.ndarray:
    """T_map_odom = T_map_base · T_odom_base⁻¹."""
    return pose_matrix(pose) @ invert_pose(np.asarray(T_odom_base, dtype=np.float64))


def tf_chain(pose: PlanarPose, odometry: np.ndarray | None, frames: dict[str, str],
             with_odometry: bool = False) -> list[tuple[str, str, np.ndarray]]:
    """(parent, child, T_parent_child) for /tf; frames names "map", "odom" and "base".

    with_odometry adds odom->base itself: on a robot its odometry source publishes that, but a
    recording written offline needs it for a complete tree.
    """
    if odometry is None:
        return [(frames["map"], frames["base"], pose_matrix(pose))]
    chain = [(frames["map"], frames["odom"], map_to_odom(pose, odometry))]
    if with_odometry:
        chain.append((frames["odom"], frames["base"], np.asarray(odometry, dtype=np.float64)))
    return chain
