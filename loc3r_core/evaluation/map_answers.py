"""`map_rules`: a QA reference of the model's own map, as `semantic_pointer` is for placement.

Each question is answered without learning, by the oracle's rules (`references.oracle_answer`)
read from where the model placed the asker and from the objects the runtime's fusion
(`LayoutGrid`, at its defaults) draws from the clip's map-head points. It says how far the
model's answers stand from what its own placement and map allow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loc3r_core.evaluation.references import oracle_answer
from loc3r_core.runtime.mapping import GridConfig, LayoutGrid
from loc3r_core.types import MapObject
from loc3r_core.world.scene import Question


def clip_map_objects(points: np.ndarray, sigma: np.ndarray, probs: np.ndarray, camera_xy: np.ndarray,
                     label_names: Sequence[str], config: GridConfig | None = None) -> list[MapObject]:
    """Fuse one clip's keyframes as the runtime does: points and sigmas (F, P, 2), label
    probabilities (F, P, C), cameras (F, 2), all in one floor frame. Returns the layout's objects."""
    grid = LayoutGrid(config or GridConfig(), tuple(label_names))
    for frame in range(points.shape[0]):
        grid.add(points[frame].astype(np.float64), sigma[frame].astype(np.float64), probs[frame], camera_xy[frame])
    return list(grid.layout().objects)


def map_rules_answer(question: Question, objects: Sequence[MapObject], position: np.ndarray, yaw: float) -> str:
    """What the map's objects answer from a placement ("" where the map holds no candidate)."""
    return oracle_answer(question, objects, np.asarray(position, dtype=np.float64), float(yaw))
