"""Turning the model's raw spatial outputs into positions, yaws and uncertainties (numpy only).

The evaluation and both runtime backends share these, and the ONNX backend has no torch,
so they are numpy. Positions arrive as (x, y, log sigma_x, log sigma_y); yaw as logits over
equal bins on [-pi, pi), read out by a circular soft-argmax (continuous, unlike an argmax).
"""

from __future__ import annotations

import math

import numpy as np

LOG_SIGMA_RANGE = (-5.0, 3.0)  # sigma from 7 mm to 20 m: the range training clamps to


def split_gaussian(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 4) raw head output -> mean (..., 2) and sigma (..., 2)."""
    raw = np.asarray(raw, dtype=np.float64)
    return raw[..., :2], np.exp(np.clip(raw[..., 2:4], *LOG_SIGMA_RANGE))


def split_map_head(raw: np.ndarray, subpatches: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, s^2 * (4 + C)) map-head rows -> (N * s^2, 4) sub-patch points and (N * s^2, C) label
    logits (numpy twin of modeling_loc3r.split_map_head, flattened token by token)."""
    per_sub = raw.reshape(raw.shape[0] * subpatches, -1)
    return per_sub[:, :4], per_sub[:, 4:]


def without_eos(logits: np.ndarray, eos_token_id: int) -> np.ndarray:
    """The first answer token's logits with <eos> ruled out: every trained answer has a token, so
    an empty one is never right (transformers' min_new_tokens=1; evaluation.predict does the same)."""
    logits = logits.copy()
    logits[..., eos_token_id] = -np.inf
    return logits


def bin_centres(num_bins: int) -> np.ndarray:
    """Centres of num_bins equal bins covering [-pi, pi)."""
    width = 2.0 * math.pi / num_bins
    return -math.pi + width * (np.arange(num_bins, dtype=np.float64) + 0.5)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def circular_soft_argmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yaw = atan2 of the probability-weighted mean of bin directions; also its concentration.

    The concentration |v| in [0, 1] is 1 for a single sharp bin and 0 for a uniform spread.
    """
    probs = softmax(logits)
    centres = bin_centres(probs.shape[-1])
    vx = (probs * np.cos(centres)).sum(axis=-1)
    vy = (probs * np.sin(centres)).sum(axis=-1)
    return np.arctan2(vy, vx), np.sqrt(vx * vx + vy * vy)


def circular_std(concentration: np.ndarray | float) -> np.ndarray:
    """Circular standard deviation (radians) from the mean resultant length: sqrt(-2 ln |v|)."""
    return np.sqrt(-2.0 * np.log(np.clip(concentration, 1e-6, 1.0)))


def pointer_attention(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(Q, d) queries over (N, d) keys -> (Q, N) softmax weights (scaled dot product).

    The runtime's half of the pointer readout (model.modeling_loc3r.SituationPointer): the
    heads graph gives every row's key and query, the session points over its memory.
    """
    scores = np.asarray(queries, np.float64) @ np.asarray(keys, np.float64).T / math.sqrt(keys.shape[-1])
    return softmax(scores)


EGO_FEATURES = 5  # a point as the asker sees it: metres ahead, to the left, distance, cos and sin of its bearing
# Loc3rConfig.answer_sector_features: also how far inside each 90-degree sector (front, left, behind,
# right: the answers' sectors) a point lies, sigmoid(SECTOR_SHARPNESS * (cos(bearing - sector) - cos 45)),
# so one gate weight can prefer "well inside my left" where cos and sin of the bearing only tilt.
SECTOR_FEATURES = 4
SECTOR_SHARPNESS = 10.0


def ego_feature_count(sectors: bool) -> int:
    return EGO_FEATURES + (SECTOR_FEATURES if sectors else 0)


def answer_read_width(features: int, classes: int, spread: bool) -> int:
    """One answer head's read: its mean egocentric features and class probabilities, and with
    `spread` (Loc3rConfig.answer_spread_reads) the RMS distance of its weighed places from their mean."""
    return features + classes + (1 if spread else 0)


