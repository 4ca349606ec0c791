"""Probe: triangulate the far object tokens from their bearings alone. The far tokens' bearing is
right and their range is not (precision_range.py), and the camera moves: where the ray of a far
object token crosses the rays of same-class tokens of other frames, inside both tokens' own range
windows and at a wide enough angle, put its point at the crossings' median along its ray.

    python results/s50/triangulate.py data/val-big
"""

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "s49"))
from probe_clips import clip_outputs

from loc3r_core.evaluation.objects import FIRST_OBJECT_CLASS, ObjectAccumulator


def triangulate(points: np.ndarray, labels: np.ndarray, cameras: np.ndarray, min_range: float,
                window: float, min_angle_deg: float) -> np.ndarray:
    """(F, P, 2) points, far object tokens moved to where their rays cross same-class rays of other frames.
    window: a crossing must lie within window * range of both tokens' own ranges."""
    frames, patches = labels.shape
    flat, flat_labels = points.reshape(-1, 2), labels.reshape(-1)
    frame_of = np.repeat(np.arange(frames), patches)
    origin = cameras[frame_of]
    offset = flat - origin
    rng = np.linalg.norm(offset, axis=-1)
    ray = offset / np.maximum(rng, 1e-6)[:, None]
    min_sin = np.sin(np.radians(min_angle_deg))
    out = flat.copy()
    for i in np.flatnonzero((flat_labels >= FIRST_OBJECT_CLASS) & (rng > min_range)):
        others = np.flatnonzero((flat_labels == flat_labels[i]) & (frame_of != frame_of[i]))
        if others.size == 0:
            continue
        # origin_i + t * ray_i = origin_j + s * ray_j, solved for t and s by 2-D cross products
        cross = ray[i, 0] * ray[others, 1] - ray[i, 1] * ray[others, 0]
        between = origin[others] - origin[i]
        ok = np.abs(cross) > min_sin
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (between[:, 0] * ray[others, 1] - between[:, 1] * ray[others, 0]) / cross
            s = (between[:, 0] * ray[i, 1] - between[:, 1] * ray[i, 0]) / cross
        ok &= (np.abs(t - rng[i]) < window * rng[i]) & (np.abs(s - rng[others]) < window * rng[others]) & (s > 0)
        if ok.any():
            out[i] = origin[i] + ray[i] * np.median(t[ok])
    return out.reshape(points.shape)


clips = []
for out, targets, metas in clip_outputs(Path(sys.argv[1])):
    for row, meta in enumerate(metas):
        clips.append((out["bev"][row], out["labels"][row], out["ego_xy"][row], meta, targets["bev_target"][row],
                      targets["bev_valid"][row], targets["patch_label"][row]))
settings = [(None, None, None), *list(itertools.product([2.5, 4.0], [0.15, 0.3], [10.0, 20.0]))]
for setting in settings:
    acc = ObjectAccumulator()
    for points, labels, cameras, meta, bev_target, valid, true_labels in clips:
        moved = points if setting[0] is None else triangulate(points, labels, cameras, *setting)
        acc.add_clip(moved, labels, meta["objects"], meta["seen_object_ids"], bev_target, valid, true_labels)
    s = acc.summary()
    print(setting, s["object_recall"], s["object_point_precision"], s["object_bev_median_error_m"], flush=True)
