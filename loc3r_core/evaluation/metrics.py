"""The evaluation metrics (SQA3D localization definitions, exact-match QA, map and ego-pose errors)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sized

import numpy as np

from loc3r_core.geometry import wrap_angle

LOCALIZATION_KEYS = ("loc_acc_0_5m", "loc_acc_1_0m", "ori_acc_15deg", "ori_acc_30deg")
# the same figures per way the generator places an asker (world.situations.PLACEMENTS)
PLACEMENT_KEYS = ("loc_acc_0_5m_by_placement", "loc_acc_1_0m_by_placement", "ori_acc_30deg_by_placement")
METRIC_KEYS = (
    *LOCALIZATION_KEYS, "qa_em", "bev_median_error_m",
    "ego_position_median_error_m", "ego_yaw_median_error_deg", "sigma_error_spearman", "semantic_acc",
    "object_recall", "object_point_precision", "object_bev_median_error_m",
)


def normalise_answer(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (average ranks for ties); NaN for fewer than 3 pairs or a constant input."""
    if len(a) < 3:
        return float("nan")
    ra, rb = average_ranks(np.asarray(a, float)), average_ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


class MetricAccumulator:
    """Collects per-sample results; `summary()` gives the JSON-ready numbers (percentages for accuracies)."""

    def __init__(self) -> None:
        self.position_error: list[float] = []
        self.yaw_error: list[float] = []
        self.position_sigma: list[float] = []
        self.placement: list[str | None] = []  # how each situation is placed (world.situations.PLACEMENTS)
        self.qa: dict[str, list[bool]] = defaultdict(list)
        self.bev_error: list[np.ndarray] = []
        self.ego_position_error: list[np.ndarray] = []
        self.ego_yaw_error: list[np.ndarray] = []
        self.semantic_hits = 0
        self.semantic_total = 0
        self.samples = 0

    def add_localization(self, position: np.ndarray, yaw: float, sigma: np.ndarray, true_position: np.ndarray,
                         true_yaw: float, placement: str | None = None) -> None:
        """One situation (count each situation once, not once per question), with how it is placed."""
        self.position_error.append(float(np.linalg.norm(np.asarray(position) - np.asarray(true_position))))
        self.yaw_error.append(abs(float(wrap_angle(yaw - true_yaw))))
        self.position_sigma.append(float(np.linalg.norm(sigma)))
        self.placement.append(placement)

    def add_answer(self, question_type: str, predicted: str, truth: str) -> None:
        self.samples += 1
        self.qa[question_type].append(normalise_answer(predicted) == normalise_answer(truth))

    def add_frames(self, bev: np.ndarray, bev_target: np.ndarray, bev_valid: np.ndarray, labels: np.ndarray,
                   true_labels: np.ndarray, ego_xy: np.ndarray, ego_yaw: np.ndarray, true_ego: np.ndarray) -> None:
        """One clip: (F, P, 2) map points, (F, P) labels, (F, 2)/(F,) ego poses. Frame 0 defines the
        frame (it is at the origin by construction), so ego errors count frames 1.. only."""
        self.bev_error.append(np.linalg.norm(bev - bev_target, axis=-1)[bev_valid])
        known = true_labels >= 0
        self.semantic_hits += int((labels[known] == true_labels[known]).sum())
        self.semantic_total += int(known.sum())
        self.ego_position_error.append(np.linalg.norm(ego_xy[1:] - true_ego[1:, :2], axis=-1))
        self.ego_yaw_error.append(np.abs(wrap_angle(ego_yaw[1:] - true_ego[1:, 2])))

    def summary(self) -> dict:
        pos, yaw = np.array(self.position_error), np.array(self.yaw_error)
        all_qa = [hit for hits in self.qa.values() for hit in hits]
        kinds = np.array(self.placement, dtype=object)
        placed = sorted({kind for kind in self.placement if kind is not None})

        def pct(mask: np.ndarray) -> float:
            return round(100.0 * float(mask.mean()), 2) if mask.size else float("nan")

        def median(parts: list[np.ndarray], scale: float = 1.0) -> float:
            values = np.concatenate(parts) if parts else np.array([])
            return round(float(np.median(values)) * scale, 4) if values.size else float("nan")

        return {
            "loc_acc_0_5m": pct(pos <= 0.5),
            "loc_acc_1_0m": pct(pos <= 1.0),
            "ori_acc_15deg": pct(yaw <= math.radians(15)),
            "ori_acc_30deg": pct(yaw <= math.radians(30)),
            "loc_acc_0_5m_by_placement": {kind: pct(pos[kinds == kind] <= 0.5) for kind in placed},
            "loc_acc_1_0m_by_placement": {kind: pct(pos[kinds == kind] <= 1.0) for kind in placed},
            "ori_acc_30deg_by_placement": {kind: pct(yaw[kinds == kind] <= math.radians(30)) for kind in placed},
            "qa_em": pct(np.array(all_qa)),
            "qa_em_by_type": {t: pct(np.array(h)) for t, h in sorted(self.qa.items())},
            "bev_median_error_m": median(self.bev_error),
            "ego_position_median_error_m": median(self.ego_position_error),
            "ego_yaw_median_error_deg": median(self.ego_yaw_error, 180.0 / math.pi),
            "sigma_error_spearman": round(spearman(np.array(self.position_sigma), pos), 4),
            "semantic_acc": round(100.0 * self.semantic_hits / max(self.semantic_total, 1), 2),
            "position_median_error_m": round(float(np.median(pos)), 4) if pos.size else float("nan"),
            "num_samples": self.samples,
            "num_situations": len(pos),
        }


def pick_items(dataset: Sized, max_samples: int | None) -> list[int]:
    """Evenly spread over the split, so a subset still covers every scene range."""
    if max_samples is None or max_samples >= len(dataset):
        return list(range(len(dataset)))
    return np.linspace(0, len(dataset) - 1, max_samples).round().astype(int).tolist()
