"""The model's prior without odometry: each walk's frames chained through the motion network.

`loc3r eval --prior visual` gives the model, in place of odometry, the poses the visual odometry
network (model.motion) reads from every consecutive pair of the walk's frames, chained from its
first frame (each heading snapped to the room's axes where the network reads them, as the
runtime's odometry does): the clip's sampled frames then get their poses relative to the clip's
first, as odometry would give them (the model was trained with drifting odometry).
"""

from __future__ import annotations

import numpy as np
import torch

from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.data.frames import walk_frames
from loc3r_core.geometry import relative_planar
from loc3r_core.model.motion import PlanarMotionNet, chain, walk_readings


class VisualPrior:
    def __init__(self, motion: PlanarMotionNet, dataset: SceneClipDataset) -> None:
        self.motion, self.dataset = motion, dataset
        self._walks: dict[int, np.ndarray] = {}

    def walk(self, scene_index: int) -> np.ndarray:
        """(F, 3) every frame's chained pose in the walk's first frame's axes (computed once a walk)."""
        if scene_index not in self._walks:
            frames = walk_frames(self.dataset.scenes[scene_index], self.motion.config.image_size)
            self._walks[scene_index] = chain(*walk_readings(self.motion, frames))
        return self._walks[scene_index]

    def planar_prior(self, items: list[dict]) -> torch.Tensor:
        """(B, F, 3) each item's sampled frames' poses relative to its first: collate's planar_prior."""
        rows = []
        for item in items:
            poses = self.walk(int(item["scene_index"]))[np.asarray(item["frame_indices"])]
            rows.append([relative_planar(poses[0], pose) for pose in poses])
        return torch.tensor(np.array(rows))
