"""Probe: the far object tokens' bearing is right and their range is not (precision_range.py).
Move each far object-labelled token along its own camera ray to where nearer views of its class
(other frames of the clip, closer to their cameras) cross that ray, and score the issue's object
metrics for a small grid of settings.

    python results/s50/ray_snap.py data/val-big
"""

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "s49"))
from probe_clips import clip_outputs

from loc3r_core.evaluation.objects import FIRST_OBJECT_CLASS, ObjectAccumulator


def snap(points: np.ndarray, sigma: np.ndarray, labels: np.ndarray, cameras: np.ndarray, min_range: float,
         max_miss: float, max_shift: float) -> np.ndarray:
    """(F, P, 2) points with the far object tokens moved along their rays to nearer same-class views."""
    frames, patches = labels.shape
    flat, flat_labels = points.reshape(-1, 2), labels.reshape(-1)
    frame_of = np.repeat(np.arange(frames), patches)
    own_range = np.linalg.norm(flat - cameras[frame_of], axis=-1)
    weight = 1.0 / np.maximum(sigma.reshape(-1, 2).mean(axis=-1), 1e-3) ** 2
    out = flat.copy()
    for i in np.flatnonzero((flat_labels >= FIRST_OBJECT_CLASS) & (own_range > min_range)):
        camera = cameras[frame_of[i]]
        ray = (flat[i] - camera) / own_range[i]
        others = (flat_labels == flat_labels[i]) & (frame_of != frame_of[i]) & (own_range < own_range[i])
        rel = flat[others] - camera
        along = rel @ ray
        miss = np.abs(rel[:, 0] * ray[1] - rel[:, 1] * ray[0])
        near = (miss < max_miss) & (np.abs(along - own_range[i]) < max_shift) & (along > 0)
        if near.any():
            out[i] = camera + ray * np.average(along[near], weights=weight[others][near])
    return out.reshape(points.shape)


clips = []
for out, targets, metas in clip_outputs(Path(sys.argv[1])):
    for row, meta in enumerate(metas):
        clips.append((out["bev"][row], out["bev_sigma"][row], out["labels"][row], out["ego_xy"][row], meta,
                      targets["bev_target"][row], targets["bev_valid"][row], targets["patch_label"][row]))
results = {}
settings = [(None, None, None), *list(itertools.product([3.0, 4.0], [0.2, 0.35, 0.5], [1.0, 2.0, 4.0]))]
for setting in settings:
    acc = ObjectAccumulator()
    for points, sigma, labels, cameras, meta, bev_target, valid, true_labels in clips:
        moved = points if setting[0] is None else snap(points, sigma, labels, cameras, *setting)
        acc.add_clip(moved, labels, meta["objects"], meta["seen_object_ids"], bev_target, valid, true_labels)
    s = acc.summary()
    results[str(setting)] = [s["object_recall"], s["object_point_precision"], s["object_bev_median_error_m"]]
    print(setting, results[str(setting)], flush=True)
