"""The camera prior: each frame's planar pose relative to the clip's first frame.

On a robot this comes from odometry (gravity-aligned, so only x, y, yaw matter). Training
corrupts it with drift that grows along the path and drops it for a share of clips, so the
model works with good odometry, drifting odometry, and none.
"""

from __future__ import annotations

import torch

PRIOR_FEATURES = 4  # x, y, cos yaw, sin yaw


def prior_features(planar: torch.Tensor) -> torch.Tensor:
    """(..., 3) x, y, yaw -> (..., 4) x, y, cos yaw, sin yaw."""
    return torch.stack([planar[..., 0], planar[..., 1], planar[..., 2].cos(), planar[..., 2].sin()], dim=-1).float()


def drifted(planar: torch.Tensor, generator: torch.Generator, drift_per_m: float, yaw_drift_deg: float) -> torch.Tensor:
    """(B, F, 3) clean relative poses -> the same with odometry-like random-walk drift.

    Each step adds translation noise proportional to the distance moved and yaw noise per
    step, accumulated along the clip; frame 0 stays exact (it defines the frame).
    """
    steps = planar[:, 1:, :2] - planar[:, :-1, :2]
    step_length = steps.norm(dim=-1, keepdim=True)
    # drawn on the generator's device (CPU), so a run draws the same noise on any accelerator
    xy_noise = torch.randn(steps.shape, generator=generator).to(planar.device) * drift_per_m * step_length
    yaw_step = torch.deg2rad(torch.tensor(yaw_drift_deg))
    yaw_noise = torch.randn(step_length.shape, generator=generator).to(planar.device) * yaw_step
    noise = torch.cat([xy_noise, yaw_noise], dim=-1).cumsum(dim=1)
    return planar + torch.cat([torch.zeros_like(noise[:, :1]), noise.to(planar.dtype)], dim=1)
