"""Shared by the session-49 probes: a model's outputs on one clip of 12 uniform frames a scene."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.evaluation.predict import predict_batch
from loc3r_core.model.checkpoint import load_model
from loc3r_core.training.batch import collate, model_inputs


@torch.no_grad()
def clip_outputs(data: Path, patch_target: str = "objects_first", checkpoint: Path | None = None,
                 batch_size: int = 16) -> Iterator[tuple[dict, dict[str, np.ndarray], list[dict]]]:
    """(outputs, targets, metas) per batch of clips; targets as the training target `patch_target`."""
    model, tokenizer = load_model(checkpoint)
    dataset = SceneClipDataset(data, num_frames=12, patch_grid=model.config.patch_grid,
                               image_size=model.config.vision_config.image_size, sampling="uniform",
                               pseudo_situation_share=0.0, patch_target=patch_target,
                               map_subdivision=model.config.map_subdivision)
    first: dict[int, int] = {}
    for index, (scene, _, _) in enumerate(dataset.items):
        first.setdefault(scene, index)
    indices = list(first.values())
    for start in range(0, len(indices), batch_size):
        items = [dataset[i] for i in indices[start : start + batch_size]]
        batch = collate(items, tokenizer, model.config.patches_per_frame, with_answers=False)
        out = predict_batch(model, tokenizer, model_inputs(batch, use_prior=True), batch["lengths"])
        yield out, {key: value.numpy() for key, value in batch["targets"].items()}, batch["meta"]
