"""How good is the robot's map? The final layout of a walk scored against the scene's truth.

Pure functions over a `Layout` (map frame), the scene (world frame) and T_world_map, the
session's map frame in the world (for a generated scene: its first camera on the floor, see
`map_frame`). Cells are judged by their centres. The definitions (issue 13):

- occupied precision: share of occupied cells within OCCUPIED_REACH_M of a wall (the room
  polygon's boundary) or an object footprint;
- free precision: share of free cells inside the room and outside every footprint;
- free coverage: share of the room's free floor (cells whose centre lies inside the room and at
  least FLOOR_CLEARANCE_M clear of walls and footprints) marked free;
- wall recall: share of points every WALL_STEP_M along the walls with an occupied cell within
  WALL_REACH_M;
- objects: a map object is right when its label is a true object's and its centre lies within
  OBJECT_MATCH_M of that object's footprint; pairs are taken greedily, nearest first, each true
  and each map object at most once. Recall over all the scene's objects (the map of a whole
  walk) and over those the camera saw; precision; F1 = 2 matched / (map + true objects).
- boxes, over the matched pairs: object_box_iou, the mean intersection over union of the map
  box's footprint and the true one; object_area_ratio, the median of map box area / true
  footprint area (1 is the right size, 2 twice too large).
- confidence calibration: the map objects of all scenes pooled in confidence bins of 0.1; per
  bin, how many, their mean confidence and the share of them that is right (matched, as above);
  the calibration error is the mean |share right - mean confidence| weighted by the bins' counts.
- confusion: the same greedy matching by position alone; true label vs map label, with
  "missed" (true objects no map object lies near) and "spurious" (map objects near nothing).

A metric with nothing to count (precision of a map with no occupied cell) is NaN, and means
skip it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from loc3r_core.evaluation.objects import OBJECT_MATCH_M
from loc3r_core.geometry import anchor_frame, invert_pose
from loc3r_core.types import FREE, OCCUPIED, UNKNOWN, Layout, MapObject
from loc3r_core.world.polygon import box_iou, contains, distance_to_boundary, distance_to_box
from loc3r_core.world.scene import Scene, SceneObject

OCCUPIED_REACH_M = 0.25
FLOOR_CLEARANCE_M = 0.1
WALL_STEP_M = 0.1
WALL_REACH_M = 0.3
MISSED, SPURIOUS = "missed", "spurious"
CELL_METRICS = ("occupied_precision", "free_precision", "free_coverage", "wall_recall")
OBJECT_METRICS = ("object_recall", "object_recall_seen", "object_precision", "object_f1")
BOX_METRICS = ("object_box_iou", "object_area_ratio")
COUNTS = ("objects_true", "objects_seen", "objects_map", "objects_matched", "objects_seen_matched")


def map_frame(scene: Scene) -> np.ndarray:
    """T_world_map: the session's map frame is its first keyframe's camera on the floor.

    The same anchoring training uses for a clip (geometry.anchor_frame); the first frame is
    always a keyframe, so it is the first frame's.
    """
    return invert_pose(anchor_frame(scene.frames[0].T_world_camera))


def cell_centres(layout: Layout, mask: np.ndarray) -> np.ndarray:
    """Map-frame centres (N, 2) of the cells where mask is true."""
    rows, cols = np.nonzero(mask)
    return np.stack([layout.origin[0] + (cols + 0.5) * layout.resolution,
                     layout.origin[1] + (rows + 0.5) * layout.resolution], axis=1)


def occupancy_at(layout: Layout, xy: np.ndarray) -> np.ndarray:
    """Cell values at map-frame points (N, 2); UNKNOWN outside the grid."""
    col = np.floor((xy[:, 0] - layout.origin[0]) / layout.resolution).astype(np.int64)
    row = np.floor((xy[:, 1] - layout.origin[1]) / layout.resolution).astype(np.int64)
    rows, cols = layout.occupancy.shape
    inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
    values = np.full(len(xy), UNKNOWN, dtype=np.int64)
    values[inside] = layout.occupancy[row[inside], col[inside]]
    return values


def footprint_distance(objects: Sequence[SceneObject], xy: np.ndarray) -> np.ndarray:
    """(N,) distance from points to the nearest footprint (0 inside one; inf with no objects)."""
    distance = np.full(len(xy), np.inf)
    for obj in objects:
        distance = np.minimum(distance, distance_to_box(xy, obj.center[:2], obj.size[:2], obj.yaw))
    return distance


def structure_distance(scene: Scene, xy: np.ndarray) -> np.ndarray:
    """(N,) distance from points to the nearest wall or footprint: what an occupied cell should mark."""
    if len(xy) == 0:
        return np.zeros(0)
    return np.minimum(distance_to_boundary(scene.room.polygon, xy), footprint_distance(scene.objects, xy))


def _share(hits: np.ndarray) -> float:
    return float(np.mean(hits)) if len(hits) else math.nan


def occupied_precision(layout: Layout, scene: Scene) -> float:
    """Share of occupied cells near a wall or a footprint (scene in the map frame)."""
    xy = cell_centres(layout, layout.occupancy == OCCUPIED)
    return _share(structure_distance(scene, xy) <= OCCUPIED_REACH_M)


def free_precision(layout: Layout, scene: Scene) -> float:
    """Share of free cells inside the room and outside every footprint."""
    xy = cell_centres(layout, layout.occupancy == FREE)
    if len(xy) == 0:
        return math.nan
    return _share(contains(scene.room.polygon, xy) & (footprint_distance(scene.objects, xy) > 0))


def floor_cells(layout: Layout, scene: Scene) -> np.ndarray:
    """Centres (N, 2) of the room's free floor on the layout's cell lattice, grid edge or not.

    The lattice is extended past the grid to the room's extent, so floor the fixed-size grid
    cannot hold counts as not covered rather than vanishing from the denominator.
    """
    r, (ox, oy) = layout.resolution, layout.origin
    low, high = scene.room.polygon.min(axis=0), scene.room.polygon.max(axis=0)
    cols = np.arange(math.floor((low[0] - ox) / r), math.ceil((high[0] - ox) / r))
    rows = np.arange(math.floor((low[1] - oy) / r), math.ceil((high[1] - oy) / r))
    xy = np.stack(np.meshgrid(ox + (cols + 0.5) * r, oy + (rows + 0.5) * r), axis=-1).reshape(-1, 2)
    inside = contains(scene.room.polygon, xy)
    xy = xy[inside]
    return xy[structure_distance(scene, xy) >= FLOOR_CLEARANCE_M]


def free_coverage(layout: Layout, scene: Scene) -> float:
    """Share of the room's free floor the map marks free."""
    return _share(occupancy_at(layout, floor_cells(layout, scene)) == FREE)


