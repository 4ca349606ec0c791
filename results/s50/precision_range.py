"""Object point precision of the model's object-labelled tokens by their true range from the
frame's camera, and with each token's range or bearing (about its camera) swapped for the
target's: is it depth or direction that loses the big rooms' precision?

    python results/s50/precision_range.py data/val-big [CHECKPOINT]   # the shipped model by default
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "s49"))
from probe_clips import clip_outputs

from loc3r_core.evaluation.objects import FIRST_OBJECT_CLASS, ObjectAccumulator, token_matches

BANDS = [(0, 2), (2, 3), (3, 4), (4, 5), (5, 12)]
variants = {name: ObjectAccumulator() for name in ("model", "target_range", "target_bearing")}
band_hits = {band: [0, 0] for band in BANDS}
checkpoint = Path(sys.argv[2]) if len(sys.argv) > 2 else None
for out, targets, metas in clip_outputs(Path(sys.argv[1]), checkpoint=checkpoint):
    for row, meta in enumerate(metas):
        points, labels = out["bev"][row], out["labels"][row]
        valid, true_labels = targets["bev_valid"][row], targets["patch_label"][row]
        truth = np.where(valid[..., None], targets["bev_target"][row], points)
        camera = targets["ego_pose"][row][:, None, :2]
        offset, true_offset = points - camera, truth - camera
        rng, true_rng = np.linalg.norm(offset, axis=-1), np.linalg.norm(true_offset, axis=-1)
        unit = offset / np.maximum(rng, 1e-6)[..., None]
        true_unit = true_offset / np.maximum(true_rng, 1e-6)[..., None]
        swaps = {"model": points, "target_range": camera + unit * true_rng[..., None],
                 "target_bearing": camera + true_unit * rng[..., None]}
        for name, p in swaps.items():
            variants[name].add_clip(p, labels, meta["objects"], meta["seen_object_ids"], targets["bev_target"][row],
                                    valid, true_labels)
        hit = token_matches(points.reshape(-1, 2), labels.reshape(-1), meta["objects"]).any(axis=1)
        is_object, flat_range = labels.reshape(-1) >= FIRST_OBJECT_CLASS, true_rng.reshape(-1)
        for low, high in BANDS:
            band = is_object & (flat_range >= low) & (flat_range < high)
            band_hits[(low, high)][0] += int(hit[band].sum())
            band_hits[(low, high)][1] += int(band.sum())
keys = ("object_recall", "object_point_precision")
result = {name: {key: acc.summary()[key] for key in keys} for name, acc in variants.items()}
total = sum(n for _, n in band_hits.values())
result["by_true_range"] = {f"{low}-{high} m": {"share_of_object_tokens": round(100 * n / total, 1),
                                                "precision": round(100 * h / max(n, 1), 1)}
                           for (low, high), (h, n) in band_hits.items()}
print(json.dumps(result, indent=1))
