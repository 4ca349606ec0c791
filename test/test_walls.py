"""Walls as straight segments, and the grid's last clean-ups (runtime/walls.py, runtime/mapping.py):
fitted walls recover a known room from a noisy band, the band becomes one line with nothing
seen behind it (free cells none at all, wall cells past wall_shadow_m), a line the cameras stood
on both sides of hides nothing, enclosed unknown pockets close only where nothing solid borders
them, and rays paused at objects free nothing under them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loc3r_core.geometry import wrap_right_angle
from loc3r_core.runtime.mapping import Evidence, GridConfig, LayoutGrid, close_holes
from loc3r_core.runtime.walls import dominant_axis, draw_walls, fit_walls
from loc3r_core.types import FREE, OCCUPIED, UNKNOWN, WallSegment
from loc3r_core.world.polygon import distance_to_box
from loc3r_core.world.vocabulary import PATCH_CLASSES

NAMES = tuple(PATCH_CLASSES)


def rectangle(width: float, depth: float, yaw: float, centre: tuple[float, float]) -> np.ndarray:
    corners = np.array([[-width, -depth], [width, -depth], [width, depth], [-width, depth]]) / 2
    c, s = math.cos(yaw), math.sin(yaw)
    return corners @ np.array([[c, s], [-s, c]]) + np.asarray(centre)


def band_points(polygon: np.ndarray, spread: float, rng: np.random.Generator, step: float = 0.05) -> np.ndarray:
    """Points along a polygon's edges, scattered `spread` (std) across each edge: a wall as the model fuses it."""
    points = []
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        length = np.linalg.norm(b - a)
        normal = np.array([-(b - a)[1], (b - a)[0]]) / length
        t = np.linspace(0.0, 1.0, int(length / step))[:, None]
        points.append(a + t * (b - a) + rng.normal(0.0, spread, (len(t), 1)) * normal)
    return np.concatenate(points)


def one_hot(count: int, label: str) -> np.ndarray:
    probs = np.zeros((count, len(NAMES)), dtype=np.float32)
    probs[:, NAMES.index(label)] = 1.0
    return probs


def walled_grid(config: GridConfig, cameras: np.ndarray, room: np.ndarray, spread: float = 0.15) -> LayoutGrid:
    """A grid fed a room's walls as noisy bands, seen from each camera."""
    grid = LayoutGrid(config, NAMES)
    rng = np.random.default_rng(0)
    for camera in cameras:
        points = band_points(room, spread, rng)
        grid.add(points, np.full_like(points, 0.1), one_hot(len(points), "wall"), camera)
    return grid


def test_fitted_walls_recover_a_rotated_room_from_a_noisy_band() -> None:
    room = rectangle(5.0, 4.0, math.radians(30), (0.5, -0.5))
    cells = band_points(room, 0.15, np.random.default_rng(1))
    walls = fit_walls(cells, np.ones(len(cells)), band=0.25, suppress=0.5, resolution=0.1)
    assert len(walls) == 4  # one per side: the band's edges do not come back as parallel walls
    for a, b in zip(room, np.roll(room, -1, axis=0), strict=True):
        true_direction = (b - a) / np.linalg.norm(b - a)
        true_normal = np.array([-true_direction[1], true_direction[0]])
        [match] = [w for w in walls if abs((0.5 * (w.start + w.end) - a) @ true_normal) < 0.3
                   and abs(((w.end - w.start) / w.length) @ true_normal) < 0.3]
        direction = (match.end - match.start) / match.length
        assert abs(direction @ true_normal) < math.sin(math.radians(3))  # parallel within 3 degrees
        assert abs((match.start - a) @ true_normal) < 0.1 and abs((match.end - a) @ true_normal) < 0.1
        assert abs(match.length - np.linalg.norm(b - a)) < 0.2  # ends at the corners, where the walls meet


