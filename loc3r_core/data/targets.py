"""Per-pixel classes and per-patch targets from depth, instances and the camera pose (numpy)."""

from __future__ import annotations

import numpy as np

from loc3r_core.geometry import Intrinsics, backproject
from loc3r_core.world.scene import Scene
from loc3r_core.world.vocabulary import CATEGORY_BY_NAME, LABELS, STRUCTURE_CLASSES

STRUCTURE_TOLERANCE_M = 0.03  # a structure point this close to z = 0 is floor, to the ceiling is ceiling
UNKNOWN_CLASS = -1
# How a patch's label and point are chosen:
# - majority: the most common pixel class, and the mean point of all the patch's pixels;
# - objects_first: an object class covering at least PRESENT_SHARE of the patch wins over
#   structure (the largest such object class), else the majority class; the point is the mean
#   of that class's own pixels. Small objects (a lamp, a trash can) rarely win a majority of a
#   16-px patch, so majority labels bury them; this keeps them, and keeps their points on them.
PATCH_TARGETS = ("majority", "objects_first")
PRESENT_SHARE = 0.10
# Objects whose box yaw says which way they face: a wall piece's +x faces the room, a chair's
# its table (the generator stands people in front of them and seats them facing that way).
FRONTED_PLACEMENTS = ("wall", "seat")


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
    mode: str = "majority",
    centres: bool = False,
    present_share: float = PRESENT_SHARE,
) -> dict[str, np.ndarray]:
    """Targets for a grid of rows x cols image patches (see PATCH_TARGETS for `mode`).

    points: (rows, cols, 3) world point of the patch (NaN if no pixel has depth); valid:
    (rows, cols) whether it has one; label: (rows, cols) its class (UNKNOWN_CLASS if none);
    object_pixels: (max id + 1,) pixels of each instance id in the whole frame; with `centres`,
    centres: (rows, cols, 3) the centre of the object the patch shows (the instance most of its
    chosen pixels belong to), the patch's own point where it shows structure, and fronts:
    (rows, cols, 2) the world-frame unit vector that object faces (NaN where the patch shows
    no fronted object). `present_share`: objects_first's share of a patch that makes an object present.
    """
    if mode not in PATCH_TARGETS:
        raise ValueError(f"patch targets must be one of {PATCH_TARGETS}, not {mode!r}")
    rows, cols = grid
    height, width = depth.shape
    if height % rows or width % cols:
        raise ValueError(f"a {rows}x{cols} patch grid does not divide a {width}x{height} image")
    points = backproject(depth, intrinsics, T_world_camera)
    classes = pixel_classes(points, instance, scene)
    ph, pw = height // rows, width // cols
    blocks = points.reshape(rows, ph, cols, pw, 3).transpose(0, 2, 1, 3, 4).reshape(rows, cols, ph * pw, 3)
    class_blocks = classes.reshape(rows, ph, cols, pw).transpose(0, 2, 1, 3).reshape(rows, cols, ph * pw)
    n_classes = len(STRUCTURE_CLASSES) + len(LABELS)
    one_hot = class_blocks[..., None] == np.arange(n_classes)  # (rows, cols, pixels, classes)
    votes = one_hot.sum(axis=2)
    label = np.where(votes.max(axis=-1) > 0, votes.argmax(axis=-1), UNKNOWN_CLASS)
    if mode == "majority":
        chosen = ~np.isnan(blocks[..., 0])
    else:
        structure = len(STRUCTURE_CLASSES)
        object_votes = votes[..., structure:]
        present = object_votes.max(axis=-1) >= present_share * ph * pw
        label = np.where(present, structure + object_votes.argmax(axis=-1), label)
        chosen = class_blocks == label[..., None]
    count = chosen.sum(axis=-1)
    summed = np.where(chosen[..., None], np.nan_to_num(blocks), 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = summed / count[..., None]
    targets = {"points": mean, "valid": count > 0, "label": label,
               "object_pixels": np.bincount(instance.ravel().astype(np.int64))}
    if centres:
        instance_blocks = instance.reshape(rows, ph, cols, pw).transpose(0, 2, 1, 3).reshape(rows, cols, ph * pw)
        shown = patch_objects(label, chosen, instance_blocks)
        targets["centres"] = object_centres(mean, shown, scene)
        targets["fronts"] = object_fronts(shown, scene)
    return targets


def subdivide(fine: np.ndarray, grid: tuple[int, int], subdivision: int) -> np.ndarray:
    """(rows * s, cols * s, ...) targets of a finer grid -> (rows * cols, s * s, ...): each token's
    s x s sub-patches, tokens row-major, sub-patches row-major within the token."""
    rows, cols = grid
    s = subdivision
    rest = fine.shape[2:]
    order = (0, 2, 1, 3, *range(4, 4 + len(rest)))
    return fine.reshape(rows, s, cols, s, *rest).transpose(order).reshape(rows * cols, s * s, *rest)


def patch_objects(label: np.ndarray, chosen: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """(rows, cols) the instance id most of each object patch's chosen pixels belong to (0: none)."""
    shown = np.zeros(label.shape, dtype=np.int64)
    for r, c in zip(*np.nonzero(label >= len(STRUCTURE_CLASSES)), strict=True):
        ids = instances[r, c][chosen[r, c] & (instances[r, c] > 0)]
        if ids.size:
            shown[r, c] = int(np.bincount(ids.astype(np.int64)).argmax())
    return shown


def object_centres(points: np.ndarray, shown: np.ndarray, scene: Scene) -> np.ndarray:
    """(rows, cols, 3): where a pointer at a patch's object should land, its box centre (a mean of
    visible surface points sits on the near face, ~0.6 m off for a bed); points where no object."""
    centres = points.copy()
    by_id = {obj.id: obj.center for obj in scene.objects}
    for r, c in zip(*np.nonzero(shown), strict=True):
        centres[r, c] = by_id[int(shown[r, c])]
    return centres


def object_fronts(shown: np.ndarray, scene: Scene) -> np.ndarray:
    """(rows, cols, 2): the world-frame unit vector (cos yaw, sin yaw) the patch's object faces,
    for fronted objects (FRONTED_PLACEMENTS); NaN elsewhere."""
    fronts = np.full((*shown.shape, 2), np.nan)
    by_id = {obj.id: obj for obj in scene.objects if CATEGORY_BY_NAME[obj.label].placement in FRONTED_PLACEMENTS}
    for r, c in zip(*np.nonzero(shown), strict=True):
        obj = by_id.get(int(shown[r, c]))
        if obj is not None:
            fronts[r, c] = np.cos(obj.yaw), np.sin(obj.yaw)
    return fronts
