"""Does the causal LM's depth improve as the clip goes on? Each frame index's object point precision,
its tokens' median BEV error and median range ratio (one clip of 12 uniform frames a scene).

    python results/s50/by_frame.py data/val-big
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "s49"))
from probe_clips import clip_outputs

from loc3r_core.evaluation.objects import FIRST_OBJECT_CLASS, token_matches

hits, totals, errors, ratios = np.zeros(12), np.zeros(12), [[] for _ in range(12)], [[] for _ in range(12)]
for out, targets, metas in clip_outputs(Path(sys.argv[1])):
    for row, meta in enumerate(metas):
        points, labels, valid = out["bev"][row], out["labels"][row], targets["bev_valid"][row]
        truth, camera = targets["bev_target"][row], targets["ego_pose"][row][:, None, :2]
        true_range = np.linalg.norm(truth - camera, axis=-1)
        ratio = np.linalg.norm(points - camera, axis=-1) / np.maximum(true_range, 1e-3)
        error = np.linalg.norm(points - truth, axis=-1)
        for frame in range(points.shape[0]):
            matched = token_matches(points[frame], labels[frame], meta["objects"]).any(axis=1)
            is_object = labels[frame] >= FIRST_OBJECT_CLASS
            hits[frame] += matched[is_object].sum()
            totals[frame] += is_object.sum()
            far = valid[frame] & (true_range[frame] > 3.0)
            errors[frame].extend(error[frame][far])
            ratios[frame].extend(ratio[frame][far])
print(json.dumps({"precision": (100 * hits / totals).round(1).tolist(),
                  "far_median_error_m": [round(float(np.median(e)), 3) for e in errors],
                  "far_range_ratio_iqr": [np.quantile(r, [0.25, 0.75]).round(3).tolist() for r in ratios]}))
