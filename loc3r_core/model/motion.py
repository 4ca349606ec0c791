"""Visual odometry: a small network that reads a camera step's planar motion from two frames.

Without wheel odometry the Loc3R model's own ego head does not learn where the camera went
(results/experiments.md, session 43): the frozen tower's features of one frame carry the turn
between two frames but not the travel. This network sees the two frames' pixels together (six
channels, as optical flow would) and reads the second camera's pose in the first's axes:
forward and left offset in metres, turn in radians. Chained along a walk, its steps stand in
for odometry as the model's prior (`loc3r eval --prior visual`).

With `room_heading` it also reads the second frame's heading against the room's walls, modulo
90 degrees (as cos and sin of four times the angle, which a right-angled room leaves unchanged):
the chain then snaps every pose's heading to it, so turns misread along a walk do not add up
(results/experiments.md, session 45).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from loc3r_core.geometry import chain_step
from loc3r_core.model.folder import CheckpointError
from loc3r_core.runtime.visual_odometry import CONFIG_FILE, SHIPPED_MOTION, WEIGHTS_FILE, room_heading


@dataclass
class MotionConfig:
    image_size: int = 64  # frames are resized to this square (runtime.preprocess.model_image)
    widths: tuple[int, ...] = (32, 64, 96, 128, 192)  # channels of the stride-2 conv blocks
    hidden: int = 256
    # mean |forward|, |left|, |turn| of the training steps: the outputs are learned in these units
    motion_scale: tuple[float, float, float] = field(default=(0.13, 0.05, 0.25))
    room_heading: bool = False  # also read the current frame's heading against the room's axes

    def __post_init__(self) -> None:
        self.widths, self.motion_scale = tuple(self.widths), tuple(float(s) for s in self.motion_scale)


def conv_block(channels_in: int, channels_out: int) -> nn.Sequential:
    """Halve the resolution, then one more 3x3 layer at the new size."""
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, 2, 1), nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, 1, 1), nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True))


class PlanarMotionNet(nn.Module):
    """(previous, current) frames -> the current camera's (forward m, left m, turn rad) in the previous's
    axes, followed with room_heading by the current frame's (cos 4a, sin 4a), a its heading against the room."""

    def __init__(self, config: MotionConfig) -> None:
        super().__init__()
        self.config = config
        widths = (6, *config.widths)
        self.features = nn.Sequential(*(conv_block(a, b) for a, b in pairwise(widths)))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], config.hidden),
                                  nn.ReLU(inplace=True), nn.Linear(config.hidden, self.outputs))
        scale = (*config.motion_scale, *(1.0,) * (self.outputs - 3))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32), persistent=False)

    @property
    def outputs(self) -> int:
        return 5 if self.config.room_heading else 3

    def normalised(self, previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) frames in [0, 1] -> (B, 3) motion in units of motion_scale (what the loss reads),
        and with room_heading (B, 2) the room heading's reading after it."""
        return self.head(self.features(torch.cat([previous, current], dim=1)))

    def forward(self, previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        return self.normalised(previous, current) * self.scale


def save_motion(model: PlanarMotionNet, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=2) + "\n")
    save_file({name: value.contiguous() for name, value in model.state_dict().items()}, str(folder / WEIGHTS_FILE))


def load_motion(folder: Path | None = None) -> PlanarMotionNet:
    """The network in eval mode; the shipped one when folder is None."""
    folder = SHIPPED_MOTION if folder is None else Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder} is not a motion network folder: {name} is missing")
    try:
        config = MotionConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        model = PlanarMotionNet(config)
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except Exception as exc:  # json, dataclass, safetensors and torch raise many types for a damaged folder
        raise CheckpointError(f"{folder} cannot be loaded as a motion network: {str(exc).splitlines()[0]}") from None
    return model.eval()


@torch.no_grad()
def walk_readings(model: PlanarMotionNet, frames: np.ndarray,
                  batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
    """(F, 3, S, S) uint8 frames of one walk, in order -> (F - 1, 3) the step between each pair, and
    with room_heading (F,) each frame's heading against the room (the first read paired with itself)."""
    tensor = torch.from_numpy(frames).float() / 255.0
    previous, current = torch.cat([tensor[:1], tensor[:-1]]), tensor  # row 0: the first frame twice
    readings = [model(previous[start:start + batch_size], current[start:start + batch_size])
                for start in range(0, len(current), batch_size)]
    readings = torch.cat(readings).numpy().astype(np.float64) if readings else np.zeros((0, model.outputs))
    return readings[1:, :3], (room_heading(readings[:, 3:]) if model.config.room_heading else None)


def walk_steps(model: PlanarMotionNet, frames: np.ndarray) -> np.ndarray:
    """(F, 3, S, S) uint8 frames of one walk, in order -> (F - 1, 3) the step between each pair."""
    return walk_readings(model, frames)[0]


def chain(steps: np.ndarray, headings: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) planar steps -> (N + 1, 3) poses in the first frame's axes, the first at the origin;
    with headings ((N + 1,) each frame's heading against the room) every heading snapped to them."""
    poses = [np.zeros(3)]
    for index, step in enumerate(steps):
        turn = None if headings is None else float(headings[index + 1] - headings[0])
        poses.append(chain_step(poses[-1], step, turn))
    return np.array(poses)
