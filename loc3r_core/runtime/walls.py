"""Walls as straight segments: the fused band of wall cells replaced by the lines through it.

The model's wall points scatter along the camera rays (its error is depth, not bearing), so a
wall fuses into a band half a metre thick or more around the truth. Straight segments fitted to
the band (a Hough peak, refined by the weighted principal axis of the cells near it, cut where
the cells leave gaps) mark each wall one cell thick. The band's other cells on the cameras' side
stay free where rays crossed them, and what lies behind a wall (seen from where the cameras
stood) is unknown: no camera sees through a wall. results/map_quality_walls.md has what was
tried and measured.
"""

from __future__ import annotations

import numpy as np

from loc3r_core.geometry import wrap_right_angle
from loc3r_core.types import FREE, OCCUPIED, UNKNOWN, WallSegment

ANGLE_STEP_DEG = 2.0  # Hough resolution; the principal axis refines the angle
VOTE_CAP = 3.0  # a cell counts at most this much: many points in one cell are still one place on the wall
MIN_WALL_VOTES = 8.0  # capped votes a wall needs (about three metres of cells seen once)
MAX_GAP_M = 0.8  # a wall is cut where its cells leave a longer gap (doors, corners, unseen stretches)
MIN_LENGTH_M = 0.5
MAX_WALLS = 16
CAMERA_SIDE_SHARE = 0.9  # cameras stood on one side of a real wall; a line with them on both is no wall
ROOM_SIDE_MARGIN_M = 0.05  # band cells this far on the cameras' side of the line may be free
AXIS_SEED_DEG = 5.0  # lines this close to a direction (modulo 90 degrees) support it as the walls' axis


def fit_walls(xy: np.ndarray, votes: np.ndarray, band: float, suppress: float, resolution: float,
              right_angles: float = 0.0) -> list[WallSegment]:
    """Straight segments through wall cells (centres xy (N, 2), their wall votes (N,)).

    Lines are taken strongest first from a Hough accumulator whose rho bins are summed over
    `band` either side (a band is thicker than one line); each is refined by the weighted
    principal axis of the cells within `band`, and the cells within `suppress` of it cannot
    found another line (the band's two edges would otherwise come back as parallel walls). With
    right_angles (degrees) every line within that of the walls' dominant axes (their weighted mean
    direction modulo 90 degrees) is turned onto it, about its cells' centre.
    """
    if len(xy) == 0:
        return []
    weight = np.minimum(votes, VOTE_CAP)
    angles = np.deg2rad(np.arange(0.0, 180.0, ANGLE_STEP_DEG))
    rho = xy @ np.stack([np.cos(angles), np.sin(angles)])  # (N, A)
    low = rho.min()
    bins = np.floor((rho - low) / resolution).astype(np.int64)
    width = int(bins.max()) + 1
    reach = max(round(band / resolution), 0)
    padded = width + 2 * reach + 1  # reach + 1 empty bins before, reach after: a band sum is a cumsum difference
    flat = bins + reach + 1 + np.arange(len(angles)) * padded  # one index per (cell, angle)
    accumulator = np.bincount(flat.ravel(), np.repeat(weight, len(angles)), len(angles) * padded)
    alive = np.ones(len(xy), dtype=bool)
    lines: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (cells, centre, direction) per line
    for _ in range(MAX_WALLS):
        summed = np.cumsum(accumulator.reshape(len(angles), padded), axis=1)
        banded = summed[:, 2 * reach + 1:] - summed[:, :-2 * reach - 1]  # (angles, width)
        a, b = np.unravel_index(int(np.argmax(banded)), banded.shape)
        if banded[a, b] < MIN_WALL_VOTES:
            break
        near = alive & (np.abs(rho[:, a] - (low + (b + 0.5) * resolution)) <= band)
        if not near.any():  # the band's votes lie just past `band` of the bin's centre
            break
        centre, direction, normal = principal_axis(xy[near], weight[near])
        across = np.abs((xy - centre) @ normal)
        taken = alive & (across <= suppress)
        accumulator -= np.bincount(flat[taken].ravel(), np.repeat(weight[taken], len(angles)), len(accumulator))
        alive &= ~taken
        lines.append((taken & (across <= band), centre, direction))  # the perpendicular walls' bands end here
    if right_angles > 0 and lines:
        lines = onto_right_angles(lines, weight, np.deg2rad(right_angles))
    walls: list[WallSegment] = []
    for own, centre, direction in lines:
        normal = np.array([-direction[1], direction[0]])
        walls.extend(pieces(xy[own], weight[own], centre, direction, normal, resolution))
    return join_corners(walls, 2 * suppress)  # the first wall took the cells within suppress of it


