"""A synthetic scene played as a camera stream: what the demo, the benchmark and the tests feed in.

The scene's world frame is already the anchored frame of its first camera (the map frame the
session builds), so ground truth and estimates compare directly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from loc3r_core.errors import DataError
from loc3r_core.geometry import camera_yaw, make_pose, rot_z
from loc3r_core.runtime.floor_scale import CameraMount
from loc3r_core.types import InputFrame
from loc3r_core.world.knobs import split_named
from loc3r_core.world.scene_io import SceneFolder

DEMO_SEED = 2026  # none of the standard splits uses it: a scene no model was trained or tested on


def scene_camera_mount(folder: SceneFolder) -> CameraMount:
    """The walk's camera height and pitch (what a robot's TF gives the node), from the scene's generator metadata."""
    meta = folder.meta
    if "camera_height" not in meta:
        raise DataError(f"{folder.path} records no camera height (regenerate it with `loc3r data generate`)")
    return CameraMount(float(meta["camera_height"]), float(meta.get("camera_pitch_deg", 0.0)))


def fresh_scene(out_dir: Path, split: str = "test", seed: int = DEMO_SEED, index: int = 0) -> SceneFolder:
    """Render one new scene with a standard split's knobs (MuJoCo, a few seconds) into out_dir."""
    from loc3r_core.world.generate import generate_scene, scene_name  # MuJoCo only when a scene is made

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / scene_name(index), ignore_errors=True)  # a scene an earlier run left there
    generate_scene(out_dir, index, seed, split_named(split).knobs)
    return SceneFolder(out_dir / scene_name(index))


def base_pose(T_world_camera: np.ndarray) -> np.ndarray:
    """The robot base under a camera: on the floor, x along the camera's heading (REP-103)."""
    return make_pose(rot_z(float(camera_yaw(T_world_camera))), np.array([T_world_camera[0, 3],
                                                                         T_world_camera[1, 3], 0.0]))


def scene_frames(folder: SceneFolder, odometry: bool = True, start_ns: int = 0) -> Iterator[InputFrame]:
    """The scene's frames with their stamps (from start_ns) and intrinsics, and perfect odometry if asked."""
    scene = folder.scene
    for frame in scene.frames:
        yield InputFrame(stamp_ns=start_ns + round(frame.stamp * 1e9), rgb=folder.rgb(frame.index),
                         intrinsics=scene.intrinsics,
                         odometry=base_pose(frame.T_world_camera) if odometry else None)
