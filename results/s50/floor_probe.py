"""How much of the far tokens' depth error is the scene's scale? Score the object metrics with each
frame's per-token points moved along their rays by the runtime's floor scale (session 46: the
camera's true mount, as a robot's TF gives it, and the map head's floor points), as the runtime
moves its pointer's places.

    python results/s50/floor_probe.py data/val-big
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.evaluation.objects import ObjectAccumulator
from loc3r_core.evaluation.predict import predict_batch
from loc3r_core.model.checkpoint import load_model
from loc3r_core.runtime.floor_scale import FloorScaleConfig, floor_distances, keyframe_scale
from loc3r_core.runtime.scenario import scene_camera_mount
from loc3r_core.training.batch import collate, model_inputs
from loc3r_core.world.vocabulary import PATCH_CLASSES

model, tokenizer = load_model(None)
config = model.config
dataset = SceneClipDataset(Path(sys.argv[1]), num_frames=12, patch_grid=config.patch_grid,
                           image_size=config.vision_config.image_size, sampling="uniform", pseudo_situation_share=0.0,
                           patch_target="objects_first", map_subdivision=config.map_subdivision)
first: dict[int, int] = {}
for index, (scene, _, _) in enumerate(dataset.items):
    first.setdefault(scene, index)
floor_class = PATCH_CLASSES.index("floor")
variants = {"model": ObjectAccumulator(), "floor_scale": ObjectAccumulator()}
scales = []
indices = list(first.items())
with torch.no_grad():
    for start in range(0, len(indices), 16):
        chunk = indices[start : start + 16]
        items = [dataset[i] for _, i in chunk]
        batch = collate(items, tokenizer, config.patches_per_frame, with_answers=False)
        out = predict_batch(model, tokenizer, model_inputs(batch, use_prior=True), batch["lengths"])
        targets = {key: value.numpy() for key, value in batch["targets"].items()}
        for row, ((scene_index, _), meta) in enumerate(zip(chunk, batch["meta"], strict=True)):
            folder = dataset.scenes[scene_index]
            floor = floor_distances(folder.scene.intrinsics, scene_camera_mount(folder), config.patch_grid,
                                    config.map_subdivision)
            points, camera = out["bev"][row], out["ego_xy"][row][:, None, :]
            frames = points.shape[0]
            map_points = out["map_bev"][row].reshape(frames, -1, 2)
            map_labels = out["map_labels"][row].reshape(frames, -1)
            map_range = np.linalg.norm(map_points - camera, axis=-1)
            factors = np.array([keyframe_scale(map_range[f], floor, map_labels[f] == floor_class,
                                               FloorScaleConfig()) for f in range(frames)])
            scales.extend(factors.tolist())
            scaled = camera + (points - camera) * factors[:, None, None]
            for name, p in {"model": points, "floor_scale": scaled}.items():
                variants[name].add_clip(p, out["labels"][row], meta["objects"], meta["seen_object_ids"],
                                        targets["bev_target"][row], targets["bev_valid"][row],
                                        targets["patch_label"][row])
keys = ("object_recall", "object_point_precision", "object_bev_median_error_m")
result = {name: {key: acc.summary()[key] for key in keys} for name, acc in variants.items()}
result["scale_quartiles"] = np.quantile(scales, [0.1, 0.25, 0.5, 0.75, 0.9]).round(3).tolist()
print(json.dumps(result))