def egocentric_features(points: np.ndarray, position: np.ndarray, yaw: float, sectors: bool = False) -> np.ndarray:
    """(N, 2) points -> (N, ego_feature_count(sectors)) as seen from an asker at position (2,)
    facing yaw (the numpy twin of model.modeling_loc3r.egocentric_features)."""
    delta = np.asarray(points, np.float64) - np.asarray(position, np.float64)
    cos, sin = math.cos(yaw), math.sin(yaw)
    ahead, left = cos * delta[:, 0] + sin * delta[:, 1], -sin * delta[:, 0] + cos * delta[:, 1]
    distance = np.sqrt(ahead ** 2 + left ** 2 + 1e-6)
    columns = [ahead, left, distance, ahead / distance, left / distance]
    if sectors:  # cos(bearing - k * 90 degrees) for front, left, behind, right
        columns += [1.0 / (1.0 + np.exp(-SECTOR_SHARPNESS * (c - math.sqrt(0.5))))
                    for c in (ahead / distance, left / distance, -ahead / distance, -left / distance)]
    return np.stack(columns, axis=1)


def answer_reads(queries: np.ndarray, gates: np.ndarray, keys: np.ndarray, points: np.ndarray,
                 class_probs: np.ndarray, position: np.ndarray, yaw: float, sectors: bool = False,
                 spread: bool = False) -> np.ndarray:
    """The answer readout's attention in numpy (model.modeling_loc3r.AnswerReadout.reads).

    queries (heads, d) and gates (heads, ego_feature_count(sectors)) from the <answer> state; keys
    (N, d), points (N, 2) and class_probs (N, C) of the memory's vision tokens; the asker's position
    and yaw in the points' frame. Returns (heads * answer_read_width(features, C, spread),) reads.
    """
    ego = egocentric_features(points, position, yaw, sectors)
    scores = np.asarray(queries, np.float64) @ np.asarray(keys, np.float64).T / math.sqrt(keys.shape[-1])
    weights = softmax(scores + np.asarray(gates, np.float64) @ ego.T)
    reads = weights @ np.concatenate([ego, np.asarray(class_probs, np.float64)], axis=1)
    if spread:  # RMS distance of the weighed places (ahead, left) from their mean
        squared = ((ego[None, :, :2] - reads[:, None, :2]) ** 2).sum(axis=-1)
        reads = np.concatenate([reads, np.sqrt((weights * squared).sum(axis=1) + 1e-6)[:, None]], axis=1)
    return reads.reshape(-1)


def relative_offsets(offset: np.ndarray, at: np.ndarray, faced: np.ndarray, viewer: np.ndarray,
                     front: np.ndarray | None = None) -> np.ndarray:
    """(4,) offsets (along, left of) the directions from `at` to `faced` and to `viewer`, and (6,)
    with a `front` direction (2,) also along it -> (2,) in their common axes
    (model.modeling_loc3r.relative_place).

    A zero direction leaves its offset along the x axis, as the model's rotate_towards does.
    """
    parts = [(offset[:2], faced - at), (offset[2:4], viewer - at)]
    if front is not None:
        parts.append((offset[4:6], front))
    total = np.zeros(2)
    for part, direction in parts:
        heading = math.atan2(direction[1], direction[0])
        cos, sin = math.cos(heading), math.sin(heading)
        total += [cos * part[0] - sin * part[1], sin * part[0] + cos * part[1]]
    return total


def facing_bump(num_bins: int, heading: float, kappa: float) -> np.ndarray:
    """kappa * cos(bin centre - heading): the pointer's push of the yaw logits towards a heading."""
    return kappa * np.cos(bin_centres(num_bins) - heading)


def pointed_fronts(weights: np.ndarray, fronts: np.ndarray) -> np.ndarray:
    """(2, 2) the mean unit front of the (N, 2) fronts that <Ori>'s row of the (Q, N) pointer
    weights weighs (its last), then that of <Pos>'s rows (averaged; numpy twin of
    model.modeling_loc3r.pointed_fronts)."""
    unit = fronts / np.maximum(np.linalg.norm(fronts, axis=-1, keepdims=True), 1e-12)
    pointed = weights @ unit
    return np.stack([pointed[-1], pointed[:-1].mean(axis=0)])


def front_bump(gains: np.ndarray, fronts: np.ndarray, num_bins: int) -> np.ndarray:
    """(bins,) yaw-logit bumps gain_o |f_o| cos(bin - angle of f_o) + gain_p (the same for f_p), fronts
    (2, 2) the pointed fronts f_o, f_p (pointed_fronts; numpy twin of SituationPointer.front_bump)."""
    centres = bin_centres(num_bins)
    return gains @ (fronts @ np.stack([np.cos(centres), np.sin(centres)]))


def widened_log_sigma(log_sigma: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """log sqrt(sigma^2 + variance): a head's sigma widened by the spread of the points a pointer weighs."""
    return 0.5 * np.log(np.exp(2.0 * np.clip(log_sigma, *LOG_SIGMA_RANGE)) + variance)
