"""Tower features of every training frame, computed once before stage 2.

A frozen tower (the paper freezes SigLIP) gives the same features for a frame at every step, so
running it again for each clip is wasted work (at 128 px in 8 x 8 patches, 1.6 -> about 0.9 s a step on
2 CPU cores; results/experiments.md, P20). The features come from exactly the images the dataset
feeds the model, so a step on cached features is the step on images (to float rounding).
The last cache built is kept for the next run in the same process: `loc3r ablate` trains every
variant on the same tower and frames, and the build takes 3.5 minutes a run on 2 CPU cores.
"""

from __future__ import annotations

import hashlib

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
        """Run the tower once over every frame of the scenes the dataset's items use (or take
        the last cache built, if it was built by the same tower weights over the same frames)."""
        global _last_built
        used = sorted({item[0] for item in dataset.items})
        counts = [len(dataset.scenes[s].scene.frames) for s in used]
        key = (tower_digest(model), dataset.image_size,
               tuple((str(dataset.scenes[s].path.resolve()), count) for s, count in zip(used, counts, strict=True)),
               len(dataset.scenes))
        if _last_built is not None and _last_built[0] == key:
            return _last_built[1]
        _last_built = None  # let the old features go before the new ones are computed
        offsets = torch.full((len(dataset.scenes),), -1, dtype=torch.long)
        offsets[used] = torch.from_numpy(np.cumsum([0, *counts[:-1]])).long()
        frames = [(s, i) for s, count in zip(used, counts, strict=True) for i in range(count)]
        device = next(model.parameters()).device
        parts = []
        for start in tqdm(range(0, len(frames), chunk), desc="tower features", unit="chunk", disable=not progress,
                          leave=False):
            images = np.stack([dataset.frame_image(s, i) for s, i in frames[start:start + chunk]])
            parts.append(model.tower_features(torch.from_numpy(images).to(device)).cpu())
        _last_built = key, cls(torch.cat(parts), offsets)
        return _last_built[1]

    def lookup(self, scene_index: torch.Tensor, frame_indices: torch.Tensor) -> torch.Tensor:
        """(B,) scenes and (B, F) frame indices -> (B, F, tower patches, channels)."""
        rows = self.offsets[scene_index.cpu()]
        if bool((rows < 0).any()):
            raise ValueError("a clip of a scene whose tower features were not cached")
        return self.features[rows[:, None] + frame_indices.cpu()]


_last_built: tuple[tuple, TowerFeatureCache] | None = None


def tower_digest(model: Loc3rForSpatialQA) -> str:
    """sha256 of the vision tower's weights: which tower computed a cache."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.vision_tower.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
