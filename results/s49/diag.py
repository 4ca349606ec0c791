"""Object recall and point precision with the model's per-token points or labels swapped for the
training target's (objects_first), and what the missed objects have near them.

    python results/s49/diag.py data/val-big
"""

import json
import sys
from pathlib import Path

import numpy as np
from probe_clips import clip_outputs

from loc3r_core.evaluation.objects import OBJECT_MATCH_M, ObjectAccumulator, footprint_distances

variants = {name: ObjectAccumulator() for name in ("model", "target_points", "target_labels", "target_both")}
missed = {"seen": 0, "missed": 0, "no_class_token": 0, "no_class_token_in_target": 0}
far: list[float] = []
for out, targets, metas in clip_outputs(Path(sys.argv[1])):
    for row, meta in enumerate(metas):
        points, labels = out["bev"][row], out["labels"][row]
        valid, true_labels = targets["bev_valid"][row], targets["patch_label"][row]
        true_points = np.where(valid[..., None], targets["bev_target"][row], points)
        true_labels_or_model = np.where(valid, true_labels, labels)
        swaps = {"model": (points, labels), "target_points": (true_points, labels),
                 "target_labels": (points, true_labels_or_model), "target_both": (true_points, true_labels_or_model)}
        for name, (p, lab) in swaps.items():
            variants[name].add_clip(p, lab, meta["objects"], meta["seen_object_ids"], targets["bev_target"][row],
                                    valid, true_labels)
        flat_points, flat_labels = points.reshape(-1, 2), labels.reshape(-1)
        distances = footprint_distances(flat_points, meta["objects"])
        for j, obj in enumerate(meta["objects"]):
            if obj["id"] not in set(meta["seen_object_ids"]):
                continue
            missed["seen"] += 1
            same = flat_labels == obj["class"]
            if (same & (distances[:, j] <= OBJECT_MATCH_M)).any():
                continue
            missed["missed"] += 1
            if same.any():
                far.append(float(distances[same, j].min()))
            else:
                missed["no_class_token"] += 1
            missed["no_class_token_in_target"] += int(not (true_labels == obj["class"]).any())
keys = ("object_recall", "object_point_precision", "object_recall_by_class")
result = {name: {key: acc.summary()[key] for key in keys} for name, acc in variants.items()}
result["missed"] = missed | {"with_a_far_class_token": len(far),
                             "far_quartiles_m": np.quantile(far, [0.25, 0.5, 0.75]).round(2).tolist() if far else []}
print(json.dumps(result, indent=1))
