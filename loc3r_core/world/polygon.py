"""Planar geometry for rooms and object footprints: polygons, oriented boxes, distances."""

from __future__ import annotations

import numpy as np


def box_corners(center_xy: np.ndarray, size_xy: np.ndarray, yaw: float) -> np.ndarray:
    """Corners (4, 2), counter-clockwise, of a box of extent size_xy turned by yaw."""
    hx, hy = np.asarray(size_xy, dtype=np.float64) / 2
    return from_box_frame(np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]]), center_xy, yaw)


def from_box_frame(local: np.ndarray, center_xy: np.ndarray, yaw: float) -> np.ndarray:
    """Points (..., 2) given in the frame of a box centred at center_xy and turned by yaw, in the world."""
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.asarray(local, dtype=np.float64)
    return np.stack([c * local[..., 0] - s * local[..., 1], s * local[..., 0] + c * local[..., 1]], axis=-1) \
        + np.asarray(center_xy, dtype=np.float64)


def to_box_frame(points: np.ndarray, center_xy: np.ndarray, yaw: float) -> np.ndarray:
    """Points (..., 2) in the frame of a box centred at center_xy and turned by yaw."""
    c, s = np.cos(yaw), np.sin(yaw)
    d = np.asarray(points, dtype=np.float64) - np.asarray(center_xy, dtype=np.float64)
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def distance_to_box(points: np.ndarray, center_xy: np.ndarray, size_xy: np.ndarray, yaw: float) -> np.ndarray:
    """Distance (...) from points to a box footprint; 0 inside."""
    local = np.abs(to_box_frame(points, center_xy, yaw))
    outside = np.maximum(local - np.asarray(size_xy, dtype=np.float64) / 2, 0.0)
    return np.linalg.norm(outside, axis=-1)


def box_iou(a_center_xy: np.ndarray, a_size_xy: np.ndarray, a_yaw: float, b_center_xy: np.ndarray,
            b_size_xy: np.ndarray, b_yaw: float, step: float = 0.01) -> float:
    """Intersection over union of two oriented box footprints, counted on a `step` metre lattice
    over box a (exact to about step / side; the areas themselves are exact)."""
    a_size, b_size = np.asarray(a_size_xy, dtype=np.float64), np.asarray(b_size_xy, dtype=np.float64)
    cells = np.maximum(np.round(a_size / step), 1)
    u, v = ((np.arange(n) + 0.5) * side / n - side / 2 for side, n in zip(a_size, cells, strict=True))
    lattice = from_box_frame(np.stack(np.meshgrid(u, v, indexing="ij"), axis=-1), a_center_xy, a_yaw)
    area_a, area_b = float(np.prod(a_size)), float(np.prod(b_size))
    inter = area_a * float(np.mean(distance_to_box(lattice, b_center_xy, b_size, b_yaw) == 0.0))
    return inter / (area_a + area_b - inter)


def contains(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test for points (..., 2); boundary points may go either way."""
    points = np.asarray(points, dtype=np.float64)
    x, y = points[..., 0][..., None], points[..., 1][..., None]
    a = np.asarray(polygon, dtype=np.float64)
    b = np.roll(a, -1, axis=0)
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return np.count_nonzero(crosses & (x < x_cross), axis=-1) % 2 == 1


def distance_to_boundary(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance (...) from points to the nearest polygon edge."""
    points = np.asarray(points, dtype=np.float64)[..., None, :]
    a = np.asarray(polygon, dtype=np.float64)
    edge = np.roll(a, -1, axis=0) - a
    t = np.clip(np.sum((points - a) * edge, axis=-1) / np.sum(edge * edge, axis=-1), 0.0, 1.0)
    nearest = a + t[..., None] * edge
    return np.min(np.linalg.norm(points - nearest, axis=-1), axis=-1)


def signed_area(polygon: np.ndarray) -> float:
    """Positive for counter-clockwise vertex order."""
    x, y = np.asarray(polygon, dtype=np.float64).T
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def convex_vertices(polygon: np.ndarray) -> np.ndarray:
    """For a counter-clockwise polygon: True where the interior angle is below 180 degrees."""
    a = np.asarray(polygon, dtype=np.float64)
    incoming = a - np.roll(a, 1, axis=0)
    outgoing = np.roll(a, -1, axis=0) - a
    return incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0] > 0


def _segments_cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    """Proper crossing of two segments (touching endpoints do not count)."""

    def orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def convex_inside(polygon: np.ndarray, convex: np.ndarray) -> bool:
    """Whether a convex shape (its corners) lies inside a simple polygon."""
    if not np.all(contains(polygon, convex)):
        return False
    if np.any(contains(convex, polygon)):  # a reflex room corner poking into the shape
        return False
    n, m = len(polygon), len(convex)
    return not any(
        _segments_cross(polygon[i], polygon[(i + 1) % n], convex[j], convex[(j + 1) % m])
        for i in range(n)
        for j in range(m)
    )


def convex_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex polygons given by their corners."""
    for shape in (a, b):
        edges = np.roll(shape, -1, axis=0) - shape
        for nx, ny in np.stack([-edges[:, 1], edges[:, 0]], axis=1):
            pa, pb = a @ (nx, ny), b @ (nx, ny)
            if pa.max() <= pb.min() or pb.max() <= pa.min():
                return False
    return True
