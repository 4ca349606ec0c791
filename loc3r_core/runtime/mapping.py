"""The long-term map: BEV points of every keyframe fused into a fixed metric grid.

Each keyframe's vision tokens give floor-plane points with a label distribution and a sigma.
A cell's evidence is the summed label probabilities of the points that fall in it, plus
"free" votes from the rays between the camera and those points (what the camera saw
through is empty). The grid's size is fixed, so memory stays flat however long the stream.
Objects are clusters of occupied cells of one label, each an oriented box with a confidence
from its label evidence; the gaps between an object's cells are closed, since rays over a low
object free the floor under it (results/map_quality_fusion.md has what was tried and measured).
The layout then draws walls as fitted straight segments instead of the model's thick bands, with
nothing behind them known (runtime/walls.py), forgets object cells outside every object's box,
and closes unknown pockets that free cells alone enclose (results/map_quality_walls.md).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from scipy import ndimage

from loc3r_core.runtime.walls import cell_centres, cell_indices, straighten_walls
from loc3r_core.types import FREE, OCCUPIED, UNKNOWN, Layout, MapObject, WallSegment
from loc3r_core.world.polygon import distance_to_box
from loc3r_core.world.vocabulary import CATEGORIES

STRUCTURE = ("floor", "wall", "ceiling")
OBJECT_HEIGHTS = {c.name: 0.5 * (c.size_min[2] + c.size_max[2]) for c in CATEGORIES}  # BEV gives no height
MIN_SIDES = {c.name: min(c.size_min[:2]) for c in CATEGORIES}  # points see a face: the extent can be thin


@dataclass(frozen=True)
class GridConfig:
    resolution: float = 0.1  # metres per cell
    size: float = 16.0  # metres per side, centred on the map origin
    max_point_sigma: float = 0.7  # points the model is less sure of (metres) are left out (val, P15)
    min_evidence: float = 1.0  # summed votes before a cell stops being unknown (val, 256 points a keyframe)
    ray_step: float = 0.5  # free-space votes along camera rays, in cells
    carve_margin_sigma: float = 1.0  # rays stop this many of their point's sigmas short of it (val)
    rays_pause_at_objects: bool = False  # a conservative map: rays over a keyframe's object points free nothing
    object_shadow_m: float = 0.0  # ... until this far past the last one (free precision up, coverage down; val)
    free_weight: float = 0.25  # each ray through a cell counts this much against its solid label votes
    min_object_cells: int = 1  # the tiny model gives 16 points a frame: one cell can be a whole object
    min_object_confidence: float = 0.5  # drops objects resting on weak evidence (best object F1 on val)
    object_gap_cells: int = 2  # cells of one label this close belong to one object (points are sparse)
    object_merge_m: float = 1.0  # same-label clusters this close are one object: a large object's points leave gaps
    fill_objects: bool = True  # an object is an obstacle: the gaps between its cells are occupied too
    fill_reach_cells: int = 3  # gaps up to twice this wide, inside its box, are closed (val)
    # an object's spread less this share of its points' own variance is its size (val: boxes' area
    # about the true one's, session 47)
    box_noise_share: float = 0.5
    loose_cells_unknown: bool = True  # object cells outside every kept object's box are unknown (val)
    straight_walls: bool = True  # wall bands become fitted segments, one cell thick (runtime/walls.py; val)
    wall_band_m: float = 0.25  # wall cells this close to a fitted segment are its band
    wall_suppress_m: float = 0.5  # cells this close to a found wall cannot found another
    wall_shadow_m: float = 0.3  # wall cells further behind a wall than this are unknown (val)
    free_shadow_m: float = 0.0  # free cells further behind a wall than this are unknown (val)
    # walls within this many degrees of the walls' dominant axes are turned onto them: rooms whose
    # walls meet at right angles (0: off; val-loop and val, results/experiments.md, session 45)
    wall_right_angles_deg: float = 25.0
    # with wall_right_angles_deg, lines further off the axes are no walls: dropped, their cells
    # unknown (val-loop and val, results/experiments.md, session 46)
    drop_off_axis_walls: bool = True
    close_holes: bool = True  # unknown pockets enclosed by free cells alone are free (the floor under the camera)
    # free cells inside a kept object's box are unknown (the oracle's free precision up; the model's
    # boxes lie off the truth, so its coverage falls more than its free precision rises: off, session 47)
    object_boxes_not_free: bool = False
    # free cells touching an occupied cell need rays from this many keyframes, else unknown (1: any;
    # val, session 47)
    free_beside_solid_min_views: int = 3

    def overridden(self, overrides: dict[str, object]) -> GridConfig:
        """A copy with some fields replaced (a number where the field is one), validated;
        ValueError naming the field otherwise. What `loc3r eval-map --grid` scores a fusion with."""
        kinds = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        typed = {}
        for name, value in overrides.items():
            if name not in kinds:
                raise ValueError(f"no grid field {name!r} (fields: {', '.join(kinds)})")
            kind = kinds[name]
            if isinstance(value, str) and kind is not bool:  # YAML reads 1e9 as a string
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError(f"grid field {name} takes a {kind.__name__}, not {value!r}") from None
            if isinstance(value, bool) != (kind is bool) or not isinstance(value, (int, float)):
                raise ValueError(f"grid field {name} takes a {kind.__name__}, not {value!r}")
            if kind is int and value != int(value):
                raise ValueError(f"grid field {name} takes a whole number, not {value!r}")
            typed[name] = kind(value)
        config = replace(self, **typed)
        config.validate()
        return config

    def validate(self) -> None:
        if self.free_beside_solid_min_views < 1:
            raise ValueError("free_beside_solid_min_views must be at least 1")
        if not 0.0 <= self.box_noise_share <= 1.0:
            raise ValueError("box_noise_share must lie in [0, 1]")
        if not (0.01 <= self.resolution <= 1.0 and 1.0 <= self.size <= 200.0):
            raise ValueError("grid resolution must lie in [0.01, 1] m and size in [1, 200] m")
        if self.size / self.resolution > 4000:
            raise ValueError(f"a {self.size} m grid at {self.resolution} m is over 4000 cells a side")
        if self.carve_margin_sigma < 0 or self.fill_reach_cells < 0:
            raise ValueError("carve_margin_sigma and fill_reach_cells must be >= 0")
        if not (0 < self.wall_band_m <= self.wall_suppress_m and self.wall_shadow_m >= 0):
            raise ValueError("walls need 0 < wall_band_m <= wall_suppress_m and wall_shadow_m >= 0")
        if not 0 <= self.wall_right_angles_deg <= 45:
            raise ValueError("wall_right_angles_deg must be in [0, 45]")
        if not (self.object_shadow_m >= 0 and self.free_shadow_m >= 0):  # NaN fails too
            raise ValueError("object_shadow_m and free_shadow_m must be >= 0 "
                             "(object_shadow_m inf: rays stop at objects)")


@dataclass(frozen=True)
class Evidence:
    """A window of a LayoutGrid's evidence (views, not copies) and the map position of its corner."""

    votes: np.ndarray  # (rows, cols, labels) summed label probabilities
    free: np.ndarray  # free votes from the rays
    spread: np.ndarray  # summed variance of the points in each cell (m^2)
    camera_visits: np.ndarray
    origin: tuple[float, float]

    @classmethod
    def of(cls, grid: LayoutGrid, window: tuple[slice, slice]) -> Evidence:
        rows, cols = window
        origin = (grid.origin[0] + cols.start * grid.config.resolution,
                  grid.origin[1] + rows.start * grid.config.resolution)
        return cls(grid.votes[window], grid.free[window], grid.spread[window], grid.camera_visits[window], origin)


