"""Furnishing a room: choosing categories and placing their boxes without overlap."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from loc3r_core.geometry import wrap_angle
from loc3r_core.world.polygon import box_corners, convex_inside, convex_overlap, from_box_frame
from loc3r_core.world.scene import Room, SceneObject
from loc3r_core.world.vocabulary import CATEGORIES, Category, sample_colour, sample_size

WALL_GAP = 0.01  # metres between a wall and the back of a wall-placed object
SEPARATION = 0.06  # the smallest gap between two objects
SEAT_GAP = 0.08  # between a chair and the table or desk it belongs to
ATTEMPTS_PER_OBJECT = 60

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class Furnishing:
    objects: tuple[SceneObject, ...]
    part_colours: dict[int, tuple[Colour, ...]]  # object id -> one colour per category part


def choose_categories(rng: np.random.Generator, count: int) -> list[Category]:
    """`count` categories drawn by weight, each at most its max_count times."""
    chosen: list[Category] = []
    used: Counter[str] = Counter()
    while len(chosen) < count:
        available = [c for c in CATEGORIES if used[c.name] < c.max_count]
        if not available:
            break
        weights = np.array([c.weight for c in available])
        category = available[rng.choice(len(available), p=weights / weights.sum())]
        chosen.append(category)
        used[category.name] += 1
    return chosen


def max_objects() -> int:
    return sum(c.max_count for c in CATEGORIES)


def _placement_order(category: Category) -> int:
    """Wall furniture first, then tables (chairs go next to them), chairs, small free objects."""
    if category.placement == "wall":
        return 0
    if category.name == "table":
        return 1
    return 2 if category.placement == "seat" else 3


def furnish(rng: np.random.Generator, room: Room, count: int) -> Furnishing | None:
    """Place `count` objects in the room, or None when they do not all fit this time."""
    categories = sorted(choose_categories(rng, count), key=_placement_order)
    if len(categories) < count:
        return None
    objects: list[SceneObject] = []
    part_colours: dict[int, tuple[Colour, ...]] = {}
    for category in categories:
        size = sample_size(rng, category)
        for _ in range(ATTEMPTS_PER_OBJECT):
            pose = _propose(rng, category, size, room, objects)
            if pose is not None and _fits(room, pose[0], size, pose[1], objects):
                break
        else:
            return None
        palette = {role: sample_colour(rng, hsv) for role, hsv in category.palette.items()}
        colours = tuple(
            sample_colour(rng, ((0, 360), (0.4, 0.9), (0.3, 0.9))) if part.colour == "random" else palette[part.colour]
            for part in category.parts
        )
        obj_id = len(objects) + 1
        centre = np.array([pose[0][0], pose[0][1], size[2] / 2])
        main = palette.get("main", colours[0])
        objects.append(SceneObject(obj_id, category.name, centre, size, float(pose[1]), main))
        part_colours[obj_id] = colours
    return Furnishing(tuple(objects), part_colours)


def _fits(room: Room, centre: np.ndarray, size: np.ndarray, yaw: float, placed: list[SceneObject]) -> bool:
    if not convex_inside(room.polygon, box_corners(centre, size[:2], yaw)):
        return False
    grown = box_corners(centre, size[:2] + SEPARATION, yaw)
    return not any(convex_overlap(grown, box_corners(o.center[:2], o.size[:2] + SEPARATION, o.yaw)) for o in placed)


def _propose(
    rng: np.random.Generator, category: Category, size: np.ndarray, room: Room, placed: list[SceneObject]
) -> tuple[np.ndarray, float] | None:
    if category.placement == "wall":
        return _against_wall(rng, size, room)
    if category.placement == "seat":
        partners = [o for o in placed if o.label in ("table", "desk")]
        if partners and rng.random() < 0.75:
            return _at_partner(rng, size, partners[rng.integers(len(partners))])
    low, high = room.polygon.min(axis=0), room.polygon.max(axis=0)
    centre = rng.uniform(low, high)
    if category.name == "table":  # tables line up with the walls, give or take
        return centre, float(rng.integers(4) * math.pi / 2 + rng.normal(0, math.radians(4)))
    return centre, float(rng.uniform(-math.pi, math.pi))


def _against_wall(rng: np.random.Generator, size: np.ndarray, room: Room) -> tuple[np.ndarray, float] | None:
    """Back (local -x) against a random wall, front facing into the room."""
    polygon = room.polygon
    lengths = np.linalg.norm(np.roll(polygon, -1, axis=0) - polygon, axis=1)
    i = rng.choice(len(polygon), p=lengths / lengths.sum())
    a, b = polygon[i], polygon[(i + 1) % len(polygon)]
    direction = (b - a) / lengths[i]
    inward = np.array([-direction[1], direction[0]])  # left of a counter-clockwise edge
    margin = size[1] / 2 + 0.05
    if lengths[i] < 2 * margin:
        return None
    along = rng.uniform(margin, lengths[i] - margin)
    centre = a + direction * along + inward * (size[0] / 2 + WALL_GAP)
    return centre, math.atan2(inward[1], inward[0])


def _at_partner(rng: np.random.Generator, size: np.ndarray, partner: SceneObject) -> tuple[np.ndarray, float]:
    """A chair at one side of a table (any side) or in front of a desk, facing it."""
    sides = [0] if partner.label == "desk" else [0, 1, 2, 3]
    side = sides[rng.integers(len(sides))]
    axis = side % 2  # 0: partner's x, 1: partner's y
    sign = 1.0 if side < 2 else -1.0
    out_local = np.zeros(2)
    out_local[axis] = sign
    slack = max(partner.size[1 - axis] / 2 - size[1] / 2, 0.0)
    along_local = np.zeros(2)
    along_local[1 - axis] = rng.uniform(-slack, slack)
    offset_local = out_local * (partner.size[axis] / 2 + SEAT_GAP + size[0] / 2) + along_local
    centre = from_box_frame(offset_local, partner.center[:2], partner.yaw)
    facing_partner = partner.yaw + math.atan2(-out_local[1], -out_local[0])
    return centre, float(wrap_angle(facing_partner))



