"""The spatial losses and readouts of METHOD.md: Gaussian NLL for positions, binned yaw.

Positions are predicted as (x, y, log sigma_x, log sigma_y); yaw as logits over bins of
equal width on [-pi, pi), trained towards a wrapped Gaussian and read out by a circular
soft-argmax (which, unlike an argmax, is continuous and not limited to bin centres).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

LOG_SIGMA_RANGE = (-5.0, 3.0)  # sigma from 7 mm to 20 m: keeps the NLL finite early in training


def split_gaussian(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 4) raw head output -> mean (..., 2) and sigma (..., 2)."""
    return raw[..., :2], raw[..., 2:4].clamp(*LOG_SIGMA_RANGE).exp()


def gaussian_nll(raw: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """METHOD.md's L = mean_i 1/2 [(x - x^)^2 / s_x^2 + log s_x^2 + (y - y^)^2 / s_y^2 + log s_y^2]."""
    mean, sigma = split_gaussian(raw)
    per_item = 0.5 * (((target - mean) / sigma) ** 2 + 2.0 * sigma.log()).sum(dim=-1)
    if valid is None:
        return per_item.mean()
    valid = valid.to(per_item.dtype)
    return (per_item * valid).sum() / valid.sum().clamp(min=1.0)


def bin_centres(num_bins: int, device: torch.device | None = None) -> torch.Tensor:
    """Centres of num_bins equal bins covering [-pi, pi)."""
    width = 2.0 * math.pi / num_bins
    return -math.pi + width * (torch.arange(num_bins, device=device, dtype=torch.float32) + 0.5)


def wrapped_gaussian_target(yaw: torch.Tensor, num_bins: int, sigma: float) -> torch.Tensor:
    """(...,) yaw in radians -> (..., num_bins) distribution, normalised over the bins."""
    centres = bin_centres(num_bins, yaw.device)
    delta = torch.remainder(centres - yaw[..., None].float() + math.pi, 2.0 * math.pi) - math.pi
    weights = torch.exp(-0.5 * (delta / sigma) ** 2)
    return weights / weights.sum(dim=-1, keepdim=True)


def yaw_kl(logits: torch.Tensor, yaw: torch.Tensor, sigma: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """KL(target || softmax(logits)) with the wrapped-Gaussian target, averaged over items."""
    target = wrapped_gaussian_target(yaw, logits.shape[-1], sigma)
    log_probs = F.log_softmax(logits.float(), dim=-1)
    # 0 * log 0 = 0: bins far from the target underflow to exactly zero and must not give NaN
    terms = torch.where(target > 0, target * (target.clamp(min=1e-30).log() - log_probs), torch.zeros_like(target))
    per_item = terms.sum(dim=-1)
    if valid is None:
        return per_item.mean()
    valid = valid.to(per_item.dtype)
    return (per_item * valid).sum() / valid.sum().clamp(min=1.0)


def circular_soft_argmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Yaw = atan2 of the probability-weighted mean of bin directions; also its concentration.

    The concentration |v| in [0, 1] is 1 for a single sharp bin and 0 for a uniform spread;
    the circular standard deviation sqrt(-2 ln |v|) turns it into an angle.
    """
    probs = F.softmax(logits.float(), dim=-1)
    centres = bin_centres(logits.shape[-1], logits.device)
    vx = (probs * centres.cos()).sum(dim=-1)
    vy = (probs * centres.sin()).sum(dim=-1)
    return torch.atan2(vy, vx), torch.sqrt(vx * vx + vy * vy)


def circular_std(concentration: torch.Tensor) -> torch.Tensor:
    """Circular standard deviation (radians) from the mean resultant length."""
    return torch.sqrt(-2.0 * concentration.clamp(1e-6, 1.0).log())
