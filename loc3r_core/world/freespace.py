"""Where a robot of a given radius can stand in a room: a grid, connectivity and shortest paths."""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from loc3r_core.world.polygon import contains, distance_to_boundary, distance_to_box
from loc3r_core.world.scene import Room, SceneObject

_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


class FreeSpace:
    """Cells of `resolution` metres at least `clearance` from walls and object footprints.

    Only the largest connected region is kept, so any two free cells are joined by a path.
    """

    def __init__(
        self, room: Room, objects: Sequence[SceneObject], clearance: float, resolution: float = 0.05
    ) -> None:
        self.resolution = resolution
        self.origin = room.polygon.min(axis=0)
        shape = np.ceil((room.polygon.max(axis=0) - self.origin) / resolution).astype(int) + 1
        self.shape = (int(shape[1]), int(shape[0]))  # rows along y, columns along x
        centres = self.cell_centres()
        clearance_map = np.where(contains(room.polygon, centres), distance_to_boundary(room.polygon, centres), 0.0)
        for obj in objects:
            clearance_map = np.minimum(clearance_map, distance_to_box(centres, obj.center[:2], obj.size[:2], obj.yaw))
        self.clearance = clearance_map
        self.free = _largest_component(clearance_map >= clearance)

    def cell_centres(self) -> np.ndarray:
        rows, cols = np.indices(self.shape)
        return self.origin + np.stack([cols, rows], axis=-1) * self.resolution

    def cell_of(self, xy: np.ndarray) -> tuple[int, int]:
        col, row = np.round((np.asarray(xy) - self.origin) / self.resolution).astype(int)
        return int(row), int(col)

    def point_of(self, cell: tuple[int, int]) -> np.ndarray:
        return self.origin + np.array([cell[1], cell[0]]) * self.resolution

    def is_free(self, xy: np.ndarray) -> np.ndarray:
        """Whether points (..., 2) fall on free cells."""
        cols_rows = np.round((np.asarray(xy) - self.origin) / self.resolution).astype(int)
        col, row = cols_rows[..., 0], cols_rows[..., 1]
        inside = (row >= 0) & (row < self.shape[0]) & (col >= 0) & (col < self.shape[1])
        result = np.zeros(col.shape, dtype=bool)
        result[inside] = self.free[row[inside], col[inside]]
        return result

    @property
    def area(self) -> float:
        return float(self.free.sum()) * self.resolution**2

    def sample(self, rng: np.random.Generator, min_clearance: float = 0.0) -> np.ndarray:
        """A random free cell centre, preferring cells at least min_clearance from obstacles."""
        candidates = np.argwhere(self.free & (self.clearance >= min_clearance))
        if len(candidates) == 0:
            candidates = np.argwhere(self.free)
        row, col = candidates[rng.integers(len(candidates))]
        return self.point_of((int(row), int(col)))

    def line_is_free(self, a: np.ndarray, b: np.ndarray) -> bool:
        steps = max(2, math.ceil(np.linalg.norm(b - a) / (self.resolution / 2)) + 1)
        return bool(np.all(self.is_free(np.linspace(a, b, steps))))

    def shortest_path(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """A* over 8-connected free cells, shortened by line of sight: waypoints (K, 2)."""
        start_cell, goal_cell = self.cell_of(start), self.cell_of(goal)
        for cell in (start_cell, goal_cell):
            if not (0 <= cell[0] < self.shape[0] and 0 <= cell[1] < self.shape[1] and self.free[cell]):
                raise ValueError(f"path end {self.point_of(cell)} is not in free space")
        came_from = {start_cell: start_cell}
        cost = {start_cell: 0.0}
        frontier = [(0.0, start_cell)]
        while frontier:
            _, cell = heapq.heappop(frontier)
            if cell == goal_cell:
                break
            for dr, dc in _NEIGHBOURS:
                nxt = (cell[0] + dr, cell[1] + dc)
                if not (0 <= nxt[0] < self.shape[0] and 0 <= nxt[1] < self.shape[1]) or not self.free[nxt]:
                    continue
                new_cost = cost[cell] + math.hypot(dr, dc)
                if new_cost < cost.get(nxt, math.inf):
                    cost[nxt] = new_cost
                    came_from[nxt] = cell
                    remaining = math.hypot(goal_cell[0] - nxt[0], goal_cell[1] - nxt[1])
                    heapq.heappush(frontier, (new_cost + remaining, nxt))
        cells = [goal_cell]
        while cells[-1] != start_cell:
            cells.append(came_from[cells[-1]])
        points = np.array([self.point_of(c) for c in reversed(cells)])
        return self._shortcut(points)

    def _shortcut(self, points: np.ndarray) -> np.ndarray:
        """Drop grid waypoints that are in line of sight of an earlier kept one."""
        kept = [points[0]]
        i = 0
        while i < len(points) - 1:
            j = len(points) - 1
            while j > i + 1 and not self.line_is_free(points[i], points[j]):
                j -= 1
            kept.append(points[j])
            i = j
        return np.array(kept)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a boolean grid."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    best_label, best_size, label = 0, 0, 0
    for seed in zip(*np.nonzero(mask), strict=True):
        if labels[seed]:
            continue
        label += 1
        labels[seed] = label
        size, queue = 0, deque([seed])
        while queue:
            r, c = queue.popleft()
            size += 1
            for dr, dc in _NEIGHBOURS:
                nr, nc = r + dr, c + dc
                if 0 <= nr < mask.shape[0] and 0 <= nc < mask.shape[1] and mask[nr, nc] and not labels[nr, nc]:
                    labels[nr, nc] = label
                    queue.append((nr, nc))
        if size > best_size:
            best_label, best_size = label, size
    return labels == best_label if best_size else np.zeros_like(mask)
