"""The model's per-token BEV error by the true range from its frame's camera, the object tokens'
error, and the median ratio of predicted to true range (below 1: the room drawn smaller).

    python results/s49/range.py data/val-big
"""

import json
import sys
from pathlib import Path

import numpy as np
from probe_clips import clip_outputs

from loc3r_core.world.vocabulary import STRUCTURE_CLASSES

ranges, errors, ratios, is_object = [], [], [], []
for out, targets, _ in clip_outputs(Path(sys.argv[1]), patch_target="majority"):
    camera = targets["ego_pose"][..., None, :2]  # (B, F, 1, 2): each frame's camera in the clip frame
    truth, predicted, valid = targets["bev_target"], out["bev"], targets["bev_valid"]
    true_range = np.linalg.norm(truth - camera, axis=-1)
    ranges.append(true_range[valid])
    errors.append(np.linalg.norm(predicted - truth, axis=-1)[valid])
    ratios.append((np.linalg.norm(predicted - camera, axis=-1) / np.maximum(true_range, 1e-3))[valid])
    is_object.append((targets["patch_label"] >= len(STRUCTURE_CLASSES))[valid])
ranges, errors, ratios, is_object = map(np.concatenate, (ranges, errors, ratios, is_object))
bands = {}
for low, high in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 7), (7, 12)]:
    band = (ranges >= low) & (ranges < high)
    if band.sum() < 20:
        continue
    objects = band & is_object
    bands[f"{low}-{high} m"] = {
        "share": round(100 * band.mean(), 1), "median_error_m": round(float(np.median(errors[band])), 3),
        "object_median_error_m": round(float(np.median(errors[objects])), 3) if objects.sum() > 10 else None,
        "range_ratio": round(float(np.median(ratios[band])), 3)}
print(json.dumps(bands))
