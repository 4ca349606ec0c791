"""Train the visual odometry network (`loc3r pretrain-motion`): planar camera steps from frame pairs.

Every pair of frames of a training walk a few steps apart (gap_weights: how often 0, 1, 2 ... steps)
is one example: the two frames (the runtime's preprocessing, at the network's input size) and the
second camera's planar pose in the first's axes, and (room_heading_weight > 0) the second
camera's heading against the room's walls, modulo 90 degrees. The frames are held in memory as
uint8, so a step costs one small forward and backward pass. Validation chains the steps along
each validation walk, as `loc3r eval --prior visual` does, and scores every frame's pose against
the truth from the walk's first frame.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from tqdm import tqdm

from loc3r_core.atomic import atomic_path
from loc3r_core.data.frames import walk_frames
from loc3r_core.errors import UsageError
from loc3r_core.export.motion_export import export_motion
from loc3r_core.geometry import planar_camera_pose, relative_planar, wrap_angle, wrap_right_angle
from loc3r_core.model.motion import MotionConfig, PlanarMotionNet, chain, save_motion, walk_readings, walk_steps
from loc3r_core.training.config import MotionPretrainConfig
from loc3r_core.training.curves import append_record, plot_curves
from loc3r_core.training.loop import learning_rate_factor
from loc3r_core.training.run_folder import check_run_folder
from loc3r_core.world.scene_io import SceneFolder, SceneRoots, scene_folders

MOTION_DIR = "motion"


@dataclass
class Walks:
    frames: list[np.ndarray]  # per walk (F, 3, S, S) uint8, what model_image gives (times 255)
    poses: list[np.ndarray]  # per walk (F, 3) planar camera poses (x, y, heading) in the world
    room_axes: list[float]  # per walk the direction of its room's first wall in the world (radians)

    def steps(self) -> list[np.ndarray]:
        """Per walk (F - 1, 3): each frame's planar pose in the previous frame's axes."""
        return [np.array([relative_planar(p[i], p[i + 1]) for i in range(len(p) - 1)]).reshape(-1, 3)
                for p in self.poses]

    def room_headings(self) -> list[np.ndarray]:
        """Per walk (F,): each frame's heading against its room's walls, in [-45, 45) degrees."""
        return [wrap_right_angle(p[:, 2] - axis) for p, axis in zip(self.poses, self.room_axes, strict=True)]


def planar_camera_poses(folder: SceneFolder) -> np.ndarray:
    """(F, 3) each frame's camera position on the floor and heading."""
    return planar_camera_pose(np.stack([frame.T_world_camera for frame in folder.scene.frames]))


def load_walks(roots: SceneRoots, image_size: int, max_scenes: int | None = None, progress: bool = True,
               desc: str = "walks") -> Walks:
    frames, poses, room_axes = [], [], []
    for path in tqdm(scene_folders(roots, max_scenes), desc=desc, unit="scene", disable=not progress):
        folder = SceneFolder(path)
        poses.append(planar_camera_poses(folder))
        frames.append(walk_frames(folder, image_size))
        wall = np.diff(folder.scene.room.polygon[:2], axis=0)[0]  # rooms are rectangles and L-shapes
        room_axes.append(float(np.arctan2(wall[1], wall[0])))
    return Walks(frames, poses, room_axes)


def walk_errors(model: PlanarMotionNet, walks: Walks) -> dict[str, float]:
    """Median errors of each step, and of every frame's chained pose from its walk's first frame;
    also standing still's chained error, the floor any odometry must beat, and what the network
    reads from a frame paired with itself (a camera that did not move: 0 is right). A network that
    reads the room's heading is scored on it too, and its chain both snapped (what the runtime
    does) and not ("free_walk_*")."""
    errors: dict[str, list[np.ndarray]] = defaultdict(list)
    for frames, poses, truth, heading in zip(walks.frames, walks.poses, walks.steps(), walks.room_headings(),
                                             strict=True):
        steps, headings = walk_readings(model, frames)
        errors["unmoved"].append(np.linalg.norm(walk_steps(model, np.repeat(frames, 2, axis=0))[::2, :2], axis=1))
        errors["step_xy"].append(np.linalg.norm(steps[:, :2] - truth[:, :2], axis=1))
        errors["step_turn"].append(np.abs(wrap_angle(steps[:, 2] - truth[:, 2])))
        true_walk = np.array([relative_planar(poses[0], p) for p in poses[1:]]).reshape(-1, 3)
        errors["still_xy"].append(np.linalg.norm(true_walk[:, :2], axis=1))
        chains = {"walk": chain(steps, headings)[1:]}
        if headings is not None:
            chains["free_walk"] = chain(steps)[1:]
            errors["room_heading"].append(np.abs(wrap_right_angle(headings - heading)))
        for name, chained in chains.items():
            errors[f"{name}_xy"].append(np.linalg.norm(chained[:, :2] - true_walk[:, :2], axis=1))
            errors[f"{name}_yaw"].append(np.abs(wrap_angle(chained[:, 2] - true_walk[:, 2])))

    def median(values: list[np.ndarray], degrees: bool = False) -> float:
        value = float(np.median(np.concatenate(values)))
        return round(float(np.degrees(value)) if degrees else value, 4)

    result = {"step_translation_m": median(errors["step_xy"]), "step_turn_deg": median(errors["step_turn"], True),
              "walk_position_m": median(errors["walk_xy"]), "walk_yaw_deg": median(errors["walk_yaw"], True),
              "standing_still_walk_position_m": median(errors["still_xy"]),
              "unmoved_reading_m": median(errors["unmoved"])}
    if "room_heading" in errors:
        result |= {"room_heading_deg": median(errors["room_heading"], True),
                   "free_walk_position_m": median(errors["free_walk_xy"]),
                   "free_walk_yaw_deg": median(errors["free_walk_yaw"], True)}
    return result


