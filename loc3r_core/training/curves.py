"""A PNG of a run's curves from its metrics.jsonl: training losses and validation metrics."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LOSS_TERMS = ("loss", "ce", "bev", "pos", "ori", "ego_pos", "ego_yaw", "semantic", "geometry")
VALIDATION_TERMS = ("loc_acc_1_0m", "ori_acc_30deg", "qa_em", "loc_acc_0_5m", "ori_acc_15deg", "object_recall",
                    "patch_object_recall")


def append_record(log: Path, record: dict) -> None:
    """One line of a run's metrics.jsonl (the stages that are not resumable write it this way)."""
    with Path(log).open("a") as f:
        f.write(json.dumps(record) + "\n")


def plot_curves(log: Path, out: Path) -> Path:
    records = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for term in LOSS_TERMS:
        points = [(r["step"], r[term]) for r in train if term in r]
        if points:
            axes[0].plot(*zip(*points, strict=True), label=term)
    axes[0].set(title="training losses (unweighted)", xlabel="step")
    axes[0].legend(fontsize=8)
    plotted = False
    for term in VALIDATION_TERMS:
        points = [(r["step"], r[term]) for r in val if term in r]
        if points:
            axes[1].plot(*zip(*points, strict=True), marker="o", label=term)
            plotted = True
    axes[1].set(title="validation (%)", xlabel="step", ylim=(0, 100))
    if plotted:  # a run whose validation is not in percent (pretrain-motion) leaves this panel empty
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