def test_walls_within_the_tolerance_are_turned_onto_the_rooms_right_angles() -> None:
    """A short wall whose band, skewed by the model's depth errors, reads 6 degrees off its room's
    axes is turned onto them; a wall 30 degrees off is a wall of its own and stays as it is."""
    room = rectangle(6.0, 5.0, math.radians(20), (0.0, 0.0))
    rng = np.random.default_rng(3)
    cells = band_points(room, 0.05, rng)
    a = np.array([-1.0, -1.0])

    def skewed(degrees: float) -> np.ndarray:  # a 2 m wall inside the room at the room's angle plus degrees
        direction = np.array([math.cos(math.radians(20 + degrees)), math.sin(math.radians(20 + degrees))])
        return a + np.linspace(0.0, 2.0, 40)[:, None] * direction

    def wall_angles(degrees: float, tolerance: float) -> tuple[float, np.ndarray]:
        """The inner wall's and the others' directions, modulo 90 degrees, against the room's axes."""
        xy = np.concatenate([cells, skewed(degrees)])
        walls = fit_walls(xy, np.ones(len(xy)), band=0.25, suppress=0.5, resolution=0.1, right_angles=tolerance)
        angles = np.array([(math.degrees(math.atan2(*(w.end - w.start)[::-1])) - 20 + 45) % 90 - 45 for w in walls])
        inner = [np.linalg.norm(0.5 * (w.start + w.end) - (a + skewed(degrees)[-1]) / 2) < 0.4 for w in walls]
        assert sum(inner) == 1 and len(walls) == 5
        return float(angles[inner][0]), angles[~np.array(inner)]

    inner, room_walls = wall_angles(6, 0.0)
    assert abs(inner - 6) < 1.5 and np.abs(room_walls).max() < 1.5  # as fitted
    inner, room_walls = wall_angles(6, 20.0)
    assert abs(inner) < 1.0 and np.allclose(room_walls, inner, atol=1e-6)  # all on the same right angles
    inner, room_walls = wall_angles(30, 20.0)
    assert abs(inner - 30) < 1.5 and np.abs(room_walls).max() < 1.5  # out of tolerance: a wall of its own
    with pytest.raises(ValueError, match="wall_right_angles_deg"):
        GridConfig().overridden({"wall_right_angles_deg": 60.0})


def test_a_line_off_the_rooms_right_angles_is_dropped_and_its_cells_forgotten() -> None:
    """A band 35 degrees off the room's axes (a fit across two walls' scatter) is no wall of a
    right-angled room: not drawn, and its cells, within wall_suppress_m of it, are unknown."""
    room = rectangle(6.0, 5.0, 0.0, (0.0, 0.0))
    cameras = np.array([[-1.5, -1.5], [1.5, -1.5], [1.5, 1.5], [-1.5, 1.5]])
    direction = np.array([math.cos(math.radians(35)), math.sin(math.radians(35))])
    across = np.array([-1.2, -0.6]) + np.linspace(0.0, 2.5, 60)[:, None] * direction
    middle = across[30]

    def layout(config: GridConfig):
        grid = walled_grid(config, cameras, room, spread=0.05)
        for camera in cameras:
            grid.add(across, np.full_like(across, 0.1), one_hot(len(across), "wall"), camera)
        return grid.layout()

    def occupied_near(found, point: np.ndarray) -> bool:
        xs = found.origin[0] + (np.arange(found.occupancy.shape[1]) + 0.5) * found.resolution
        ys = found.origin[1] + (np.arange(found.occupancy.shape[0]) + 0.5) * found.resolution
        near = np.hypot(*np.meshgrid(xs - point[0], ys - point[1])) < 0.3
        return bool((found.occupancy[near] == OCCUPIED).any())

    kept = layout(GridConfig(drop_off_axis_walls=False))
    dropped = layout(GridConfig())
    assert len(kept.walls) == 5 and occupied_near(kept, middle)
    assert len(dropped.walls) == 4 and not occupied_near(dropped, middle)
    assert len(layout(GridConfig(wall_right_angles_deg=0.0)).walls) == 5  # no right angles: every line stays