def in_boxes(xy: np.ndarray, objects: list[MapObject]) -> np.ndarray:
    """(N,) which points (N, 2) lie inside some object's box footprint."""
    inside = np.zeros(len(xy), dtype=bool)
    for obj in objects:
        inside |= distance_to_box(xy, obj.center[:2], obj.size[:2], obj.yaw) <= 0.0
    return inside


class LayoutGrid:
    def __init__(self, config: GridConfig, label_names: tuple[str, ...]) -> None:
        config.validate()
        self.config = config
        self.label_names = label_names
        self.cells = round(config.size / config.resolution)
        self.origin = (-config.size / 2, -config.size / 2)
        self.votes = np.zeros((self.cells, self.cells, len(label_names)), dtype=np.float32)
        self.free = np.zeros((self.cells, self.cells), dtype=np.float32)
        self.spread = np.zeros((self.cells, self.cells), dtype=np.float32)  # its points' summed variance (m^2)
        self.camera_visits = np.zeros((self.cells, self.cells), dtype=np.float32)  # keyframes taken from each cell
        self.touched = np.array([self.cells, -1, self.cells, -1])  # first, last row; first, last col with evidence
        self.wall = label_names.index("wall") if "wall" in label_names else -1
        self.ceiling = label_names.index("ceiling") if "ceiling" in label_names else -1
        self.floor = label_names.index("floor")
        self.object_classes = [i for i, name in enumerate(label_names) if name not in STRUCTURE]

    def cell_of(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, inside) of map-frame points (..., 2)."""
        row, col = cell_indices(xy, self.origin, self.config.resolution)
        inside = (row >= 0) & (row < self.cells) & (col >= 0) & (col < self.cells)
        return row, col, inside

    def add(self, points: np.ndarray, sigma: np.ndarray, probs: np.ndarray, camera_xy: np.ndarray) -> None:
        """Fuse one keyframe: points (P, 2), sigma (P, 2), label probabilities (P, C), camera (2,)."""
        keep = np.all(np.isfinite(points), axis=1) & (sigma.max(axis=1) <= self.config.max_point_sigma)
        if self.ceiling >= 0:  # ceiling points lie above everything: they say nothing about the floor plan
            keep &= probs.argmax(axis=1) != self.ceiling
        points, sigma, probs = points[keep], sigma[keep], probs[keep]
        row, col, inside = self.cell_of(points)
        self._touch(row[inside], col[inside])
        np.add.at(self.votes, (row[inside], col[inside]), probs[inside].astype(np.float32))
        np.add.at(self.spread, (row[inside], col[inside]), np.mean(sigma[inside] ** 2, axis=1).astype(np.float32))
        camera_xy = np.asarray(camera_xy, dtype=np.float64)
        camera_row, camera_col, camera_inside = self.cell_of(camera_xy)
        if camera_inside:
            self._touch(camera_row, camera_col)
            self.camera_visits[camera_row, camera_col] += 1.0
        blockers = None
        if self.config.rays_pause_at_objects:
            blockers = np.zeros((self.cells, self.cells), dtype=bool)
            solid = inside & np.isin(probs.argmax(axis=1), self.object_classes)
            blockers[row[solid], col[solid]] = True
        self._carve(points, sigma, camera_xy, row, col, blockers)

    def _carve(self, points: np.ndarray, sigma: np.ndarray, camera_xy: np.ndarray, end_row: np.ndarray,
               end_col: np.ndarray, blockers: np.ndarray | None) -> None:
        """Free votes on the cells between the camera and each point (not the point's own cell,
        end_row/end_col), stopping carve_margin_sigma of the point's sigma short of it: it may lie
        beyond the truth. With rays_pause_at_objects, a ray that meets one of this keyframe's object
        cells (`blockers`) pauses there for object_shadow_m: it passed over a low object, which says
        nothing about the floor under it."""
        if len(points) == 0:
            return
        lengths = np.linalg.norm(points - camera_xy, axis=1)
        steps = max(int(lengths.max() / (self.config.resolution * self.config.ray_step)), 1)
        fractions = np.linspace(0.0, 1.0, steps, endpoint=False)
        reach = 1.0 - self.config.carve_margin_sigma * sigma.max(axis=1) / np.maximum(lengths, 1e-6)
        samples = camera_xy + fractions[None, :, None] * (points - camera_xy)[:, None, :]
        row, col, inside = self.cell_of(samples)
        inside &= ((row != end_row[:, None]) | (col != end_col[:, None])) & (fractions[None, :] < reach[:, None])
        if blockers is not None:
            inside &= ~self._shadowed(row, col, inside, blockers, fractions * lengths[:, None])
        rows, cols = row[inside], col[inside]
        self._touch(rows, cols)
        crossed = np.zeros(self.cells * self.cells, dtype=bool)
        crossed[rows * self.cells + cols] = True  # each cell once per keyframe
        self.free.reshape(-1)[crossed] += 1.0

    def _shadowed(self, row: np.ndarray, col: np.ndarray, inside: np.ndarray, blockers: np.ndarray,
                  distance: np.ndarray) -> np.ndarray:
        """(rays, samples) mask of the samples at or within object_shadow_m past a blocker along their ray."""
        hit = np.zeros(row.shape, dtype=bool)
        hit[inside] = blockers[row[inside], col[inside]]
        last_hit = np.maximum.accumulate(np.where(hit, distance, -np.inf), axis=1)
        return np.isfinite(last_hit) & (distance - last_hit <= self.config.object_shadow_m)

    def layout(self, stamp_ns: int = 0) -> Layout:
        """The occupancy grid, its labels, objects and walls from the evidence fused so far.

        Worked out over the window of cells that hold evidence or camera visits, with a margin
        (`_window`): every cell outside it is unknown whatever the rules below do, so a refresh
        costs what the mapped area costs, not what the configured grid does.
        """
        occupancy = np.full((self.cells, self.cells), UNKNOWN, dtype=np.int8)
        labels = np.full((self.cells, self.cells), -1, dtype=np.int16)
        objects: list[MapObject] = []
        walls: list[WallSegment] = []
        window = self._window()
        if window is not None:
            occupancy[window], labels[window], objects, walls = self._layout_of(Evidence.of(self, window))
        return Layout(occupancy=occupancy, labels=labels, label_names=self.label_names,
                      resolution=self.config.resolution, origin=self.origin,
                      objects=tuple(objects), stamp_ns=stamp_ns, walls=tuple(walls))

    def _touch(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Widen `touched` to cover these cells (in the grid)."""
        if np.size(rows):
            self.touched = np.array([min(self.touched[0], np.min(rows)), max(self.touched[1], np.max(rows)),
                                     min(self.touched[2], np.min(cols)), max(self.touched[3], np.max(cols))])

    def _window(self) -> tuple[slice, slice] | None:
        """Rows and columns of the cells with any evidence or camera visit (`touched`), widened by the
        furthest any layout rule reaches past them; None while the grid is empty. The margin keeps
        the window's edge out of every rule's reach: an object's closing (twice fill_reach_cells), a
        wall segment's end moved to a corner (2 wall_suppress_m, walls.join_corners) and the ring of
        unknown cells that close_holes needs to tell the room's inside from its outside."""
        first_row, last_row, first_col, last_col = (int(v) for v in self.touched)
        if last_row < 0:
            return None
        walls = int(np.ceil(2 * self.config.wall_suppress_m / self.config.resolution))
        margin = max(2 * self.config.fill_reach_cells, walls) + 2
        return (slice(max(first_row - margin, 0), min(last_row + margin + 1, self.cells)),
                slice(max(first_col - margin, 0), min(last_col + margin + 1, self.cells)))

    def _layout_of(self, evidence: Evidence
                   ) -> tuple[np.ndarray, np.ndarray, list[MapObject], list[WallSegment]]:
        """occupancy, labels, objects and walls of one window of the grid's evidence."""
        votes = evidence.votes
        support = votes.sum(axis=2)
        known = support + evidence.free >= self.config.min_evidence
        labels = votes.argmax(axis=2).astype(np.int16)
        ceiling = votes[..., self.ceiling] if self.ceiling >= 0 else 0
        solid = support - votes[..., self.floor] - ceiling
        occupied = solid > votes[..., self.floor] + self.config.free_weight * evidence.free
        occupancy = np.full(support.shape, UNKNOWN, dtype=np.int8)
        occupancy[known] = np.where(occupied[known], OCCUPIED, FREE)
        labels[~known] = -1
        labels[known & ~occupied & (support == 0)] = self.floor  # seen through: floor
        objects, object_cells = self._objects(occupancy, labels, evidence)
        if self.config.fill_objects:
            self._fill(occupancy, labels, object_cells)
        if self.config.loose_cells_unknown:
            self._forget_loose_cells(occupancy, labels, objects, evidence.origin)
        walls: list[WallSegment] = []
        if self.config.straight_walls and self.wall >= 0:
            walls = straighten_walls(occupancy, labels, evidence.free, votes[..., self.wall], evidence.camera_visits,
                                     evidence.origin, self.config.resolution, self.wall, self.floor,
                                     self.config.wall_band_m, self.config.wall_suppress_m, self.config.wall_shadow_m,
                                     self.config.free_shadow_m, self.config.wall_right_angles_deg,
                                     self.config.drop_off_axis_walls)
        if self.config.close_holes:
            close_holes(occupancy, labels, self.floor)
        if self.config.object_boxes_not_free:  # after close_holes, which would free an enclosed box again
            self._no_free_in_boxes(occupancy, labels, objects, evidence.origin)
        if self.config.free_beside_solid_min_views > 1:
            self._confirm_free_beside_solid(occupancy, labels, evidence.free)
        return occupancy, labels, objects, walls

    def _fill(self, occupancy: np.ndarray, labels: np.ndarray, object_cells: np.ndarray) -> None:
        """Close the gaps between the cells of the map's objects: occupied, with their label.

        The camera sees the floor beyond a bed or a table over its top, so rays free cells under
        it; its own points say it is one obstacle. A closing (per label) fills holes without a
        halo, and cannot bridge two objects: those closer than object_merge_m are one already.
        """
        reach = self.config.fill_reach_cells
        for label in np.unique(labels[object_cells]):
            own = object_cells & (labels == label)
            closed = ~dilate(~dilate(own, reach), reach)
            occupancy[closed] = OCCUPIED
            labels[closed] = label

    def _forget_loose_cells(self, occupancy: np.ndarray, labels: np.ndarray, objects: list[MapObject],
                            origin: tuple[float, float]) -> None:
        """Object cells outside every kept object's box become unknown, in place: the box is where
        the object's evidence agrees (its moments); the cells around it are the scatter of its
        points, or clusters too weak to be objects."""
        rows, cols = np.nonzero((occupancy == OCCUPIED) & np.isin(labels, self.object_classes))
        boxed = in_boxes(cell_centres(rows, cols, origin, self.config.resolution), objects)
        occupancy[rows[~boxed], cols[~boxed]], labels[rows[~boxed], cols[~boxed]] = UNKNOWN, -1

    def _no_free_in_boxes(self, occupancy: np.ndarray, labels: np.ndarray, objects: list[MapObject],
                          origin: tuple[float, float]) -> None:
        """Free cells inside a kept object's box become unknown, in place: rays over a table
        or a bed free the floor under it in the floor plan, but no floor inside an obstacle's box is
        free to drive on."""
        rows, cols = np.nonzero(occupancy == FREE)
        boxed = in_boxes(cell_centres(rows, cols, origin, self.config.resolution), objects)
        occupancy[rows[boxed], cols[boxed]], labels[rows[boxed], cols[boxed]] = UNKNOWN, -1

    def _confirm_free_beside_solid(self, occupancy: np.ndarray, labels: np.ndarray, free_votes: np.ndarray) -> None:
        """Free cells beside an occupied one that fewer than free_beside_solid_min_views keyframes'
        rays crossed become unknown, in place: one view's ray grazing an obstacle's edge, or reaching
        a wall the model put a little too far, frees the cells just past the truth."""
        weak = ((occupancy == FREE) & (free_votes < self.config.free_beside_solid_min_views)
                & dilate(occupancy == OCCUPIED, 1))
        occupancy[weak], labels[weak] = UNKNOWN, -1

    def _objects(self, occupancy: np.ndarray, labels: np.ndarray, evidence: Evidence
                 ) -> tuple[list[MapObject], np.ndarray]:
        """One object per cluster of occupied cells with the same object label; also the mask of
        the cells of the clusters kept as objects.

        Cells join within object_gap_cells of each other; then clusters of one label whose boxes
        lie within object_merge_m join too: a large object's sparse points leave wider gaps.
        """
        rows, cols = np.nonzero((occupancy == OCCUPIED) & np.isin(labels, self.object_classes))
        object_cells = np.zeros(occupancy.shape, dtype=bool)
        if len(rows) == 0:
            return [], object_cells
        label = labels[rows, cols].astype(np.int64)
        cluster = compact(components(rows, cols, label, self.config.object_gap_cells, occupancy.shape))
        cluster = compact(self._merge(cluster, rows, cols, label))
        objects, kept = self._boxes(cluster, rows, cols, label, evidence)
        object_cells[rows[kept[cluster]], cols[kept[cluster]]] = True
        return objects, object_cells

    def _merge(self, cluster: np.ndarray, rows: np.ndarray, cols: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Cluster index per cell after joining same-label clusters whose cell boxes lie within object_merge_m."""
        count = int(cluster.max()) + 1
        lo_r, hi_r = extent(cluster, rows, count)
        lo_c, hi_c = extent(cluster, cols, count)
        kind = np.zeros(count, dtype=np.int64)
        kind[cluster] = label
        a, b = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for k in np.unique(kind):  # label by label: the pairs stay few
            ids = np.nonzero(kind == k)[0]
            apart = np.hypot(gaps(lo_r[ids], hi_r[ids]), gaps(lo_c[ids], hi_c[ids])) * self.config.resolution
            i, j = np.nonzero(np.triu(apart <= self.config.object_merge_m, 1))
            a.append(ids[i])
            b.append(ids[j])
        return union(count, np.concatenate(a), np.concatenate(b))[cluster]

    def _boxes(self, cluster: np.ndarray, rows: np.ndarray, cols: np.ndarray, label: np.ndarray,
               evidence: Evidence) -> tuple[list[MapObject], np.ndarray]:
        """An oriented box per cluster from the moments of its cells (weighted by their label evidence):
        centre at their mean, yaw along their principal axis, each side sqrt(12 var) (a uniform
        footprint's), floored by the category's smallest side.

        The cells' spread is the object's plus the scatter of its points, so box_noise_share of the
        points' own variance (their sigmas) is taken off first: the extremes of the cells made boxes
        about 5x the true area on val, the plain moments 2.4x (results/experiments.md, session 15).
        """
        r, count = self.config.resolution, int(cluster.max()) + 1
        x, y = evidence.origin[0] + (cols + 0.5) * r, evidence.origin[1] + (rows + 0.5) * r
        votes = evidence.votes[rows, cols]
        weight = votes[np.arange(len(label)), label]
        mass = np.bincount(cluster, weight, count)
        cx, cy = np.bincount(cluster, weight * x, count) / mass, np.bincount(cluster, weight * y, count) / mass
        dx, dy = x - cx[cluster], y - cy[cluster]
        sxx, syy, sxy = (np.bincount(cluster, weight * v, count) / mass for v in (dx * dx, dy * dy, dx * dy))
        yaw = 0.5 * np.arctan2(2 * sxy, sxx - syy)  # in (-pi/2, pi/2]
        c, s = np.cos(yaw), np.sin(yaw)
        spread = np.bincount(cluster, evidence.spread[rows, cols], count)
        noise = spread / np.bincount(cluster, votes.sum(axis=1), count)
        var_u = sxx * c * c + 2 * sxy * c * s + syy * s * s - self.config.box_noise_share * noise
        var_v = sxx * s * s - 2 * sxy * c * s + syy * c * c - self.config.box_noise_share * noise
        side_u, side_v = np.sqrt(12 * np.maximum(var_u, 0.0)), np.sqrt(12 * np.maximum(var_v, 0.0))
        cells = np.bincount(cluster, minlength=count)
        share = np.bincount(cluster, weight / np.maximum(votes.sum(axis=1), 1e-6), count) / cells
        confidence = share * (1.0 - np.exp(-mass))  # agreement, and enough of it
        kind = np.zeros(count, dtype=np.int64)
        kind[cluster] = label
        keep = (confidence >= self.config.min_object_confidence) & (cells >= self.config.min_object_cells)
        objects: list[MapObject] = []
        for k in np.nonzero(keep)[0]:
            name = self.label_names[kind[k]]
            height = OBJECT_HEIGHTS.get(name, 0.5)
            size = np.maximum([side_u[k], side_v[k]], MIN_SIDES.get(name, r))
            objects.append(MapObject(id=len(objects) + 1, label=name, center=np.array([cx[k], cy[k], height / 2]),
                                     size=np.array([*size, height]), yaw=float(yaw[k]),
                                     confidence=round(float(confidence[k]), 3)))
        return objects, keep


def close_holes(occupancy: np.ndarray, labels: np.ndarray, floor: int) -> None:
    """Unknown pockets that touch only free cells (not the grid's edge, not an occupied cell) become
    free floor, in place: the floor under the camera and between rays is floor, and a planner
    should not see speckle inside the room. Pockets beside an occupied cell stay unknown: they may
    be the unseen rest of an object."""
    pockets, count = ndimage.label(occupancy == UNKNOWN)
    if count == 0:
        return
    open_pockets = np.zeros(count + 1, dtype=bool)
    open_pockets[0] = True
    for edge in (pockets[0], pockets[-1], pockets[:, 0], pockets[:, -1]):
        open_pockets[edge] = True
    open_pockets[pockets[dilate(occupancy == OCCUPIED, 1)]] = True
    closed = ~open_pockets[pockets]
    occupancy[closed], labels[closed] = FREE, floor


def dilate(mask: np.ndarray, reach: int) -> np.ndarray:
    """Cells within `reach` cells (Chebyshev distance) of a true cell."""
    for _ in range(reach):  # shifted ors: several times faster here than scipy's dilation
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        mask = grown.copy()
        mask[:, 1:] |= grown[:, :-1]
        mask[:, :-1] |= grown[:, 1:]
    return mask


def compact(ids: np.ndarray) -> np.ndarray:
    """Ids renumbered 0..K-1."""
    return np.unique(ids, return_inverse=True)[1].reshape(-1)


def extent(cluster: np.ndarray, values: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster minimum and maximum of values."""
    lo, hi = np.full(count, np.inf), np.full(count, -np.inf)
    np.minimum.at(lo, cluster, values)
    np.maximum.at(hi, cluster, values)
    return lo, hi


def gaps(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(N, N) gaps between intervals [lo, hi] (0 where they overlap)."""
    return np.maximum(0, np.maximum(lo[None] - hi[:, None], lo[:, None] - hi[None]))


def components(rows: np.ndarray, cols: np.ndarray, keys: np.ndarray, reach: int, shape: tuple[int, int]) -> np.ndarray:
    """Component index per cell: cells with the same key within `reach` cells each way are joined."""
    index = np.full(shape, -1, dtype=np.int64)
    index[rows, cols] = np.arange(len(rows))
    a, b = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for dr in range(reach + 1):
        for dc in range(-reach, reach + 1):
            if dr == 0 and dc <= 0:  # each pair once
                continue
            r, c = rows + dr, cols + dc
            ok = np.nonzero((r < shape[0]) & (c >= 0) & (c < shape[1]))[0]
            j = index[r[ok], c[ok]]
            same = (j >= 0) & (keys[j] == keys[ok])
            a.append(ok[same])
            b.append(j[same])
    return union(len(rows), np.concatenate(a), np.concatenate(b))


def union(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each node's smallest connected node, for edges a-b: hook roots to the smaller, then jump."""
    parent = np.arange(count)
    while not np.array_equal(parent[a], parent[b]):
        low = np.minimum(parent[a], parent[b])
        np.minimum.at(parent, parent[a], low)
        np.minimum.at(parent, parent[b], low)
        while not np.array_equal(parent[parent], parent):
            parent = parent[parent]
    return parent
