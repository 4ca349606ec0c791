"""Single frames with per-patch targets, held in memory: what pretraining the vision tower reads.

Each frame gives its image at the model's input size, a class per patch (see
data.targets.PATCH_TARGETS), the patch's point in the camera frame (x right, y down,
z forward, metres) and, where the patch shows a fronted object, the way that object faces
in the camera's floor plane: what a tower must see in one image, before any video context.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from loc3r_core.data.targets import patch_targets
from loc3r_core.geometry import invert_pose, transform_points
from loc3r_core.runtime.preprocess import quantised_image
from loc3r_core.world.scene_io import SceneFolder, SceneRoots, scene_folders


@dataclass
class FrameArrays:
    images: np.ndarray  # (N, S, S, 3) uint8, exactly what model_image feeds the model (times 255)
    labels: np.ndarray  # (N, P) class per patch, -1 where the patch has no depth
    points: np.ndarray  # (N, P, 3) float32 camera-frame point of the patch (0 where invalid)
    valid: np.ndarray  # (N, P) bool
    # (N, P, 2) float32 unit (x, z) in the camera frame: the way the patch's object faces, seen from
    # above in the camera's axes (data.targets.FRONTED_PLACEMENTS); 0 where the patch shows none
    fronts: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _scene_arrays(job: tuple[Path, int, tuple[int, int], str]) -> tuple[np.ndarray, ...]:
    path, image_size, grid, mode = job
    folder = SceneFolder(path)
    scene = folder.scene
    images, labels, points, valid, fronts = [], [], [], [], []
    for frame in scene.frames:
        targets = patch_targets(folder.depth(frame.index), folder.instance(frame.index), scene.intrinsics,
                                frame.T_world_camera, scene, grid, mode, centres=True)
        camera = transform_points(invert_pose(frame.T_world_camera), targets["points"])
        images.append(stored_image(folder, frame.index, image_size).transpose(1, 2, 0))
        labels.append(targets["label"].reshape(-1))
        points.append(np.nan_to_num(camera).reshape(-1, 3).astype(np.float32))
        valid.append(targets["valid"].reshape(-1))
        fronts.append(camera_fronts(targets["fronts"], frame.T_world_camera).reshape(-1, 2))
    return np.stack(images), np.stack(labels), np.stack(points), np.stack(valid), np.stack(fronts)


def camera_fronts(fronts: np.ndarray, T_world_camera: np.ndarray) -> np.ndarray:
    """(..., 2) world-frame fronts on the floor (NaN: none) -> (..., 2) float32 unit (x, z) in the
    camera frame, the floor plane as the (slightly pitched) camera sees it; 0 where none."""
    world = np.concatenate([np.nan_to_num(fronts), np.zeros((*fronts.shape[:-1], 1))], axis=-1)
    seen = (world @ T_world_camera[:3, :3])[..., [0, 2]]  # R_camera_world @ v for each v
    length = np.linalg.norm(seen, axis=-1, keepdims=True)
    unit = np.divide(seen, length, out=np.zeros_like(seen), where=length > 1e-6)
    return np.where(np.isnan(fronts[..., :1]), 0.0, unit).astype(np.float32)


def load_frames(roots: SceneRoots, image_size: int, grid: tuple[int, int], mode: str,
                max_scenes: int | None = None, workers: int = 1, progress: bool = True,
                desc: str = "training frames") -> FrameArrays:
    """Every frame of every complete scene under roots (the first max_scenes), in scene order."""
    jobs = [(path, image_size, grid, mode) for path in scene_folders(roots, max_scenes)]
    bar = tqdm(total=len(jobs), desc=desc, unit="scene", disable=not progress,
               leave=False)
    parts = []
    with bar:
        if workers > 1:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for part in pool.imap(_scene_arrays, jobs, chunksize=4):
                    parts.append(part)
                    bar.update(1)
        else:
            for job in jobs:
                parts.append(_scene_arrays(job))
                bar.update(1)
    return FrameArrays(*(np.concatenate([p[i] for p in parts]) for i in range(5)))


def walk_frames(folder: SceneFolder, image_size: int) -> np.ndarray:
    """(F, 3, S, S) uint8: every frame of a walk, in order, as model_image feeds it (times 255):
    what the motion network reads, in training and in `loc3r eval --prior visual`."""
    return np.stack([stored_image(folder, frame.index, image_size) for frame in folder.scene.frames])


def stored_image(folder: SceneFolder, index: int, image_size: int) -> np.ndarray:
    """(3, S, S) uint8: frame `index` as model_image feeds it, times 255 (frames held in memory)."""
    return quantised_image(folder.rgb(index), image_size)