def test_a_slanted_wall_is_drawn_without_corner_gaps() -> None:
    # An 8-connected planner slips between two cells that touch only at a corner: every diagonal
    # step of the line gets the corner cell nearer to it, so the wall is one 4-connected piece.
    from scipy import ndimage

    for degrees in (30.0, 45.0, 70.0):
        direction = np.array([math.cos(math.radians(degrees)), math.sin(math.radians(degrees))])
        start = np.array([-1.23, -0.71])
        segment = WallSegment(start, start + 3.0 * direction, np.array([-direction[1], direction[0]]))
        occupancy = np.full((80, 80), UNKNOWN, dtype=np.int8)
        labels = np.full((80, 80), -1, dtype=np.int16)
        draw_walls(occupancy, labels, [segment], (-4.0, -4.0), 0.1, NAMES.index("wall"))
        drawn = occupancy == OCCUPIED
        assert ndimage.label(drawn)[1] == 1
        rows, cols = np.nonzero(drawn)
        centres = np.stack([-4.0 + (cols + 0.5) * 0.1, -4.0 + (rows + 0.5) * 0.1], axis=1)
        assert np.abs((centres - start) @ segment.normal).max() < 0.1  # the corner cells hug the line
        assert (labels[drawn] == NAMES.index("wall")).all()


def test_a_band_becomes_one_line_and_nothing_behind_a_wall_is_known() -> None:
    room = rectangle(6.0, 5.0, 0.0, (0.0, 0.0))
    cameras = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    # the band as fused, every ray's freed cell kept (free_beside_solid_min_views would hide those past it)
    banded = walled_grid(GridConfig(straight_walls=False, close_holes=False, free_beside_solid_min_views=1),
                         cameras, room).layout()
    straight = walled_grid(GridConfig(), cameras, room).layout()

    def wall_cells(layout, x_low: float, x_high: float) -> np.ndarray:
        """Columns of occupied cells across the right-hand wall (x = 3), over y in [-1, 1]."""
        xs = layout.origin[0] + (np.arange(layout.occupancy.shape[1]) + 0.5) * layout.resolution
        ys = layout.origin[1] + (np.arange(layout.occupancy.shape[0]) + 0.5) * layout.resolution
        return layout.occupancy[np.ix_(np.abs(ys) < 1.0, (xs > x_low) & (xs < x_high))]

    assert (wall_cells(banded, 2.5, 3.5) == OCCUPIED).sum(axis=1).mean() >= 3  # a band several cells thick
    across = (wall_cells(straight, 2.5, 3.5) == OCCUPIED).sum(axis=1)
    assert across.min() >= 1 and across.mean() <= 1.5  # one line
    assert (wall_cells(banded, 3.2, 3.6) == FREE).any()  # rays to points beyond the wall freed cells there
    assert not (wall_cells(straight, 3.25, 4.0) == FREE).any()  # behind the wall: unknown
    assert (wall_cells(straight, 2.0, 2.7) == FREE).all()  # the room side stays free
    assert len(straight.walls) == 4 and banded.walls == ()  # the layout carries its walls (RViz draws them)