def pair_batch(walks: Walks, frames: list[torch.Tensor], pick: np.ndarray,
               gaps: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames (B, 3, S, S) in [0, 1] of walk w at f and `gaps` frames later (at most its last frame),
    for each (w, f) row of pick, the later camera's planar pose in the earlier one's axes (B, 3), and
    the later camera's heading against the room as the network reads it, (cos 4a, sin 4a) (B, 2)."""
    later = np.minimum(pick[:, 1] + gaps, [len(walks.poses[w]) - 1 for w in pick[:, 0]])
    previous = torch.stack([frames[w][f] for w, f in pick]).float() / 255.0
    current = torch.stack([frames[w][f] for w, f in zip(pick[:, 0], later, strict=True)]).float() / 255.0
    target = np.array([relative_planar(walks.poses[w][f], walks.poses[w][g])
                       for (w, f), g in zip(pick, later, strict=True)]).reshape(-1, 3)
    headings = np.array([walks.poses[w][g, 2] - walks.room_axes[w] for w, g in zip(pick[:, 0], later, strict=True)])
    room = np.stack([np.cos(4 * headings), np.sin(4 * headings)], axis=-1)
    return previous, current, torch.from_numpy(target).float(), torch.from_numpy(room).float()


def pretrain_motion(config: MotionPretrainConfig, progress: bool = True) -> Path:
    """Train the network; returns OUTPUT_DIR/motion (its weights and their ONNX export)."""
    run = Path(config.output_dir)
    check_run_folder(run, resume=None)
    torch.manual_seed(config.seed)
    walks = load_walks(config.train_data, config.image_size, config.max_train_scenes, progress, "training walks")
    steps = walks.steps()
    pairs = np.array([(w, f) for w, walk in enumerate(steps) for f in range(len(walk))], dtype=np.int64)
    if len(pairs) == 0:
        raise UsageError(f"{config.train_data} holds no walk of two frames or more")
    run.mkdir(parents=True, exist_ok=True)  # only now: bad data leaves no half-made run behind
    (run / "pretrain_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    all_steps = np.concatenate(steps)
    scale = np.maximum(np.abs(all_steps).mean(axis=0), 1e-3)  # the loss's units; kept in the network's config
    model = PlanarMotionNet(MotionConfig(image_size=config.image_size, motion_scale=tuple(scale.tolist()),
                                         room_heading=config.room_heading_weight > 0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(learning_rate_factor, config=config))
    generator = torch.Generator().manual_seed(config.seed)
    gap_weights = torch.tensor(config.gap_weights, dtype=torch.float64)
    frames = [torch.from_numpy(f) for f in walks.frames]
    log = run / "metrics.jsonl"
    total, started = 0.0, time.perf_counter()
    model.train()
    for step in tqdm(range(config.max_steps), desc="pretrain motion", unit="step", disable=not progress):
        pick = pairs[torch.randint(len(pairs), (config.batch_size,), generator=generator).numpy()]
        gaps = torch.multinomial(gap_weights, config.batch_size, replacement=True, generator=generator).numpy()
        previous, current, target, room = pair_batch(walks, frames, pick, gaps)
        target = target / torch.from_numpy(scale).float()
        reading = model.normalised(previous, current)
        loss = F.smooth_l1_loss(reading[:, :3], target, beta=config.huber_beta)
        if model.config.room_heading:
            loss = loss + config.room_heading_weight * F.mse_loss(reading[:, 3:], room)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += float(loss.detach())
        if (step + 1) % config.log_every == 0 or step + 1 == config.max_steps:
            count = (step % config.log_every) + 1
            append_record(log, {"step": step + 1, "split": "train", "loss": round(total / count, 5)})
            total = 0.0
    model.eval()
    record = {"step": config.max_steps, "split": "train", "seconds": round(time.perf_counter() - started, 1)}
    if config.val_data:
        val = load_walks(config.val_data, config.image_size, progress=progress, desc="validation walks")
        record = {**record, "split": "val", **walk_errors(model, val)}
    append_record(log, record)
    with atomic_path(run / MOTION_DIR) as tmp:
        save_motion(model, tmp)
        export_motion(tmp)  # the runtime reads steps through ONNX Runtime
    plot_curves(log, run / "curves.png")
    return run / MOTION_DIR
