"""The long-term map: BEV points of every keyframe fused into a fixed metric grid.

Each keyframe's vision tokens give floor-plane points with a label distribution and a sigma.
A cell's evidence is the summed label probabilities of the points that fall in it, plus
"free" votes from the rays between the camera and those points (what the camera saw
through is empty). The grid's size is fixed, so memory stays flat however long the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loc3r_core.types import FREE, OCCUPIED, UNKNOWN, Layout, MapObject
from loc3r_core.world.vocabulary import CATEGORIES

STRUCTURE = ("floor", "wall", "ceiling")
OBJECT_HEIGHTS = {c.name: 0.5 * (c.size_min[2] + c.size_max[2]) for c in CATEGORIES}  # BEV gives no height


@dataclass(frozen=True)
class GridConfig:
    resolution: float = 0.1  # metres per cell
    size: float = 16.0  # metres per side, centred on the map origin
    max_point_sigma: float = 0.6  # points the model is less sure of (metres) are left out
    min_evidence: float = 0.5  # summed votes before a cell stops being unknown
    ray_step: float = 0.5  # free-space votes along camera rays, in cells
    min_object_cells: int = 1  # the tiny model gives 16 points a frame: one cell can be a whole object
    min_object_confidence: float = 0.1
    object_gap_cells: int = 2  # cells of one label this close belong to one object (points are sparse)

    def validate(self) -> None:
        if not (0.01 <= self.resolution <= 1.0 and 1.0 <= self.size <= 200.0):
            raise ValueError("grid resolution must lie in [0.01, 1] m and size in [1, 200] m")
        if self.size / self.resolution > 4000:
            raise ValueError(f"a {self.size} m grid at {self.resolution} m is over 4000 cells a side")


class LayoutGrid:
    def __init__(self, config: GridConfig, label_names: tuple[str, ...]) -> None:
        config.validate()
        self.config = config
        self.label_names = label_names
        self.cells = round(config.size / config.resolution)
        self.origin = (-config.size / 2, -config.size / 2)
        self.votes = np.zeros((self.cells, self.cells, len(label_names)), dtype=np.float32)
        self.free = np.zeros((self.cells, self.cells), dtype=np.float32)
        self.ceiling = label_names.index("ceiling") if "ceiling" in label_names else -1
        self.floor = label_names.index("floor")
        self.object_classes = [i for i, name in enumerate(label_names) if name not in STRUCTURE]

    def cell_of(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, inside) of map-frame points (..., 2)."""
        col = np.floor((xy[..., 0] - self.origin[0]) / self.config.resolution).astype(np.int64)
        row = np.floor((xy[..., 1] - self.origin[1]) / self.config.resolution).astype(np.int64)
        inside = (row >= 0) & (row < self.cells) & (col >= 0) & (col < self.cells)
        return row, col, inside

    def add(self, points: np.ndarray, sigma: np.ndarray, probs: np.ndarray, camera_xy: np.ndarray) -> None:
        """Fuse one keyframe: points (P, 2), sigma (P, 2), label probabilities (P, C), camera (2,)."""
        keep = np.all(np.isfinite(points), axis=1) & (sigma.max(axis=1) <= self.config.max_point_sigma)
        if self.ceiling >= 0:  # ceiling points lie above everything: they say nothing about the floor plan
            keep &= probs.argmax(axis=1) != self.ceiling
        points, probs = points[keep], probs[keep]
        row, col, inside = self.cell_of(points)
        np.add.at(self.votes, (row[inside], col[inside]), probs[inside].astype(np.float32))
        self._carve(points, np.asarray(camera_xy, dtype=np.float64))

    def _carve(self, points: np.ndarray, camera_xy: np.ndarray) -> None:
        """Free votes on the cells between the camera and each point (not the point's own cell)."""
        if len(points) == 0:
            return
        length = np.linalg.norm(points - camera_xy, axis=1).max()
        steps = max(int(length / (self.config.resolution * self.config.ray_step)), 1)
        fractions = np.linspace(0.0, 1.0, steps, endpoint=False)
        samples = camera_xy + fractions[None, :, None] * (points - camera_xy)[:, None, :]
        row, col, inside = self.cell_of(samples)
        end_row, end_col, _ = self.cell_of(points)
        inside &= (row != end_row[:, None]) | (col != end_col[:, None])
        cells = np.unique(row[inside] * self.cells + col[inside])
        self.free.reshape(-1)[cells] += 1.0

    def layout(self, stamp_ns: int = 0) -> Layout:
        support = self.votes.sum(axis=2)
        evidence = support + self.free
        labels = self.votes.argmax(axis=2).astype(np.int16)
        solid = support - self.votes[..., self.floor] - (self.votes[..., self.ceiling] if self.ceiling >= 0 else 0)
        occupied = solid > self.votes[..., self.floor] + 0.5 * self.free
        occupancy = np.full(support.shape, UNKNOWN, dtype=np.int8)
        known = evidence >= self.config.min_evidence
        occupancy[known] = np.where(occupied[known], OCCUPIED, FREE)
        labels[~known] = -1
        labels[known & ~occupied & (support == 0)] = self.floor  # seen through: floor
        return Layout(occupancy=occupancy, labels=labels, label_names=self.label_names,
                      resolution=self.config.resolution, origin=self.origin,
                      objects=tuple(self._objects(occupancy, labels)), stamp_ns=stamp_ns)

    def _objects(self, occupancy: np.ndarray, labels: np.ndarray) -> list[MapObject]:
        """One object per cluster of occupied cells with the same object label (gaps up to object_gap_cells)."""
        objects: list[MapObject] = []
        candidates = (occupancy == OCCUPIED) & np.isin(labels, self.object_classes)
        seen = np.zeros_like(candidates)
        for start in zip(*np.nonzero(candidates), strict=True):
            if seen[start]:
                continue
            label = labels[start]
            component = flood(candidates & (labels == label), seen, start, self.config.object_gap_cells)
            if len(component) < self.config.min_object_cells:
                continue
            rows, cols = np.array(component).T
            found = self._object(len(objects) + 1, int(label), rows, cols)
            if found.confidence >= self.config.min_object_confidence:
                objects.append(found)
        return objects

    def _object(self, object_id: int, label: int, rows: np.ndarray, cols: np.ndarray) -> MapObject:
        r = self.config.resolution
        x0, y0 = self.origin[0] + cols.min() * r, self.origin[1] + rows.min() * r
        x1, y1 = self.origin[0] + (cols.max() + 1) * r, self.origin[1] + (rows.max() + 1) * r
        name = self.label_names[label]
        height = OBJECT_HEIGHTS.get(name, 0.5)
        votes = self.votes[rows, cols]
        share = float((votes[:, label] / np.maximum(votes.sum(axis=1), 1e-6)).mean())
        amount = float(votes[:, label].sum())
        confidence = share * (1.0 - np.exp(-amount))  # agreement, and enough of it
        return MapObject(id=object_id, label=name, center=np.array([(x0 + x1) / 2, (y0 + y1) / 2, height / 2]),
                         size=np.array([x1 - x0, y1 - y0, height]), yaw=0.0, confidence=round(float(confidence), 3))


def flood(mask: np.ndarray, seen: np.ndarray, start: tuple[int, int], reach: int = 1) -> list[tuple[int, int]]:
    """The cells of mask reachable from start in hops of up to `reach` cells each way (marked in seen)."""
    stack, cells = [start], []
    seen[start] = True
    rows, cols = mask.shape
    hops = [(dr, dc) for dr in range(-reach, reach + 1) for dc in range(-reach, reach + 1) if dr or dc]
    while stack:
        r, c = stack.pop()
        cells.append((r, c))
        for nr, nc in ((r + dr, c + dc) for dr, dc in hops):
            if 0 <= nr < rows and 0 <= nc < cols and mask[nr, nc] and not seen[nr, nc]:
                seen[nr, nc] = True
                stack.append((nr, nc))
    return cells