def test_a_walls_stragglers_within_the_suppress_radius_are_unknown() -> None:
    """Wall cells 0.4 m inside the room from a fitted wall (past its band, within wall_suppress_m:
    no second wall can lie there) are the band's stragglers, not a second, parallel wall."""
    room = rectangle(6.0, 5.0, 0.0, (0.0, 0.0))
    cameras = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    stragglers = np.stack([np.full(11, 2.6), np.linspace(-0.5, 0.5, 11)], axis=1)

    def layout(config: GridConfig):
        grid = walled_grid(config, cameras, room, spread=0.05)
        for camera in cameras:
            grid.add(stragglers, np.full_like(stragglers, 0.1), one_hot(len(stragglers), "wall"), camera)
        return grid.layout()

    def state_at(found, point) -> int:
        col = int((point[0] - found.origin[0]) // found.resolution)
        row = int((point[1] - found.origin[1]) // found.resolution)
        return int(found.occupancy[row, col])

    assert state_at(layout(GridConfig(straight_walls=False)), stragglers[5]) == OCCUPIED
    straight = layout(GridConfig())
    assert state_at(straight, stragglers[5]) != OCCUPIED and len(straight.walls) == 4
    assert state_at(straight, np.array([3.05, 0.05])) == OCCUPIED  # the wall itself stays


def test_free_cells_behind_a_wall_are_unknown_from_the_line_on() -> None:
    room = rectangle(6.0, 5.0, 0.0, (0.0, 0.0))
    cameras = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    just_behind, occupied = {}, {}
    for free_shadow in (0.0, 0.3):
        layout = walled_grid(GridConfig(free_shadow_m=free_shadow), cameras, room).layout()
        xs = layout.origin[0] + (np.arange(layout.occupancy.shape[1]) + 0.5) * layout.resolution
        ys = layout.origin[1] + (np.arange(layout.occupancy.shape[0]) + 0.5) * layout.resolution
        just_behind[free_shadow] = layout.occupancy[np.ix_(np.abs(ys) < 1.0, (xs > 3.1) & (xs < 3.3))]
        occupied[free_shadow] = layout.occupancy == OCCUPIED
    assert (just_behind[0.3] == FREE).any()  # the old shadow left rays' free cells just past the line
    assert not (just_behind[0.0] == FREE).any()
    assert np.array_equal(occupied[0.0], occupied[0.3])  # wall cells keep their own shadow (wall_shadow_m)


def test_rays_paused_at_an_object_free_nothing_under_it_until_its_shadow_ends() -> None:
    # One ray's worth of evidence along y = 0.05: a low object's points at x = 1.0 and 1.6 (the
    # camera saw its top), the floor beyond it at x = 3.0. Without the pause the ray frees the cell
    # between the object's points; with it nothing is freed until object_shadow_m past the last one.
    camera = np.array([0.05, 0.05])
    table = np.array([[1.05, 0.05], [1.65, 0.05]])
    floor = np.array([[3.05, 0.05]])
    points = np.concatenate([table, floor])
    probs = np.concatenate([one_hot(2, "table"), one_hot(1, "floor")])
    free = {}
    for pause, shadow in ((False, 0.5), (True, 0.5), (True, math.inf)):
        grid = LayoutGrid(GridConfig(rays_pause_at_objects=pause, object_shadow_m=shadow), NAMES)
        grid.add(points, np.full_like(points, 0.02), probs, camera)
        row, col, _ = grid.cell_of(np.array([[0.55, 0.05], [1.35, 0.05], [1.95, 0.05], [2.55, 0.05]]))
        free[pause, shadow] = grid.free[row, col]
    assert (free[False, 0.5] > 0).all()
    paused = free[True, 0.5]
    assert paused[0] > 0 and paused[1] == 0 and paused[2] == 0  # before it; under it; its shadow
    assert paused[3] > 0  # past the shadow the ray carves again
    stopped = free[True, math.inf]
    assert stopped[0] > 0 and not stopped[1:].any()  # an endless shadow: rays stop at the object


def test_grid_config_refuses_negative_or_nan_shadows() -> None:
    for field in ("object_shadow_m", "free_shadow_m", "wall_shadow_m"):
        for value in (-0.1, math.nan):
            with pytest.raises(ValueError, match="shadow"):
                GridConfig().overridden({field: value})


def test_a_line_the_cameras_stood_on_both_sides_of_hides_nothing() -> None:
    # A row of wall-labelled points across the middle, seen from both sides: not a room's wall
    # (a partition seen through, or mislabelled objects); what lies beyond it stays free.
    row = np.stack([np.linspace(-2.0, 2.0, 81), np.zeros(81)], axis=1)
    grid = LayoutGrid(GridConfig(), NAMES)
    floor = np.stack([np.linspace(-1.5, 1.5, 31), np.full(31, 1.5)], axis=1)
    for camera in ([0.0, -2.0], [0.0, 2.0], [1.0, -2.0], [1.0, 2.0]):
        grid.add(row, np.full_like(row, 0.05), one_hot(len(row), "wall"), np.array(camera))
        for side in (1.0, -1.0):
            points = floor * np.array([1.0, side])
            grid.add(points, np.full_like(points, 0.05), one_hot(len(points), "floor"), np.array(camera))
    layout = grid.layout()
    col = np.arange(layout.occupancy.shape[1])
    xs = layout.origin[0] + (col + 0.5) * layout.resolution
    ys = layout.origin[1] + (np.arange(layout.occupancy.shape[0]) + 0.5) * layout.resolution
    beyond = layout.occupancy[np.ix_((np.abs(ys) > 0.5) & (np.abs(ys) < 1.2), np.abs(xs) < 0.5)]
    assert (beyond == FREE).all()


def test_only_pockets_enclosed_by_free_cells_close() -> None:
    occupancy = np.full((12, 12), FREE, dtype=np.int8)
    occupancy[0, :] = UNKNOWN  # the grid's edge: the unknown world outside
    occupancy[3:5, 3:5] = UNKNOWN  # enclosed by free: closes
    occupancy[7:9, 7:9] = UNKNOWN  # beside an object cell: may be the object's unseen rest
    occupancy[9, 9] = OCCUPIED
    labels = np.zeros_like(occupancy, dtype=np.int16)
    close_holes(occupancy, labels, floor=5)
    assert (occupancy[3:5, 3:5] == FREE).all() and (labels[3:5, 3:5] == 5).all()
    assert (occupancy[7:9, 7:9] == UNKNOWN).all()
    assert (occupancy[0, :] == UNKNOWN).all()


def test_object_cells_outside_every_kept_box_are_forgotten() -> None:
    rng = np.random.default_rng(2)
    sofa = np.stack([rng.uniform(0.0, 2.0, 400), rng.uniform(1.0, 2.0, 400)], axis=1)
    stray = np.array([[4.0, -2.0]])  # one sofa point far away: a cluster too weak to be kept
    points = np.concatenate([sofa, stray])
    grid = LayoutGrid(GridConfig(min_object_confidence=0.7), NAMES)
    probs = one_hot(len(points), "sofa") * 0.8
    probs[:, NAMES.index("floor")] = 0.2
    grid.add(points, np.full_like(points, 0.05), probs, np.zeros(2))
    kept = grid.layout()
    grid.config = GridConfig(min_object_confidence=0.7, loose_cells_unknown=False)
    loose = grid.layout()
    assert [o.label for o in kept.objects] == ["sofa"]
    row, col, _ = grid.cell_of(stray[0])
    assert loose.occupancy[row, col] == OCCUPIED and kept.occupancy[row, col] == UNKNOWN


def test_no_floor_inside_an_objects_box_is_free() -> None:
    """Rays to the floor beyond a table pass over it and free the cells under it in the floor plan;
    inside the table's box they are unknown (object_boxes_not_free), outside it they stay free."""
    rng = np.random.default_rng(4)
    table = np.stack([rng.uniform(1.0, 2.0, 40), rng.uniform(-0.4, 0.4, 40)], axis=1)  # its top, seen sparsely
    beyond = np.stack([np.full(41, 3.0), np.linspace(-1.0, 1.0, 41)], axis=1)  # floor past it
    grid = LayoutGrid(GridConfig(fill_objects=False), NAMES)
    for _ in range(3):
        grid.add(table, np.full_like(table, 0.05), one_hot(len(table), "table"), np.zeros(2))
        grid.add(beyond, np.full_like(beyond, 0.05), one_hot(len(beyond), "floor"), np.zeros(2))
    grid.config = GridConfig(fill_objects=False, object_boxes_not_free=True)
    kept = grid.layout()
    grid.config = GridConfig(fill_objects=False, object_boxes_not_free=False)
    freed = grid.layout()
    [box] = kept.objects
    xs = kept.origin[0] + (np.arange(kept.occupancy.shape[1]) + 0.5) * kept.resolution
    ys = kept.origin[1] + (np.arange(kept.occupancy.shape[0]) + 0.5) * kept.resolution
    centres = np.stack(np.meshgrid(xs, ys), axis=-1)
    inside = distance_to_box(centres, box.center[:2], box.size[:2], box.yaw) <= 0.0
    assert (freed.occupancy[inside] == FREE).sum() >= 3  # the rays freed cells under the table
    assert not (kept.occupancy[inside] == FREE).any()
    assert (kept.occupancy[~inside] == freed.occupancy[~inside]).all()  # nothing else moves


def test_the_layout_worked_out_over_the_mapped_window_is_the_whole_grids() -> None:
    """A refresh works on the cells the evidence touched plus a margin; whatever reaches past them
    (here walls whose ends meet beyond their cells, at the corner of a room turned 45 degrees and
    seen only away from that corner, and an object's closing) comes out as over the whole grid."""
    room = rectangle(4.0, 3.0, math.radians(45), (1.0, 0.5))
    rng = np.random.default_rng(3)
    edges = band_points(room, 0.1, rng)
    corner = room[np.argmax(room[:, 0])]  # the room's rightmost corner lies past every wall cell
    edges = edges[np.linalg.norm(edges - corner, axis=1) > 0.9]
    table = np.stack([rng.uniform(0.5, 1.3, 60), rng.uniform(0.2, 0.8, 60)], axis=1)
    grid = LayoutGrid(GridConfig(), NAMES)
    for camera in ([0.5, 0.0], [1.5, 1.0], [1.0, 0.5]):
        grid.add(edges, np.full_like(edges, 0.1), one_hot(len(edges), "wall"), np.array(camera))
        grid.add(table, np.full_like(table, 0.1), one_hot(len(table), "table"), np.array(camera))
    windowed = grid.layout()
    whole = Evidence.of(grid, (slice(0, grid.cells), slice(0, grid.cells)))
    occupancy, labels, objects, walls = grid._layout_of(whole)
    row, col, _ = grid.cell_of(corner)
    assert windowed.occupancy[row, col] == OCCUPIED  # the joined corner is drawn, outside the touched cells
    assert not (row in range(*grid.touched[:2]) and col in range(*grid.touched[2:]))
    assert np.array_equal(windowed.occupancy, occupancy) and np.array_equal(windowed.labels, labels)
    assert [o.label for o in windowed.objects] == [o.label for o in objects] == ["table"]
    assert np.allclose(windowed.objects[0].center, objects[0].center, atol=1e-9)
    assert len(windowed.walls) == len(walls) == 4
    for a, b in zip(windowed.walls, walls, strict=True):
        assert np.allclose(a.start, b.start, atol=1e-9) and np.allclose(a.end, b.end, atol=1e-9)


def test_an_empty_grid_is_all_unknown() -> None:
    layout = LayoutGrid(GridConfig(), NAMES).layout()
    assert (layout.occupancy == UNKNOWN).all() and (layout.labels == -1).all()
    assert layout.objects == () and layout.walls == ()


def test_free_cells_beside_an_obstacle_need_rays_from_several_keyframes() -> None:
    """One keyframe's rays to a wall free the cells right before it (a ray grazing an edge, a wall
    put a little too far); those stay unknown until free_beside_solid_min_views keyframes' rays
    crossed them. Cells away from anything occupied are free at once."""
    wall = np.stack([np.full(21, 3.0), np.linspace(-1.0, 1.0, 21)], axis=1)

    def occupancy_at(views: int, min_views: int, x: float) -> int:
        grid = LayoutGrid(GridConfig(straight_walls=False, free_beside_solid_min_views=min_views), NAMES)
        for _ in range(views):
            grid.add(wall, np.full_like(wall, 0.05), one_hot(len(wall), "wall"), np.zeros(2))
        layout = grid.layout()
        col = int((x - layout.origin[0]) // layout.resolution)
        return int(layout.occupancy[int((0.05 - layout.origin[1]) // layout.resolution), col])

    assert occupancy_at(1, 1, 3.05) == OCCUPIED
    assert occupancy_at(1, 1, 2.95) == FREE  # the cell right before the wall, one view
    assert occupancy_at(1, 3, 2.95) == UNKNOWN
    assert occupancy_at(1, 3, 2.0) == FREE  # nothing occupied beside it
    assert occupancy_at(3, 3, 2.95) == FREE
    with pytest.raises(ValueError, match="free_beside_solid_min_views"):
        GridConfig(free_beside_solid_min_views=0).validate()


def test_the_walls_axis_follows_the_lines_that_agree_not_one_strong_line_across_them() -> None:
    """Three lines on the room's axes (0 and 90 degrees) and a heavier one 30 degrees off, a fit
    across two walls' scatter: a mean over all lines turns the room by 8 degrees; the lines that
    agree set the axis."""
    angles = np.deg2rad([30.0, 0.0, 90.0, 2.0])
    weights = np.array([5.0, 4.0, 4.0, 2.0])
    assert abs(math.degrees(wrap_right_angle(dominant_axis(angles, weights, math.radians(25))))) < 1.0
    mean = math.atan2(weights @ np.sin(4 * angles), weights @ np.cos(4 * angles)) / 4
    assert abs(math.degrees(mean)) > 5.0  # what the mean gave (session 46)