def onto_right_angles(lines: list[tuple[np.ndarray, np.ndarray, np.ndarray]], weight: np.ndarray,
                      tolerance: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Lines within `tolerance` (radians) of the dominant axes turned onto them: the axes are the
    lines' directions modulo 90 degrees near the best-supported one, averaged as angles of four
    times theirs, weighted by votes (dominant_axis)."""
    angles = np.array([np.arctan2(direction[1], direction[0]) for _, _, direction in lines])
    votes = np.array([weight[own].sum() for own, _, _ in lines])
    axis = dominant_axis(angles, votes, tolerance)
    turned = []
    for (own, centre, direction), angle in zip(lines, angles, strict=True):
        offset = float(wrap_right_angle(angle - axis))
        if abs(offset) <= tolerance:
            direction = np.array([np.cos(angle - offset), np.sin(angle - offset)])
        turned.append((own, centre, direction))
    return turned


def off_axis(walls: list[WallSegment], right_angles: float) -> np.ndarray:
    """(K,) which walls lie more than right_angles (degrees) off the walls' axes (dominant_axis,
    weighted by length); none when right_angles is 0. In a room whose walls meet at
    right angles such a line is a fit across two walls' scatter (at a corner, across a notch): on
    val-loop 60 % of their length lay over 0.25 m from every wall, against 25 % of the rest."""
    if right_angles <= 0 or not walls:
        return np.zeros(len(walls), dtype=bool)
    spans = np.stack([w.end - w.start for w in walls])
    angles, lengths = np.arctan2(spans[:, 1], spans[:, 0]), np.linalg.norm(spans, axis=1)
    axis = dominant_axis(angles, lengths, np.deg2rad(right_angles))
    return np.abs(wrap_right_angle(angles - axis)) > np.deg2rad(right_angles)


def dominant_axis(angles: np.ndarray, weights: np.ndarray, tolerance: float, rounds: int = 3) -> float:
    """The walls' axis (radians, modulo 90 degrees): the line direction with the most weight within
    AXIS_SEED_DEG of it (modulo 90 degrees), then the weighted mean (as angles of four times theirs)
    of the lines within `tolerance` (radians) of it, refined `rounds` times. A mean over every line
    let a few lines across the scatter turn the whole room (val-loop40: 9 of 40 rooms over 5 degrees off)."""
    apart = np.abs(wrap_right_angle(angles[:, None] - angles[None, :]))
    support = (apart <= np.deg2rad(AXIS_SEED_DEG)) @ weights
    axis = float(angles[np.argmax(support)])
    for _ in range(rounds):
        near = np.abs(wrap_right_angle(angles - axis)) <= tolerance
        if not near.any():  # past 22.5 degrees the mean can leave the lines it averaged
            break
        axis = float(np.arctan2(weights[near] @ np.sin(4 * angles[near]), weights[near] @ np.cos(4 * angles[near])) / 4)
    return axis


def join_corners(walls: list[WallSegment], reach: float) -> list[WallSegment]:
    """Each end moved to where its line meets a crossing wall's line, when that point lies within
    `reach` of the end and of the other wall: a corner is where two walls meet, not where the cells
    of either happen to stop."""
    if len(walls) < 2:
        return walls
    starts, ends = np.stack([w.start for w in walls]), np.stack([w.end for w in walls])
    spans = ends - starts  # (K, 2)
    cross = spans[:, None, 0] * spans[None, :, 1] - spans[:, None, 1] * spans[None, :, 0]  # (K, K)
    lengths = np.linalg.norm(spans, axis=1)
    crossing = np.abs(cross) >= 0.5 * lengths[:, None] * lengths[None, :]  # more than 30 degrees apart
    offset = starts[None, :, :] - starts[:, None, :]  # (i, j): start j - start i
    t = (offset[..., 0] * spans[None, :, 1] - offset[..., 1] * spans[None, :, 0]) / np.where(crossing, cross, 1.0)
    meet = starts[:, None, :] + t[..., None] * spans[:, None, :]  # (i, j, 2): on wall i's line
    along_j = np.clip(np.einsum("ijk,jk->ij", meet - starts[None], spans) / lengths[None] ** 2, 0.0, 1.0)
    off_j = np.linalg.norm(meet - (starts[None] + along_j[..., None] * spans[None]), axis=2)
    usable = crossing & (off_j <= reach)
    joined = []
    for i, wall in enumerate(walls):
        moved = []
        for end in (wall.start, wall.end):
            gap = np.where(usable[i], np.linalg.norm(meet[i] - end, axis=1), np.inf)
            j = int(np.argmin(gap))
            moved.append(meet[i, j] if gap[j] <= reach else end)
        joined.append(WallSegment(moved[0], moved[1], wall.normal))
    return [wall for wall in joined if wall.length >= MIN_LENGTH_M]


def principal_axis(xy: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted centre, direction (major axis) and unit normal of points."""
    centre = weight @ xy / weight.sum()
    dx, dy = xy[:, 0] - centre[0], xy[:, 1] - centre[1]
    angle = 0.5 * np.arctan2(2 * weight @ (dx * dy), weight @ (dx * dx - dy * dy))  # the 2x2 eigenvector
    direction = np.array([np.cos(angle), np.sin(angle)])
    return centre, direction, np.array([-direction[1], direction[0]])


