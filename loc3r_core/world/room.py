"""Room outlines (rectangles and L-shapes) and their look."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loc3r_core.world.scene import Room
from loc3r_core.world.vocabulary import sample_colour

WALL_PAINT = ((0, 360), (0.03, 0.25), (0.7, 0.95))
FLOORING = ((15, 45), (0.2, 0.6), (0.3, 0.75))
CEILING_WHITE = ((0, 360), (0.0, 0.04), (0.88, 0.96))


@dataclass(frozen=True)
class RoomStyle:
    wall_colours: tuple[tuple[float, float, float], ...]  # one per polygon edge
    floor_colours: tuple[tuple[float, float, float], tuple[float, float, float]]  # checker tiles
    floor_tile: float  # metres per checker square
    ceiling_colour: tuple[float, float, float]


def make_room(rng: np.random.Generator, size_range: tuple[float, float], l_shape_share: float = 0.35) -> Room:
    """A rectangle with sides in size_range, or with probability l_shape_share an L-shape.

    The L-shape cuts a corner of at most 45% of each side, keeping every arm at least 2 m wide.
    """
    width, depth = rng.uniform(*size_range, size=2)
    polygon = [[0.0, 0.0], [width, 0.0], [width, depth], [0.0, depth]]
    if rng.random() < l_shape_share and min(width, depth) >= 4.0:
        cut_x = rng.uniform(0.3, 0.45) * width
        cut_y = rng.uniform(0.3, 0.45) * depth
        polygon = [[0.0, 0.0], [width, 0.0], [width, depth - cut_y], [width - cut_x, depth - cut_y],
                   [width - cut_x, depth], [0.0, depth]]
    height = rng.uniform(2.5, 3.0)
    return Room(np.array(polygon), float(height))


def make_room_style(rng: np.random.Generator, room: Room) -> RoomStyle:
    """Walls share a paint with a small tint per wall, so opposite walls are not identical."""
    base = np.array(sample_colour(rng, WALL_PAINT))
    walls = tuple(
        tuple(np.clip(base + rng.normal(0, 0.04, size=3), 0, 1).tolist()) for _ in range(len(room.polygon))
    )
    tile_a = sample_colour(rng, FLOORING)
    tile_b = tuple(np.clip(np.array(tile_a) * rng.uniform(0.7, 0.9), 0, 1).tolist())
    return RoomStyle(walls, (tile_a, tile_b), float(rng.uniform(0.3, 0.8)), sample_colour(rng, CEILING_WHITE))
