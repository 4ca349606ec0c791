"""`map_rules`: a QA reference of the model's own map, as `semantic_pointer` is for placement.

Each question is answered without learning, by the oracle's rules (`world.answer_rules`)
read from where the model placed the asker and from the objects the runtime's fusion
(`LayoutGrid`, at its defaults) draws from the clip's points (its map head's where it has one).
It says how far the model's answers stand from what its own placement and map allow; the
runtime answers the types in `session.MAP_ANSWER_TYPES` this way, and `loc3r eval` scores
that as the model's answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loc3r_core.runtime.mapping import GridConfig, LayoutGrid
from loc3r_core.types import MapObject


def clip_map_objects(points: np.ndarray, sigma: np.ndarray, probs: np.ndarray, camera_xy: np.ndarray,
                     label_names: Sequence[str], config: GridConfig | None = None) -> list[MapObject]:
    """Fuse one clip's keyframes as the runtime does: points and sigmas (F, P, 2), label
    probabilities (F, P, C), cameras (F, 2), all in one floor frame. Returns the layout's objects."""
    grid = LayoutGrid(config or GridConfig(), tuple(label_names))
    for frame in range(points.shape[0]):
        grid.add(points[frame].astype(np.float64), sigma[frame].astype(np.float64), probs[frame], camera_xy[frame])
    return list(grid.layout().objects)


def predicted_clip_objects(out: dict, row: int, label_names: Sequence[str]) -> list[MapObject]:
    """The layout's objects from one clip of `predict_batch`'s outputs, fused from the points the
    runtime fuses: the map head's sub-patch points where the model has one, else its tokens'."""
    if "map_bev" in out:
        fused = (per_frame(out[key][row]) for key in ("map_bev", "map_sigma", "map_probs"))
    else:
        fused = (out["bev"][row], out["bev_sigma"][row], out["label_probs"][row])
    return clip_map_objects(*fused, out["ego_xy"][row], label_names)


def per_frame(value: np.ndarray) -> np.ndarray:
    """(F, P, s^2, ...) sub-patch values -> (F, P * s^2, ...): every sub-patch a point of its frame."""
    return value.reshape(value.shape[0], -1, *value.shape[3:])
