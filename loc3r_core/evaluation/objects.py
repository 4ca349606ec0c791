"""Object-level perception, scored from the model's own per-token outputs, and the
`semantic_pointer` reference that places a situation with nothing but those outputs.

Every vision token gives a BEV point and a label. An object is found when some token of its
class puts its point within OBJECT_MATCH_M of the object's footprint; a token of an object class
is a true positive when it lies that close to any object of its class.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np

from loc3r_core.geometry import heading_to
from loc3r_core.world.polygon import distance_to_box
from loc3r_core.world.vocabulary import PATCH_CLASSES, STRUCTURE_CLASSES

OBJECT_MATCH_M = 0.5
FIRST_OBJECT_CLASS = len(STRUCTURE_CLASSES)
# edges (m) of the bands `object_point_precision_by_range` sorts object tokens into, by their distance
# from their frame's camera: far points are where a monocular model's depth, and so its precision, goes
RANGE_BAND_EDGES_M = (2.0, 3.0, 4.0, 5.0)


def footprint_distances(points: np.ndarray, objects: list[dict]) -> np.ndarray:
    """(N, O) floor distance from each point (N, 2) to each object's footprint (0 inside)."""
    if not objects:
        return np.zeros((len(points), 0))
    return np.stack([distance_to_box(points, o["center"], o["size"], o["yaw"]) for o in objects], axis=1)


def token_matches(points: np.ndarray, labels: np.ndarray, objects: list[dict]) -> np.ndarray:
    """(N, O): token i carries object j's class and lies within OBJECT_MATCH_M of its footprint."""
    classes = np.array([o["class"] for o in objects], dtype=np.int64)
    return (footprint_distances(points, objects) <= OBJECT_MATCH_M) & (labels[:, None] == classes[None, :])


class ObjectAccumulator:
    """Collects per-clip object results; `summary()` gives the JSON-ready numbers (percentages)."""

    def __init__(self) -> None:
        self.found: dict[int, list[bool]] = defaultdict(list)  # class -> one entry per seen object
        self.point_hits = 0
        self.point_total = 0
        self.object_bev_error: list[np.ndarray] = []
        self.band_hits = np.zeros(len(RANGE_BAND_EDGES_M) + 1, dtype=np.int64)
        self.band_total = np.zeros(len(RANGE_BAND_EDGES_M) + 1, dtype=np.int64)

    def add_clip(self, points: np.ndarray, labels: np.ndarray, objects: list[dict], seen_ids: set[int] | list[int],
                 bev_target: np.ndarray, bev_valid: np.ndarray, true_labels: np.ndarray,
                 cameras: np.ndarray | None = None) -> None:
        """One clip: (F, P, 2) predicted points and (F, P) labels, the true objects in the same frame,
        the ids seen in the clip's frames, and the per-patch targets (for the BEV error of object patches).
        cameras (F, 2), each frame's camera where the model puts it, sorts the object tokens by range."""
        flat_points, flat_labels = points.reshape(-1, 2), labels.reshape(-1)
        matches = token_matches(flat_points, flat_labels, objects)
        seen = set(seen_ids)
        for j, obj in enumerate(objects):
            if obj["id"] in seen:
                self.found[obj["class"]].append(bool(matches[:, j].any()))
        is_object = flat_labels >= FIRST_OBJECT_CLASS
        hits = matches[is_object].any(axis=1)
        self.point_total += int(is_object.sum())
        self.point_hits += int(hits.sum())
        if cameras is not None:
            distance = np.linalg.norm(points - np.asarray(cameras)[:, None, :], axis=-1).reshape(-1)[is_object]
            band = np.digitize(distance, RANGE_BAND_EDGES_M)
            np.add.at(self.band_total, band, 1)
            np.add.at(self.band_hits, band[hits], 1)
        object_patches = (true_labels >= FIRST_OBJECT_CLASS) & bev_valid
        self.object_bev_error.append(np.linalg.norm(points - bev_target, axis=-1)[object_patches])

    def summary(self) -> dict:
        by_class = {PATCH_CLASSES[c]: round(100.0 * float(np.mean(hits)), 2) for c, hits in sorted(self.found.items())}
        errors = np.concatenate(self.object_bev_error) if self.object_bev_error else np.array([])
        return {
            "object_recall_by_class": by_class,
            "object_recall": round(float(np.mean(list(by_class.values()))), 2) if by_class else float("nan"),
            "object_point_precision": round(100.0 * self.point_hits / self.point_total, 2)
            if self.point_total else float("nan"),
            "object_bev_median_error_m": round(float(np.median(errors)), 4) if errors.size else float("nan"),
            "num_seen_objects": sum(len(hits) for hits in self.found.values()),
            **({"object_point_precision_by_range": self.precision_by_range()} if self.band_total.any() else {}),
        }

    def precision_by_range(self) -> dict[str, dict[str, float | None]]:
        """Per range band ("0-2 m", ..., "5+ m"): the object tokens' point precision (None for an empty
        band) and the band's share of all object tokens, both in percent."""
        edges = (0.0, *RANGE_BAND_EDGES_M)
        names = [f"{low:g}-{high:g} m" for low, high in itertools.pairwise(edges)] + [f"{edges[-1]:g}+ m"]
        total = int(self.band_total.sum())
        return {name: {"precision": round(100.0 * hits / count, 2) if count else None,
                       "share": round(100.0 * count / total, 2)}
                for name, hits, count in zip(names, self.band_hits.tolist(), self.band_total.tolist(), strict=True)}


def semantic_pointer(points: np.ndarray, labels: np.ndarray, named: tuple[int, int], path_xy: np.ndarray,
                     path_yaw: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """Place a situation from the model's own map, without learning: stand at the mean point of the
    tokens labelled with the class the sentence names first, and face the mean point of the tokens of
    the class it faces (named last). Where the two are the same object, face it from the centre of the
    camera path; where a class has no token, fall back to the centre of the (predicted) camera path and
    its mean heading. Returns position (2,), yaw, and whether the first-named class was found.
    """
    flat_points, flat_labels = points.reshape(-1, 2), labels.reshape(-1)
    centre = path_xy.mean(axis=0)

    def spot(cls: int) -> np.ndarray | None:
        mine = flat_labels == cls
        return flat_points[mine].mean(axis=0) if mine.any() else None

    anchor_class, facing_class = named
    anchor, facing = spot(anchor_class), spot(facing_class)
    position = anchor if anchor is not None else centre
    if facing is not None and facing_class != anchor_class:
        yaw = heading_to(position, facing)
    elif anchor is not None:
        yaw = heading_to(centre, anchor)
    else:
        yaw = math.atan2(float(np.sin(path_yaw).mean()), float(np.cos(path_yaw).mean()))
    return position, float(yaw), anchor is not None