def wall_points(polygon: np.ndarray, step: float = WALL_STEP_M) -> np.ndarray:
    """Points (N, 2) along a closed polygon's edges, at most `step` apart."""
    points = []
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        count = max(1, math.ceil(float(np.linalg.norm(b - a)) / step))
        points.append(a + (np.arange(count) / count)[:, None] * (b - a))
    return np.concatenate(points)


def wall_recall(layout: Layout, scene: Scene) -> float:
    """Share of wall points with an occupied cell (its centre) within WALL_REACH_M."""
    walls = wall_points(scene.room.polygon)
    occupied = cell_centres(layout, layout.occupancy == OCCUPIED)
    if len(occupied) == 0:
        return 0.0
    near = np.zeros(len(walls), dtype=bool)
    for start in range(0, len(occupied), 2048):  # bounded memory however full the map
        block = occupied[start:start + 2048]
        near |= (np.linalg.norm(walls[:, None] - block[None], axis=-1) <= WALL_REACH_M).any(axis=1)
    return _share(near)


def match_objects(found: Sequence[MapObject], truth: Sequence[SceneObject], same_label: bool = True,
                  reach: float = OBJECT_MATCH_M) -> list[tuple[int, int]]:
    """(map index, true index) pairs: greedy by centre-to-footprint distance, nearest first, one-to-one."""
    pairs = []
    for i, obj in enumerate(found):
        for j, true in enumerate(truth):
            if same_label and obj.label != true.label:
                continue
            distance = float(distance_to_box(obj.center[:2], true.center[:2], true.size[:2], true.yaw))
            if distance <= reach:
                pairs.append((distance, i, j))
    used_map, used_true, matches = set(), set(), []
    for _, i, j in sorted(pairs):
        if i not in used_map and j not in used_true:
            used_map.add(i)
            used_true.add(j)
            matches.append((i, j))
    return matches


def confusion(found: Sequence[MapObject], truth: Sequence[SceneObject]) -> dict[str, dict[str, int]]:
    """{true label: {map label: count}}, matched by position only; "missed" and "spurious" for the rest."""
    table: dict[str, Counter] = {}
    matches = match_objects(found, truth, same_label=False)
    for i, j in matches:
        table.setdefault(truth[j].label, Counter())[found[i].label] += 1
    matched_map, matched_true = {i for i, _ in matches}, {j for _, j in matches}
    for j, true in enumerate(truth):
        if j not in matched_true:
            table.setdefault(true.label, Counter())[MISSED] += 1
    for i, obj in enumerate(found):
        if i not in matched_map:
            table.setdefault(SPURIOUS, Counter())[obj.label] += 1
    return {true: dict(row) for true, row in sorted(table.items())}


