"""Answers by rules from a placement and a list of objects, reading only the question's words.

With the TRUE objects and the oracle's placement these are the `oracle` reference's answers;
with a layout's objects and the model's placement, what the map says (the `map_rules`
reference, and the runtime's answers to the question types it takes from its map).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from loc3r_core.world.situations import (
    DIRECTIONS,
    SECTOR_QUESTIONS,
    bearing,
    direction_of,
    floor_distance,
    labels_in,
    rounded_distance,
)

# "What is on my left?" -> "on my left": the words that name a sector
_SECTOR_PHRASES = {q.removeprefix("What is ").rstrip("?").lower(): d for d, q in SECTOR_QUESTIONS.items()}


class Footprint(Protocol):
    """What the rules read of an object: a true `SceneObject` or a map's `MapObject`."""

    label: str
    center: np.ndarray  # (2,) or (3,), metres: the floor position is [:2]
    size: np.ndarray  # extent along the box's own axes; the footprint is [:2]
    yaw: float


def answer_by_rules(question_type: str, text: str, objects: Sequence[Footprint], position: np.ndarray,
                    yaw: float) -> str:
    """The answer to a question of `question_type` asked from (position, yaw) among `objects`.

    Where the objects hold no candidate (a map that never found the asked class) the answer is
    "" (unanswerable), never a guess.
    """
    position = np.asarray(position, dtype=np.float64)
    mentioned = labels_in(text)
    of_label = {label: [o for o in objects if o.label == label] for label in set(mentioned)}

    def nearest(candidates: Sequence[Footprint]) -> Footprint | None:
        return min(candidates, key=lambda o: floor_distance(position, o), default=None)

    if question_type in ("direction", "distance", "count") and not mentioned:
        return ""
    if question_type in ("direction", "distance"):
        target = nearest(of_label[mentioned[0]])
        if target is None:
            return ""
        if question_type == "direction":
            return direction_of(bearing(position, yaw, target.center[:2]))
        return rounded_distance(floor_distance(position, target))
    if question_type == "nearest":
        found = nearest([o for label in mentioned for o in of_label[label]] or list(objects))
        return found.label if found is not None else ""
    if question_type == "count":
        same = of_label[mentioned[0]]
        if "in front of me" in text.lower():
            same = [o for o in same if abs(bearing(position, yaw, o.center[:2])) < math.pi / 2]
        return str(len(same))
    if question_type == "what_direction":
        sector = next((d for phrase, d in _SECTOR_PHRASES.items() if phrase in text.lower()), None)
        if sector is None:
            return ""
        centre = math.radians(90.0 * DIRECTIONS.index(sector))
        inside = [o for o in objects if floor_distance(position, o) > 0.0
                  and abs(math.remainder(bearing(position, yaw, o.center[:2]) - centre, 2 * math.pi)) < math.pi / 4]
        found = nearest(inside)
        return found.label if found is not None else ""
    raise ValueError(f"no rule answers questions of type {question_type!r}")