def pieces(xy: np.ndarray, weight: np.ndarray, centre: np.ndarray, direction: np.ndarray, normal: np.ndarray,
           resolution: float) -> list[WallSegment]:
    """The line's stretches covered by its cells, cut at gaps over MAX_GAP_M."""
    if len(xy) == 0:
        return []
    along = (xy - centre) @ direction
    order = np.argsort(along)
    along, weight = along[order], weight[order]
    cuts = np.nonzero(np.diff(along) > MAX_GAP_M)[0] + 1
    first, last = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(along)]]) - 1
    votes = np.add.reduceat(weight, first)
    starts, ends = along[first] - resolution / 2, along[last] + resolution / 2
    keep = (ends - starts >= MIN_LENGTH_M) & (votes >= MIN_WALL_VOTES / 2)
    return [WallSegment(centre + start * direction, centre + end * direction, normal)
            for start, end in zip(starts[keep], ends[keep], strict=True)]


def straighten_walls(occupancy: np.ndarray, labels: np.ndarray, free_votes: np.ndarray, wall_votes: np.ndarray,
                     camera_visits: np.ndarray, origin: tuple[float, float], resolution: float, wall: int, floor: int,
                     band: float, suppress: float, shadow: float, free_shadow: float,
                     right_angles: float = 0.0, drop_off_axis: bool = False) -> list[WallSegment]:
    """Replace the occupied wall cells' bands by fitted segments, in place; the segments.

    occupancy/labels are the layout's (modified), free_votes and wall_votes the grid's
    evidence, camera_visits the keyframes per cell (where the cameras stood: the room's side).
    With right_angles and drop_off_axis, lines further than right_angles off the walls' axes
    are no walls (off_axis): not drawn, their cells unknown.
    """
    rows, cols = np.nonzero((occupancy == OCCUPIED) & (labels == wall))
    fitted = fit_walls(cell_centres(rows, cols, origin, resolution), wall_votes[rows, cols], band, suppress,
                       resolution, right_angles)
    kept = ~(off_axis(fitted, right_angles) & drop_off_axis)
    walls = [w for w, keep in zip(fitted, kept, strict=True) if keep]
    if not walls:
        return walls
    known_rows, known_cols = np.nonzero(occupancy != UNKNOWN)  # what the walls can change
    state, label = occupancy[known_rows, known_cols], labels[known_rows, known_cols]
    across, along, to_fitted = segment_coordinates(cell_centres(known_rows, known_cols, origin, resolution), fitted)
    across, along, distance = across[:, kept], along[:, kept], to_fitted[:, kept]
    visit_rows, visit_cols = np.nonzero(camera_visits)
    side, share = camera_side(cell_centres(visit_rows, visit_cols, origin, resolution),
                              camera_visits[visit_rows, visit_cols], walls)
    is_wall = (state == OCCUPIED) & (label == wall)
    in_band = is_wall[:, None] & (distance <= band)  # (cells, walls)
    # the line's scatter: no other wall was founded within `suppress` of it, so its wall cells out
    # there are the band's stragglers (a second, parallel line of cells), unknown rather than walls
    # (a dropped line's cells are scatter too)
    scatter = (is_wall[:, None] & (to_fitted <= suppress)).any(axis=1)
    room_side = across * side > ROOM_SIDE_MARGIN_M
    on_segment = (along >= 0) & (along <= [w.length for w in walls])
    faced = (share >= CAMERA_SIDE_SHARE) & on_segment
    behind, free_behind = faced & (across * side < -shadow), faced & (across * side < -free_shadow)
    freed = (in_band & room_side).any(axis=1) & (free_votes[known_rows, known_cols] > 0)
    # a real wall: nothing behind it was seen (free cells from the line on, wall cells past the shadow)
    hidden = (behind.any(axis=1) & is_wall) | (free_behind.any(axis=1) & (state == FREE))
    cleared = scatter | hidden
    state[cleared], label[cleared] = UNKNOWN, -1
    state[freed & ~hidden], label[freed & ~hidden] = FREE, floor
    occupancy[known_rows, known_cols], labels[known_rows, known_cols] = state, label
    draw_walls(occupancy, labels, walls, origin, resolution, wall)
    return walls


