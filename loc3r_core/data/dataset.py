"""A torch Dataset over a folder of scene folders.

One item is a clip of a scene: frames sampled in time order, re-expressed in the frame
anchored to the clip's first sampled camera (as METHOD.md's BEV frame is), with
- the pose prior: each frame's pose relative to the first sampled frame (what odometry gives),
- the ego pose of every frame (x, y, yaw in the clip's BEV frame),
- per-patch BEV targets (mean back-projected point of the patch) and per-patch labels,
- one situation with one of its questions, placed in the same frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from loc3r_core.data.targets import patch_targets
from loc3r_core.errors import DataError
from loc3r_core.geometry import anchor_frame, camera_yaw, invert_pose, transform_planar
from loc3r_core.world.scene_io import SceneFolder, is_complete

SAMPLING = ("uniform", "random")
PSEUDO_SITUATION = "I am standing in the room."  # METHOD.md: questions without a situation


class SceneClipDataset(Dataset):
    """Items are (scene, situation, question) triples; each loads its own clip of the scene."""

    def __init__(
        self,
        root: str | Path,
        num_frames: int = 8,
        patch_grid: tuple[int, int] = (8, 8),
        image_size: int | None = None,
        sampling: str = "uniform",
        seed: int = 0,
    ) -> None:
        if sampling not in SAMPLING:
            raise ValueError(f"sampling must be one of {SAMPLING}, not {sampling!r}")
        self.root = Path(root)
        self.scenes = [SceneFolder(p) for p in sorted(self.root.glob("scene_*")) if is_complete(p)]
        if not self.scenes:
            raise DataError(f"{self.root} holds no complete scene folders (scene_NNNNN/scene.json)")
        self.num_frames = num_frames
        self.patch_grid = patch_grid
        self.image_size = image_size
        self.sampling = sampling
        self.seed = seed
        self.epoch = 0
        self.items = [
            (scene_index, situation_index, question_index)
            for scene_index, folder in enumerate(self.scenes)
            for situation_index, situation in enumerate(folder.situations)
            for question_index in range(len(situation.questions))
        ]

    def set_epoch(self, epoch: int) -> None:
        """Random sampling draws other frames each epoch, reproducibly."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def frame_indices(self, index: int) -> np.ndarray:
        scene_index = self.items[index][0]
        total = len(self.scenes[scene_index].scene.frames)
        count = min(self.num_frames, total)
        if self.sampling == "uniform":
            return np.linspace(0, total - 1, count).round().astype(np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return np.sort(rng.choice(total, size=count, replace=False))

    def __getitem__(self, index: int) -> dict:
        scene_index, situation_index, question_index = self.items[index]
        folder = self.scenes[scene_index]
        scene = folder.scene
        picks = self.frame_indices(index)
        poses_world = np.stack([scene.frames[i].T_world_camera for i in picks])
        T_clip_world = anchor_frame(poses_world[0])
        poses = T_clip_world @ poses_world
        clip_scene = scene.transformed(T_clip_world)

        images, points, valid, labels = [], [], [], []
        for k, i in enumerate(picks):
            targets = patch_targets(folder.depth(int(i)), folder.instance(int(i)), scene.intrinsics,
                                    poses[k], clip_scene, self.patch_grid)
            points.append(targets["points"])
            valid.append(targets["valid"])
            labels.append(targets["label"])
            images.append(self._image(folder.rgb(int(i))))

        situation = folder.situations[situation_index]
        question = situation.questions[question_index]
        position, yaw = transform_planar(T_clip_world, situation.position, situation.yaw)
        points_array = np.stack(points)
        return {
            "scene": folder.path.name,
            "frame_indices": torch.from_numpy(picks),
            "stamps": torch.tensor([scene.frames[i].stamp for i in picks], dtype=torch.float64),
            "images": torch.from_numpy(np.stack(images)),
            "T_world_camera": torch.from_numpy(poses),
            "prior_pose": torch.from_numpy(invert_pose(poses[0]) @ poses),
            "ego_pose": torch.from_numpy(np.concatenate([poses[:, :2, 3], camera_yaw(poses)[:, None]], axis=1)),
            "patch_points": torch.from_numpy(points_array),
            "bev_target": torch.from_numpy(np.nan_to_num(points_array[..., :2])),
            "bev_valid": torch.from_numpy(np.stack(valid)),
            "patch_label": torch.from_numpy(np.stack(labels)),
            "situation_text": situation.text or PSEUDO_SITUATION,
            "situation_position": torch.from_numpy(np.asarray(position, dtype=np.float64)),
            "situation_yaw": torch.tensor(float(yaw), dtype=torch.float64),
            "question": question.question,
            "question_type": question.type,
            "answer": question.answer,
        }

    def _image(self, rgb: np.ndarray) -> np.ndarray:
        """(3, S, S) float32 in [0, 1], resized if asked."""
        if self.image_size is not None and rgb.shape[0] != self.image_size:
            rgb = np.asarray(Image.fromarray(rgb).resize((self.image_size, self.image_size), Image.BILINEAR))
        return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0
