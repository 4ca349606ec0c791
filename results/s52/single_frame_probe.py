"""Is the far objects' depth already lost in the frozen tower's single-frame features, or lost by the
video model (stage 2) that reads them? A linear read-out (ridge, the capacity of stage 1's own point
head) from each token's merged tower features to its BEV target in its frame's camera axes, fitted on
one clip of 12 uniform frames per training scene, and scored against the shipped model's BEV points
on the same tokens of held-out scenes (object tokens the model labels rightly, true range over 3 m,
each point's range measured from the frame's true camera, as results/s51/far_depth_mount.py does).

    python results/s52/single_frame_probe.py data/val-big data/train data/train-bigrooms
"""

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.evaluation.objects import FIRST_OBJECT_CLASS
from loc3r_core.evaluation.predict import predict_batch
from loc3r_core.model.checkpoint import load_model
from loc3r_core.model.modeling_loc3r import merge_patches
from loc3r_core.training.batch import collate, model_inputs

TRAIN_SCENES = 300  # per training folder
RIDGE = 1.0

model, tokenizer = load_model()


@torch.no_grad()
def clips(data: Path, max_scenes: int | None = None) -> Iterator[tuple[np.ndarray, dict | None, dict]]:
    """Per batch of clips (one per scene, 12 uniform frames): the merged tower features (B, F, P, C),
    the model's outputs and the targets."""
    dataset = SceneClipDataset(data, num_frames=12, patch_grid=model.config.patch_grid,
                               image_size=model.config.vision_config.image_size, sampling="uniform",
                               pseudo_situation_share=0.0, patch_target="objects_first",
                               map_subdivision=model.config.map_subdivision)
    first: dict[int, int] = {}
    for index, (scene, _, _) in enumerate(dataset.items):
        first.setdefault(scene, index)
    indices = list(first.values())[:max_scenes]
    for start in range(0, len(indices), 16):
        batch = collate([dataset[i] for i in indices[start : start + 16]], tokenizer,
                        model.config.patches_per_frame, with_answers=False)
        images = batch["images"]
        features = model.tower_features(images.flatten(0, 1).float() / 255.0
                                        if images.dtype == torch.uint8 else images.flatten(0, 1))
        merged = merge_patches(features, model.config.vision_merge).unflatten(0, images.shape[:2])
        out = predict_batch(model, tokenizer, model_inputs(batch, use_prior=True), batch["lengths"]) \
            if max_scenes is None else None
        yield merged.numpy(), out, {key: value.numpy() for key, value in batch["targets"].items()}


def to_camera(points: np.ndarray, ego: np.ndarray) -> np.ndarray:
    """(B, F, P, 2) clip-frame points -> each frame's camera axes, by the (B, F, 3) true poses."""
    shifted = points - ego[:, :, None, :2]
    cos, sin = np.cos(ego[..., 2])[:, :, None], np.sin(ego[..., 2])[:, :, None]
    return np.stack([cos * shifted[..., 0] + sin * shifted[..., 1], -sin * shifted[..., 0] + cos * shifted[..., 1]], -1)


def to_clip(points: np.ndarray, ego: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(ego[..., 2])[:, :, None], np.sin(ego[..., 2])[:, :, None]
    x, y = points[..., 0], points[..., 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y], -1) + ego[:, :, None, :2]


# fit: ridge from [features, 1] to the camera-axes BEV target, every valid token of the training clips
gram, moment = None, None
for folder in sys.argv[2:]:
    for merged, _, targets in clips(Path(folder), TRAIN_SCENES):
        keep = targets["bev_valid"].astype(bool)
        x = np.concatenate([merged[keep], np.ones((int(keep.sum()), 1), np.float32)], axis=1).astype(np.float64)
        y = to_camera(targets["bev_target"][..., :2], targets["ego_pose"])[keep].astype(np.float64)
        gram = x.T @ x if gram is None else gram + x.T @ x
        moment = x.T @ y if moment is None else moment + x.T @ y
weights = np.linalg.solve(gram + RIDGE * np.eye(len(gram)), moment)

rows = []  # (true range, stage-2 range, probe range)
for merged, out, targets in clips(Path(sys.argv[1])):
    ego = targets["ego_pose"]
    flat = np.concatenate([merged, np.ones((*merged.shape[:3], 1), np.float32)], axis=-1)
    probe = to_clip(flat @ weights, ego)
    camera = ego[:, :, None, :2]
    true_range = np.linalg.norm(targets["bev_target"][..., :2] - camera, axis=-1)
    keep = targets["bev_valid"].astype(bool) & (targets["patch_label"] >= FIRST_OBJECT_CLASS) \
        & (out["labels"] == targets["patch_label"]) & (true_range > 3.0)
    target = targets["bev_target"][..., :2]
    rows += zip(true_range[keep], np.linalg.norm(out["bev"] - camera, axis=-1)[keep],
                np.linalg.norm(probe - camera, axis=-1)[keep], np.linalg.norm(out["bev"] - target, axis=-1)[keep],
                np.linalg.norm(probe - target, axis=-1)[keep], strict=True)
true_range, model_range, probe_range, model_error, probe_error = (np.array([r[i] for r in rows]) for i in range(5))
report = {"tokens": len(rows), "ridge": RIDGE, "train_scenes_per_folder": TRAIN_SCENES}
for low, high in ((3, 4), (4, 5), (5, 6), (6, 12)):
    band = (true_range >= low) & (true_range < high)
    if band.any():
        report[f"{low}-{high} m"] = {
            "tokens": int(band.sum()),
            "stage2_ratio": round(float(np.median(model_range[band] / true_range[band])), 3),
            "probe_ratio": round(float(np.median(probe_range[band] / true_range[band])), 3),
            "stage2_within_0_5m": round(float(np.mean(model_error[band] < 0.5)), 3),
            "probe_within_0_5m": round(float(np.mean(probe_error[band] < 0.5)), 3),
            "stage2_median_error_m": round(float(np.median(model_error[band])), 3),
            "probe_median_error_m": round(float(np.median(probe_error[band])), 3)}
print(json.dumps(report, indent=1))