def cell_centres(rows: np.ndarray, cols: np.ndarray, origin: tuple[float, float], resolution: float) -> np.ndarray:
    return np.stack([origin[0] + (cols + 0.5) * resolution, origin[1] + (rows + 0.5) * resolution], axis=1)


def cell_indices(xy: np.ndarray, origin: tuple[float, float], resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the cells holding points xy (..., 2); cell_centres' inverse, unbounded."""
    cols = np.floor((xy[..., 0] - origin[0]) / resolution).astype(np.int64)
    rows = np.floor((xy[..., 1] - origin[1]) / resolution).astype(np.int64)
    return rows, cols


def segment_coordinates(xy: np.ndarray, walls: list[WallSegment]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(across, along, distance), each (N, walls): signed distance from each wall's line (along its
    normal), position along it from its start, and distance to the segment itself."""
    starts = np.stack([w.start for w in walls])
    lengths = np.array([w.length for w in walls])
    directions = (np.stack([w.end for w in walls]) - starts) / np.maximum(lengths, 1e-9)[:, None]
    normals = np.stack([w.normal for w in walls])
    dx, dy = xy[:, None, 0] - starts[:, 0], xy[:, None, 1] - starts[:, 1]
    across = dx * normals[:, 0] + dy * normals[:, 1]
    along = dx * directions[:, 0] + dy * directions[:, 1]
    beyond = np.maximum(np.maximum(-along, along - lengths), 0.0)  # past either end
    return across, along, np.hypot(across, beyond)


def camera_side(cameras: np.ndarray, visits: np.ndarray, walls: list[WallSegment]) -> tuple[np.ndarray, np.ndarray]:
    """Per wall, the side of its line most camera visits lie on (+1 or -1, along its normal), and their share."""
    if len(cameras) == 0:
        return np.ones(len(walls)), np.zeros(len(walls))
    positive = visits @ (segment_coordinates(cameras, walls)[0] > 0) / visits.sum()
    side = np.where(positive >= 0.5, 1.0, -1.0)
    return side, np.where(positive >= 0.5, positive, 1.0 - positive)


def draw_walls(occupancy: np.ndarray, labels: np.ndarray, walls: list[WallSegment], origin: tuple[float, float],
               resolution: float, wall: int) -> None:
    """Mark the cells the segments pass through occupied, labelled wall, 4-connected: where a line
    steps diagonally the corner cell nearer the line is drawn too, or a planner that moves
    diagonally would slip between two wall cells that touch only at a corner."""
    rows, cols = [], []
    for w in walls:
        samples = w.start + np.linspace(0.0, 1.0, max(int(np.ceil(3 * w.length / resolution)), 2))[:, None] * (
            w.end - w.start)  # three a cell
        r, c = cell_indices(samples, origin, resolution)
        diagonal = np.nonzero((r[1:] != r[:-1]) & (c[1:] != c[:-1]))[0]
        corners_a = np.stack([r[diagonal], c[diagonal + 1]], axis=1)  # the two cells sharing both steps' sides
        corners_b = np.stack([r[diagonal + 1], c[diagonal]], axis=1)
        nearer_a = (np.abs(across_line(corners_a, w, origin, resolution))
                    <= np.abs(across_line(corners_b, w, origin, resolution)))
        corners = np.where(nearer_a[:, None], corners_a, corners_b)
        rows += [r, corners[:, 0]]
        cols += [c, corners[:, 1]]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    inside = (rows >= 0) & (rows < occupancy.shape[0]) & (cols >= 0) & (cols < occupancy.shape[1])
    occupancy[rows[inside], cols[inside]] = OCCUPIED
    labels[rows[inside], cols[inside]] = wall


def across_line(cells: np.ndarray, wall: WallSegment, origin: tuple[float, float], resolution: float) -> np.ndarray:
    """Signed distance of (row, col) cells' centres from a wall's line."""
    return (cell_centres(cells[:, 0], cells[:, 1], origin, resolution) - wall.start) @ wall.normal
