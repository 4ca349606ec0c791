"""Does the far object tokens' depth error follow the camera's mount (an unknown height and pitch
make a single image's depth ambiguous) or is it each object's own? Per object-labelled token with a
true range over 3 m from its frame's camera: log(model range / true range), against the scene's
camera height and pitch, and split into between-scene and within-scene variance.

    python results/s51/far_depth_mount.py data/val-big [CHECKPOINT]

Outputs for the shipped model: results/s51/shipped_far_depth_*.txt (probe-trainbig40 is a folder of
links to data/train-bigrooms/scene_00000..00039 and its manifest.json).
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "s49"))
from probe_clips import clip_outputs

from loc3r_core.evaluation.objects import FIRST_OBJECT_CLASS

data = Path(sys.argv[1])
checkpoint = Path(sys.argv[2]) if len(sys.argv) > 2 else None
rows = []  # (scene, height, pitch, true range, log ratio, image row of the token)
for out, targets, metas in clip_outputs(data, checkpoint=checkpoint):
    for row, meta in enumerate(metas):
        scene_meta = json.loads((data / meta["scene"] / "scene.json").read_text())["meta"]
        points, labels = out["bev"][row], out["labels"][row]
        valid, true_labels = targets["bev_valid"][row], targets["patch_label"][row]
        camera = targets["ego_pose"][row][:, None, :2]
        rng = np.linalg.norm(points - camera, axis=-1)
        true_rng = np.linalg.norm(targets["bev_target"][row] - camera, axis=-1)
        keep = valid & (true_labels >= FIRST_OBJECT_CLASS) & (labels == true_labels) & (true_rng > 3.0)
        side = round(np.sqrt(keep.shape[1]))
        token_row = np.broadcast_to(np.arange(keep.shape[1]) // side, keep.shape)
        for r, t, tr in zip(rng[keep], true_rng[keep], token_row[keep], strict=True):
            rows.append((meta["scene"], scene_meta["camera_height"], scene_meta["camera_pitch_deg"], t,
                         np.log(r / t), tr))

scenes = np.array([r[0] for r in rows])
height, pitch, true_range, log_ratio, token_row = (np.array([r[i] for r in rows]) for i in range(1, 6))
scene_mean = {s: log_ratio[scenes == s].mean() for s in set(scenes)}
between = np.array([scene_mean[s] for s in scenes])
print(json.dumps({
    "tokens": len(rows), "scenes": len(scene_mean),
    "median_abs_log_ratio": round(float(np.median(np.abs(log_ratio))), 3),
    "spearman_log_ratio_vs_height": round(float(spearmanr(log_ratio, height)[0]), 3),
    "spearman_log_ratio_vs_pitch": round(float(spearmanr(log_ratio, pitch)[0]), 3),
    "spearman_log_ratio_vs_true_range": round(float(spearmanr(log_ratio, true_range)[0]), 3),
    "spearman_log_ratio_vs_token_row": round(float(spearmanr(log_ratio, token_row)[0]), 3),
    "variance_total": round(float(log_ratio.var()), 4),
    "variance_between_scenes": round(float(between.var()), 4),
    "variance_within_scenes": round(float((log_ratio - between).var()), 4),
    "share_within_0_5m": round(float(np.mean(np.abs(np.exp(log_ratio) - 1) * true_range < 0.5)), 3),
}, indent=1))

# The bias by band: by the true range (what the model does to far objects) and by the model's own
# range (what a read-out could correct).
model_range = true_range * np.exp(log_ratio)
for name, key in (("by_true_range", true_range), ("by_model_range", model_range)):
    bands = {}
    for low, high in ((3, 4), (4, 5), (5, 6), (6, 12)):
        band = (key >= low) & (key < high)
        if band.any():
            bands[f"{low}-{high} m"] = {"tokens": int(band.sum()),
                                        "median_ratio": round(float(np.exp(np.median(log_ratio[band]))), 3),
                                        "within_0_5m": round(float(np.mean(
                                            np.abs(model_range[band] - true_range[band]) < 0.5)), 3)}
    print(name, json.dumps(bands))
