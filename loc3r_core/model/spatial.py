"""The spatial losses and readouts of METHOD.md: Gaussian NLL for positions, binned yaw.

Positions are predicted as (x, y, log sigma_x, log sigma_y); yaw as logits over bins of
equal width on [-pi, pi), trained towards a wrapped Gaussian. Reading them out (circular
soft-argmax, sigmas) is numpy, in loc3r_core.readout, shared with the torch-free runtime.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from loc3r_core import readout
from loc3r_core.readout import LOG_SIGMA_RANGE  # clamping keeps the NLL finite early in training


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


def soft_argmax_yaw(logits: torch.Tensor) -> torch.Tensor:
    """(..., bins) yaw logits -> (...) yaw: the torch twin of readout.circular_soft_argmax."""
    probs = torch.softmax(logits.float(), dim=-1)
    centres = bin_centres(logits.shape[-1], logits.device)
    return torch.atan2((probs * torch.sin(centres)).sum(dim=-1), (probs * torch.cos(centres)).sum(dim=-1))


def bin_centres(num_bins: int, device: torch.device | None = None) -> torch.Tensor:
    """Centres of num_bins equal bins covering [-pi, pi) (those the readout uses)."""
    return torch.from_numpy(readout.bin_centres(num_bins)).float().to(device)


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


def focal_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, gamma: float = 0.0,
                        ignore_index: int = -1, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean focal loss (Lin et al., 2017) over labelled items: CE scaled by (1 - p_true)^gamma.

    gamma 0 is plain cross-entropy. Larger gamma turns the loss away from the easy, abundant
    classes (floor, wall) towards the hard ones (small objects) without class counts.
    class_weights (C,), if given, scale each item's loss by its true class's weight (a weighted
    mean, as F.cross_entropy's `weight`).
    """
    logits, labels = logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1).long()
    keep = labels != ignore_index
    if not bool(keep.any()):
        return logits.sum() * 0.0
    log_p = F.log_softmax(logits[keep], dim=-1).gather(1, labels[keep, None])[:, 0]
    loss = -((1.0 - log_p.exp()) ** gamma) * log_p if gamma else -log_p
    if class_weights is None:
        return loss.mean()
    weights = class_weights.to(loss)[labels[keep]]
    return (weights * loss).sum() / weights.sum()


def place_loss(place: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, delta: float = 0.5) -> torch.Tensor:
    """Mean Huber loss (delta in metres) of the distance from each valid row's (B, 2) place to its target."""
    if not bool(valid.any()):
        return place.sum() * 0.0
    squared = ((place.float() - target.float()) ** 2).sum(dim=-1)[valid]
    distance = torch.sqrt(squared + 1e-12)  # finite gradient at the target itself
    return F.huber_loss(distance, torch.zeros_like(distance), delta=delta)


def balanced_class_weights(counts: np.ndarray, power: float) -> torch.Tensor:
    """(C,) weights proportional to count^-power (0: all 1), normalised so the mean weight over the
    counted items is 1; classes never seen get the largest weight of those seen."""
    counts = np.asarray(counts, dtype=np.float64)
    seen = counts > 0
    weights = np.ones_like(counts)
    weights[seen] = counts[seen] ** -power
    weights[~seen] = weights[seen].max() if seen.any() else 1.0
    weights /= (weights * counts).sum() / max(counts.sum(), 1.0)
    return torch.tensor(weights, dtype=torch.float32)
