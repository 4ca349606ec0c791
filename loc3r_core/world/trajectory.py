"""Camera paths a robot would drive: walks between places, turns in place, loops.

A path is planned on the floor through free space, smoothed, sampled into frames, and given
a height, pitch and a little shake to become camera poses.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from loc3r_core.geometry import camera_rotation, make_pose, wrap_angle
from loc3r_core.world.freespace import FreeSpace

TRAJECTORY_KINDS = ("walk", "turn", "loop")
SPEED = 0.5  # m/s along the path
TURN_RATE = 0.8  # rad/s
MIN_FRAME_GAP = 1 / 30  # s, a 30 Hz camera


@dataclass(frozen=True)
class FloorPath:
    kind: str  # what was driven: a loop too cramped to go round becomes a walk
    positions: np.ndarray  # (N, 2)
    yaws: np.ndarray  # (N,) viewing direction
    stamps: np.ndarray  # (N,) seconds from the first frame


def plan_path(rng: np.random.Generator, kind: str, free: FreeSpace, frames: int) -> FloorPath:
    if kind not in TRAJECTORY_KINDS:
        raise ValueError(f"unknown trajectory kind {kind!r}; expected one of {TRAJECTORY_KINDS}")
    planned = _loop(rng, free, frames) if kind == "loop" else None
    if planned is None:
        kind = "walk" if kind == "loop" else kind
        planned = _walk(rng, free, frames) if kind == "walk" else _turn(rng, free, frames)
    positions, yaws = planned
    return FloorPath(kind, positions, yaws, _stamps(positions, yaws))


def camera_poses(
    rng: np.random.Generator, path: FloorPath, height: float, pitch: float
) -> np.ndarray:
    """T_world_camera (N, 4, 4): the path at a camera height and pitch, with slight shake."""
    poses = []
    for (x, y), yaw in zip(path.positions, path.yaws, strict=True):
        z = height + rng.normal(0, 0.005)
        tilt = pitch + rng.normal(0, math.radians(1.0))
        roll = rng.normal(0, math.radians(0.5))
        poses.append(make_pose(camera_rotation(yaw, tilt, roll), np.array([x, y, z])))
    return np.stack(poses)


def _walk(rng: np.random.Generator, free: FreeSpace, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Through 2-3 places at least 1.5 m apart, looking ahead and around."""
    waypoints = [free.sample(rng, min_clearance=0.5)]
    for _ in range(int(rng.integers(2, 4))):
        for _attempt in range(30):
            goal = free.sample(rng, min_clearance=0.4)
            if np.linalg.norm(goal - waypoints[-1]) > 1.5:
                break
        waypoints.append(goal)
    route = _route(free, waypoints)
    positions, arc = _resample(_smooth(free, route, closed=False), frames, closed=False)
    return positions, _headings(positions, closed=False) + _look_around(rng, arc)


def _turn(rng: np.random.Generator, free: FreeSpace, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """One full turn in place, in a roomy spot, with centimetre wobble."""
    centre = free.sample(rng, min_clearance=0.8)
    positions = centre + rng.normal(0, 0.01, size=(frames, 2))
    direction = 1.0 if rng.random() < 0.5 else -1.0
    yaws = rng.uniform(-math.pi, math.pi) + direction * np.linspace(0, 2 * math.pi, frames, endpoint=False)
    return positions, yaws


def _loop(rng: np.random.Generator, free: FreeSpace, frames: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Round the room through six places between its middle and its walls, back to the start;
    None where the room is too cramped to go round."""
    cells = free.cell_centres()[free.free]
    centre = cells[np.argmin(np.linalg.norm(cells - cells.mean(axis=0), axis=1))]
    start = rng.uniform(0, 2 * math.pi)
    waypoints = []
    for k in range(6):
        angle = start + 2 * math.pi * k / 6
        reach = _free_reach(free, centre, angle)
        if reach > 0.6:  # stop at a distance the march checked, so the waypoint is free
            distance = round(0.65 * reach / free.resolution) * free.resolution
            waypoints.append(centre + distance * np.array([math.cos(angle), math.sin(angle)]))
    if len(waypoints) < 4:
        return None
    route = _route(free, [*waypoints, waypoints[0]])[:-1]
    positions, arc = _resample(_smooth(free, route, closed=True), frames, closed=True)
    return positions, _headings(positions, closed=True) + _look_around(rng, arc)


def _look_around(rng: np.random.Generator, arc: np.ndarray) -> np.ndarray:
    """Sweeping the view left and right while driving, as a robot exploring a room would."""
    amplitude = math.radians(rng.uniform(20, 40))
    return amplitude * np.sin(2 * math.pi * arc / rng.uniform(2.0, 4.0) + rng.uniform(0, 2 * math.pi))


def _free_reach(free: FreeSpace, origin: np.ndarray, angle: float) -> float:
    step = free.resolution
    direction = np.array([math.cos(angle), math.sin(angle)])
    distance = 0.0
    while free.is_free(origin + (distance + step) * direction):
        distance += step
    return distance


def _route(free: FreeSpace, waypoints: list[np.ndarray]) -> np.ndarray:
    legs = [free.shortest_path(a, b) for a, b in itertools.pairwise(waypoints)]
    return np.concatenate([legs[0]] + [leg[1:] for leg in legs[1:]])


def _densify(points: np.ndarray, spacing: float, closed: bool) -> np.ndarray:
    if closed:
        points = np.vstack([points, points[:1]])
    dense = [points[0]]
    for a, b in itertools.pairwise(points):
        n = max(1, math.ceil(np.linalg.norm(b - a) / spacing))
        dense.extend(a + (b - a) * t for t in np.arange(1, n + 1) / n)
    return np.array(dense[:-1] if closed else dense)


def _smooth(free: FreeSpace, route: np.ndarray, closed: bool, window_m: float = 0.5) -> np.ndarray:
    """Moving-average smoothing of the densified route; unsmoothed where that leaves free space."""
    spacing = 0.05
    dense = _densify(route, spacing, closed)
    half = max(1, int(window_m / spacing / 2))
    if closed:
        padded = np.concatenate([dense[-half:], dense, dense[:half]])
    else:
        padded = np.concatenate([np.repeat(dense[:1], half, 0), dense, np.repeat(dense[-1:], half, 0)])
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    smooth = np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(2)], axis=1)
    ok = free.is_free(smooth)
    return np.where(ok[:, None], smooth, dense)


def _resample(points: np.ndarray, count: int, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """`count` points evenly spaced by arc length, and their arc lengths."""
    if closed:
        points = np.vstack([points, points[:1]])
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    targets = np.linspace(0, arc[-1], count, endpoint=not closed)
    resampled = np.stack([np.interp(targets, arc, points[:, i]) for i in range(2)], axis=1)
    return resampled, targets


def _headings(positions: np.ndarray, closed: bool) -> np.ndarray:
    """Direction of travel at each sample."""
    if closed:
        ahead = np.roll(positions, -1, axis=0) - np.roll(positions, 1, axis=0)
    else:
        ahead = np.gradient(positions, axis=0)
    return np.arctan2(ahead[:, 1], ahead[:, 0])


def _stamps(positions: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """Time to drive and turn from frame to frame at SPEED and TURN_RATE."""
    moved = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    turned = np.abs(wrap_angle(np.diff(yaws)))
    gaps = np.maximum.reduce([moved / SPEED, turned / TURN_RATE, np.full(len(moved), MIN_FRAME_GAP)])
    return np.concatenate([[0.0], np.cumsum(gaps)])