def object_scores(found: Sequence[MapObject], truth: Sequence[SceneObject],
                  seen_ids: set[int] | None = None) -> dict:
    """Recall (all and seen), precision, F1, the matched boxes' fit and the counts behind them (scene in the
    map frame)."""
    matches = match_objects(found, truth)
    matched_ids, matched_map = {truth[j].id for _, j in matches}, {i for i, _ in matches}
    ious = [box_iou(found[i].center[:2], found[i].size[:2], found[i].yaw,
                    truth[j].center[:2], truth[j].size[:2], truth[j].yaw) for i, j in matches]
    area_ratios = [float(np.prod(found[i].size[:2]) / np.prod(truth[j].size[:2])) for i, j in matches]
    seen = {o.id for o in truth} if seen_ids is None else seen_ids & {o.id for o in truth}
    n_true, n_map, n_hit = len(truth), len(found), len(matches)
    return {
        "object_recall": n_hit / n_true if n_true else math.nan,
        "object_recall_seen": len(matched_ids & seen) / len(seen) if seen else math.nan,
        "object_precision": n_hit / n_map if n_map else math.nan,
        "object_f1": 2 * n_hit / (n_true + n_map) if n_true + n_map else math.nan,
        "object_box_iou": float(np.mean(ious)) if ious else math.nan,
        "object_area_ratio": float(np.median(area_ratios)) if area_ratios else math.nan,
        "objects_true": n_true, "objects_seen": len(seen), "objects_map": n_map, "objects_matched": n_hit,
        "objects_seen_matched": len(matched_ids & seen),
        "object_confidences": [[float(obj.confidence), i in matched_map] for i, obj in enumerate(found)],
    }


def confidence_calibration(confidences: Sequence[tuple[float, bool]], width: float = 0.1) -> dict:
    """Map objects binned by confidence: per bin the count, mean confidence and share right, and the
    count-weighted mean gap between the two (expected calibration error); NaN with no object."""
    bins: dict[int, list[tuple[float, bool]]] = {}
    for confidence, right in confidences:
        bins.setdefault(min(int(confidence / width), round(1 / width) - 1), []).append((confidence, right))
    rows = [{"low": round(k * width, 3), "high": round((k + 1) * width, 3), "objects": len(v),
             "mean_confidence": float(np.mean([c for c, _ in v])), "share_right": float(np.mean([r for _, r in v]))}
            for k, v in sorted(bins.items())]
    total = sum(row["objects"] for row in rows)
    error = sum(row["objects"] * abs(row["share_right"] - row["mean_confidence"]) for row in rows) / total \
        if total else math.nan
    return {"bins": rows, "error": error}


def score_layout(layout: Layout, scene: Scene, T_world_map: np.ndarray, seen_ids: set[int] | None = None) -> dict:
    """Every metric of one map: `scene` in the world frame, the layout in the map frame."""
    truth = scene.transformed(invert_pose(T_world_map))
    return {
        "occupied_precision": occupied_precision(layout, truth),
        "free_precision": free_precision(layout, truth),
        "free_coverage": free_coverage(layout, truth),
        "wall_recall": wall_recall(layout, truth),
        **object_scores(layout.objects, truth.objects, seen_ids),
        "confusion": confusion(layout.objects, truth.objects),
    }


def mean_scores(per_scene: Iterable[dict]) -> dict:
    """Means of the per-scene metrics (skipping NaN), summed counts, and the summed confusion table."""
    per_scene = list(per_scene)
    means: dict = {}
    for key in (*CELL_METRICS, *OBJECT_METRICS, *BOX_METRICS):
        values = [s[key] for s in per_scene if not math.isnan(s[key])]
        means[key] = float(np.mean(values)) if values else math.nan
    for key in COUNTS:
        means[key] = int(sum(s[key] for s in per_scene))
    table: dict[str, Counter] = {}
    for s in per_scene:
        for true, row in s["confusion"].items():
            table.setdefault(true, Counter()).update(row)
    means["confusion"] = {true: dict(row) for true, row in sorted(table.items())}
    means["confidence_calibration"] = confidence_calibration([pair for s in per_scene
                                                              for pair in s["object_confidences"]])
    return means
