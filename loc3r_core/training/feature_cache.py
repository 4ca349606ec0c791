"""Tower features of every training frame, computed once before stage 2.

A frozen tower (the paper freezes SigLIP) gives the same features for a frame at every step, so
running it again for each clip is wasted work (at 128 px in 8 x 8 patches, 1.6 -> about 0.9 s a step on
2 CPU cores; results/experiments.md, P20). The features come from exactly the images the dataset
feeds the model, so a step on cached features is the step on images (to float rounding).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.model.modeling_loc3r import Loc3rForSpatialQA


class TowerFeatureCache:
    """(frames, tower patches, channels) features of the dataset's scenes, looked up per clip."""

    def __init__(self, features: torch.Tensor, offsets: torch.Tensor) -> None:
        self.features = features  # every cached frame, scene after scene
        self.offsets = offsets  # (scenes,) row of each scene's frame 0; -1 where not cached

    @classmethod
    @torch.no_grad()
    def build(cls, model: Loc3rForSpatialQA, dataset: SceneClipDataset, chunk: int = 256,
              progress: bool = True) -> TowerFeatureCache:
        """Run the tower once over every frame of the scenes the dataset's items use."""
        used = sorted({item[0] for item in dataset.items})
        offsets = torch.full((len(dataset.scenes),), -1, dtype=torch.long)
        counts = [len(dataset.scenes[s].scene.frames) for s in used]
        offsets[used] = torch.from_numpy(np.cumsum([0, *counts[:-1]])).long()
        frames = [(s, i) for s, count in zip(used, counts, strict=True) for i in range(count)]
        device = next(model.parameters()).device
        parts = []
        for start in tqdm(range(0, len(frames), chunk), desc="tower features", unit="chunk", disable=not progress,
                          leave=False):
            images = np.stack([dataset.frame_image(s, i) for s, i in frames[start:start + chunk]])
            parts.append(model.tower_features(torch.from_numpy(images).to(device)).cpu())
        return cls(torch.cat(parts), offsets)

    def lookup(self, scene_index: torch.Tensor, frame_indices: torch.Tensor) -> torch.Tensor:
        """(B,) scenes and (B, F) frame indices -> (B, F, tower patches, channels)."""
        rows = self.offsets[scene_index.cpu()]
        if bool((rows < 0).any()):
            raise ValueError("a clip of a scene whose tower features were not cached")
        return self.features[rows[:, None] + frame_indices.cpu()]
