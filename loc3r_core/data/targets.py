"""Per-pixel classes and per-patch targets from depth, instances and the camera pose (numpy)."""

from __future__ import annotations

import numpy as np

from loc3r_core.geometry import Intrinsics, backproject
from loc3r_core.world.scene import Scene
from loc3r_core.world.vocabulary import LABELS, STRUCTURE_CLASSES

STRUCTURE_TOLERANCE_M = 0.03  # a structure point this close to z = 0 is floor, to the ceiling is ceiling
UNKNOWN_CLASS = -1


def pixel_classes(points: np.ndarray, instance: np.ndarray, scene: Scene) -> np.ndarray:
    """Class per pixel (index into PATCH_CLASSES); UNKNOWN_CLASS where depth is missing."""
    floor, wall, ceiling = (STRUCTURE_CLASSES.index(c) for c in ("floor", "wall", "ceiling"))
    z = points[..., 2]
    classes = np.full(instance.shape, wall, dtype=np.int64)
    classes[z < STRUCTURE_TOLERANCE_M] = floor
    classes[z > scene.room.height - STRUCTURE_TOLERANCE_M] = ceiling
    object_class = np.zeros(max((o.id for o in scene.objects), default=0) + 1, dtype=np.int64)
    for obj in scene.objects:
        object_class[obj.id] = len(STRUCTURE_CLASSES) + LABELS.index(obj.label)
    is_object = instance > 0
    classes[is_object] = object_class[instance[is_object]]
    classes[np.isnan(z)] = UNKNOWN_CLASS
    return classes


def patch_targets(
    depth: np.ndarray,
    instance: np.ndarray,
    intrinsics: Intrinsics,
    T_world_camera: np.ndarray,
    scene: Scene,
    grid: tuple[int, int],
) -> dict[str, np.ndarray]:
    """Targets for a grid of rows x cols image patches.

    points: (rows, cols, 3) mean world point of the patch's pixels with depth (NaN if none);
    valid: (rows, cols) whether the patch has any depth; label: (rows, cols) the most common
    pixel class in the patch (UNKNOWN_CLASS if none).
    """
    rows, cols = grid
    height, width = depth.shape
    if height % rows or width % cols:
        raise ValueError(f"a {rows}x{cols} patch grid does not divide a {width}x{height} image")
    points = backproject(depth, intrinsics, T_world_camera)
    classes = pixel_classes(points, instance, scene)
    ph, pw = height // rows, width // cols
    blocks = points.reshape(rows, ph, cols, pw, 3).transpose(0, 2, 1, 3, 4).reshape(rows, cols, ph * pw, 3)
    valid_pixels = ~np.isnan(blocks[..., 0])
    count = valid_pixels.sum(axis=-1)
    summed = np.where(valid_pixels[..., None], blocks, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = summed / count[..., None]
    class_blocks = classes.reshape(rows, ph, cols, pw).transpose(0, 2, 1, 3).reshape(rows, cols, ph * pw)
    n_classes = len(STRUCTURE_CLASSES) + len(LABELS)
    votes = np.stack([(class_blocks == c).sum(axis=-1) for c in range(n_classes)], axis=-1)
    label = np.where(votes.max(axis=-1) > 0, votes.argmax(axis=-1), UNKNOWN_CLASS)
    return {"points": mean, "valid": count > 0, "label": label}
