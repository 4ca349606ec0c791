"""The fixed object vocabulary of the synthetic world.

Each category is recognisable by shape (its parts), size and colour range. Parts are given
in the object's normalised box: x in [-0.5, 0.5] points to the object's front (where one
sits or looks from), y in [-0.5, 0.5] to its left, z in [0, 1] up from the floor; the
object's metric size scales them. Every part stays inside the box, so the box in
scene.json bounds all of the object's pixels.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

# Colour ranges in HSV: hue in degrees, saturation and value in [0, 1].
HSVRange = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]

WOOD: HSVRange = ((20, 40), (0.35, 0.65), (0.35, 0.7))
DARK_WOOD: HSVRange = ((15, 35), (0.4, 0.7), (0.18, 0.4))
LIGHT_WOOD: HSVRange = ((25, 45), (0.15, 0.45), (0.65, 0.92))
FABRIC: HSVRange = ((0, 360), (0.35, 0.7), (0.35, 0.7))
BEDDING: HSVRange = ((0, 360), (0.0, 0.2), (0.82, 0.97))
WHITE: HSVRange = ((0, 360), (0.0, 0.06), (0.9, 0.98))
METAL: HSVRange = ((0, 360), (0.0, 0.08), (0.25, 0.6))
BLACK: HSVRange = ((200, 240), (0.0, 0.3), (0.03, 0.12))
ANY: HSVRange = ((0, 360), (0.45, 0.85), (0.4, 0.85))
GREEN: HSVRange = ((90, 140), (0.45, 0.8), (0.25, 0.55))
TERRACOTTA: HSVRange = ((10, 25), (0.5, 0.8), (0.45, 0.75))
WARM_LIGHT: HSVRange = ((35, 60), (0.15, 0.5), (0.88, 1.0))
BIN: HSVRange = ((0, 360), (0.0, 0.55), (0.3, 0.65))


@dataclass(frozen=True)
class Part:
    shape: str  # "box", "cylinder" (axis z) or "ellipsoid", filling [lo, hi]
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    colour: str  # a key of the category's palette, or "random" for a colour of its own


@dataclass(frozen=True)
class Category:
    name: str
    size_min: tuple[float, float, float]
    size_max: tuple[float, float, float]
    palette: dict[str, HSVRange]
    parts: tuple[Part, ...]
    placement: str  # "wall": back against a wall; "free": anywhere; "seat": at a table or desk
    max_count: int
    weight: float
    round_footprint: bool = False  # dx == dy
    can_sit_on: bool = False


def _legs(height: float, thickness: float, colour: str) -> tuple[Part, ...]:
    """Four square legs of the given normalised thickness in the corners of the box."""
    corners = (-0.5, 0.5 - thickness)
    return tuple(
        Part("box", (x0, y0, 0.0), (x0 + thickness, y0 + thickness, height), colour)
        for x0 in corners for y0 in corners
    )


def _shelf_books() -> tuple[Part, ...]:
    boards = (0.04, 0.27, 0.52, 0.77)
    books = []
    for i, z in enumerate(boards):
        books.append(Part("box", (-0.4, -0.42, z), (0.3, -0.1 + 0.05 * i, z + 0.15), "random"))
        books.append(Part("box", (-0.4, 0.0 + 0.04 * i, z), (0.25, 0.42, z + 0.12), "random"))
    return tuple(books)


CATEGORIES: tuple[Category, ...] = (
    Category(
        "bed", (1.9, 1.0, 0.9), (2.2, 1.8, 1.1), {"main": WOOD, "bedding": BEDDING, "pillow": WHITE},
        (Part("box", (-0.5, -0.5, 0.0), (0.5, 0.5, 0.3), "main"),
         Part("box", (-0.46, -0.48, 0.3), (0.5, 0.48, 0.5), "bedding"),
         Part("box", (-0.5, -0.5, 0.0), (-0.44, 0.5, 1.0), "main"),
         Part("box", (-0.43, -0.4, 0.5), (-0.3, 0.4, 0.58), "pillow")),
        placement="wall", max_count=1, weight=1.0, can_sit_on=True,
    ),
    Category(
        "sofa", (0.85, 1.6, 0.75), (1.0, 2.4, 0.9), {"main": FABRIC, "cushion": FABRIC},
        (Part("box", (-0.5, -0.5, 0.0), (0.5, 0.5, 0.5), "main"),
         Part("box", (-0.5, -0.5, 0.5), (-0.25, 0.5, 1.0), "main"),
         Part("box", (-0.5, 0.38, 0.5), (0.5, 0.5, 0.72), "main"),
         Part("box", (-0.5, -0.5, 0.5), (0.5, -0.38, 0.72), "main"),
         Part("box", (-0.25, -0.38, 0.5), (0.48, 0.38, 0.6), "cushion")),
        placement="wall", max_count=1, weight=1.0, can_sit_on=True,
    ),
    Category(
        "chair", (0.45, 0.45, 0.85), (0.55, 0.55, 1.0), {"main": DARK_WOOD, "seat": ANY},
        (*_legs(0.47, 0.1, "main"),
         Part("box", (-0.5, -0.5, 0.45), (0.5, 0.5, 0.52), "seat"),
         Part("box", (-0.5, -0.5, 0.52), (-0.4, 0.5, 1.0), "main")),
        placement="seat", max_count=4, weight=1.5, can_sit_on=True,
    ),
    Category(
        "table", (0.8, 1.0, 0.72), (1.2, 1.8, 0.78), {"main": LIGHT_WOOD, "legs": WOOD},
        (Part("box", (-0.5, -0.5, 0.94), (0.5, 0.5, 1.0), "main"), *_legs(0.94, 0.08, "legs")),
        placement="free", max_count=1, weight=0.8,
    ),
    Category(
        "desk", (0.6, 1.1, 0.73), (0.75, 1.6, 0.78), {"main": WHITE, "drawers": ANY},
        (Part("box", (-0.5, -0.5, 0.94), (0.5, 0.5, 1.0), "main"),
         Part("box", (-0.5, 0.45, 0.0), (0.5, 0.5, 0.94), "main"),
         Part("box", (-0.5, -0.5, 0.0), (0.5, -0.45, 0.94), "main"),
         Part("box", (-0.5, -0.45, 0.0), (0.5, -0.12, 0.94), "drawers"),
         Part("box", (-0.5, -0.12, 0.45), (-0.44, 0.45, 0.94), "main")),
        placement="wall", max_count=1, weight=0.8,
    ),
    Category(
        "cabinet", (0.4, 0.8, 0.8), (0.6, 1.2, 1.2), {"main": LIGHT_WOOD, "doors": WHITE, "handles": METAL},
        (Part("box", (-0.5, -0.5, 0.0), (0.47, 0.5, 1.0), "main"),
         Part("box", (0.47, 0.01, 0.04), (0.49, 0.48, 0.96), "doors"),
         Part("box", (0.47, -0.48, 0.04), (0.49, -0.01, 0.96), "doors"),
         Part("box", (0.49, 0.04, 0.45), (0.5, 0.08, 0.6), "handles"),
         Part("box", (0.49, -0.08, 0.45), (0.5, -0.04, 0.6), "handles")),
        placement="wall", max_count=2, weight=1.0,
    ),
    Category(
        "shelf", (0.3, 0.8, 1.6), (0.4, 1.2, 2.0), {"main": DARK_WOOD},
        (Part("box", (-0.5, -0.5, 0.0), (0.5, -0.45, 1.0), "main"),
         Part("box", (-0.5, 0.45, 0.0), (0.5, 0.5, 1.0), "main"),
         Part("box", (-0.5, -0.45, 0.0), (-0.42, 0.45, 1.0), "main"),
         *(Part("box", (-0.42, -0.45, z), (0.5, 0.45, z + 0.03), "main") for z in (0.0, 0.24, 0.49, 0.74, 0.97)),
         *_shelf_books()),
        placement="wall", max_count=2, weight=1.0,
    ),
    Category(
        "lamp", (0.35, 0.35, 1.5), (0.45, 0.45, 1.8), {"main": METAL, "shade": WARM_LIGHT},
        (Part("cylinder", (-0.35, -0.35, 0.0), (0.35, 0.35, 0.03), "main"),
         Part("cylinder", (-0.05, -0.05, 0.03), (0.05, 0.05, 0.8), "main"),
         Part("cylinder", (-0.5, -0.5, 0.8), (0.5, 0.5, 1.0), "shade")),
        placement="free", max_count=2, weight=0.8, round_footprint=True,
    ),
    Category(
        "plant", (0.4, 0.4, 0.8), (0.6, 0.6, 1.4), {"pot": TERRACOTTA, "leaves": GREEN},
        (Part("cylinder", (-0.3, -0.3, 0.0), (0.3, 0.3, 0.3), "pot"),
         Part("ellipsoid", (-0.5, -0.5, 0.28), (0.5, 0.5, 0.85), "leaves"),
         Part("ellipsoid", (-0.32, -0.32, 0.6), (0.32, 0.32, 1.0), "leaves")),
        placement="free", max_count=3, weight=1.0, round_footprint=True,
    ),
    Category(
        "tv", (0.4, 1.0, 0.9), (0.5, 1.5, 1.3), {"main": DARK_WOOD, "frame": BLACK, "screen": BLACK},
        (Part("box", (-0.5, -0.5, 0.0), (0.5, 0.5, 0.4), "main"),
         Part("box", (-0.12, -0.05, 0.4), (-0.02, 0.05, 0.5), "frame"),
         Part("box", (-0.12, -0.5, 0.48), (0.0, 0.5, 1.0), "frame"),
         Part("box", (0.0, -0.47, 0.51), (0.03, 0.47, 0.97), "screen")),
        placement="wall", max_count=1, weight=0.8,
    ),
    Category(
        "door", (0.04, 0.8, 2.0), (0.06, 0.95, 2.1), {"main": LIGHT_WOOD, "trim": WHITE, "handle": METAL},
        (Part("box", (-0.5, -0.45, 0.0), (0.2, 0.45, 0.97), "main"),
         Part("box", (-0.5, -0.5, 0.0), (0.5, -0.45, 1.0), "trim"),
         Part("box", (-0.5, 0.45, 0.0), (0.5, 0.5, 1.0), "trim"),
         Part("box", (-0.5, -0.45, 0.97), (0.5, 0.45, 1.0), "trim"),
         Part("box", (0.2, 0.3, 0.47), (0.5, 0.4, 0.5), "handle")),
        placement="wall", max_count=2, weight=1.0,
    ),
    Category(
        "trash can", (0.25, 0.25, 0.3), (0.4, 0.4, 0.55), {"main": BIN, "lid": METAL},
        (Part("cylinder", (-0.5, -0.5, 0.0), (0.5, 0.5, 0.9), "main"),
         Part("cylinder", (-0.5, -0.5, 0.9), (0.5, 0.5, 1.0), "lid")),
        placement="free", max_count=2, weight=0.8, round_footprint=True,
    ),
)

CATEGORY_BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}
LABELS: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
# What a pixel or a map cell can be: room structure first, then the object categories.
STRUCTURE_CLASSES: tuple[str, ...] = ("floor", "wall", "ceiling")
PATCH_CLASSES: tuple[str, ...] = STRUCTURE_CLASSES + LABELS


def sample_colour(rng: np.random.Generator, hsv: HSVRange) -> tuple[float, float, float]:
    (h0, h1), (s0, s1), (v0, v1) = hsv
    h = rng.uniform(h0, h1) % 360 / 360
    return colorsys.hsv_to_rgb(h, rng.uniform(s0, s1), rng.uniform(v0, v1))


def sample_size(rng: np.random.Generator, category: Category) -> np.ndarray:
    size = rng.uniform(category.size_min, category.size_max)
    if category.round_footprint:
        size[1] = size[0]
    return size
