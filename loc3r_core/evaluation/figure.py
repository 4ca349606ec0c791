"""A PNG of predicted vs true layout and poses, one column per clip."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loc3r_core.world.polygon import box_corners
from loc3r_core.world.vocabulary import PATCH_CLASSES

ARROW_M = 0.5


def draw_examples(examples: list[dict], out: Path, title: str = "") -> Path:
    """Top row: true map points and poses; bottom row: the model's, on the same axes; the true
    objects' footprints under both (bold where the clip's frames show the object)."""
    if not examples:
        raise ValueError("no examples to draw")
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, len(PATCH_CLASSES)))
    fig, axes = plt.subplots(2, len(examples), figsize=(4.2 * len(examples), 8.4), squeeze=False)
    for column, ex in enumerate(examples):
        valid = ex["bev_valid"].astype(bool)
        truth, predicted = axes[0, column], axes[1, column]
        _points(truth, ex["bev_target"][valid], ex["true_labels"][valid], colours)
        _points(predicted, ex["bev"][valid], ex["labels"][valid], colours)
        for ax in (truth, predicted):  # the true objects' footprints under both, in their class colour
            for obj in ex.get("objects", []):
                corners = box_corners(obj["center"], obj["size"], obj["yaw"])
                ax.fill(corners[:, 0], corners[:, 1], facecolor="none", edgecolor=colours[obj["class"]],
                        linewidth=1.5 if obj["id"] in ex.get("seen_object_ids", ()) else 0.6)
        for ax, xy, yaw in ((truth, ex["true_ego"][:, :2], ex["true_ego"][:, 2]),
                            (predicted, ex["ego_xy"], ex["ego_yaw"])):
            ax.plot(xy[:, 0], xy[:, 1], "-o", color="black", markersize=3, linewidth=1, label="camera path")
            ax.quiver(xy[:, 0], xy[:, 1], np.cos(yaw), np.sin(yaw), angles="xy", scale_units="xy",
                      scale=1 / ARROW_M, width=0.006, color="black")
        for ax, position, yaw, colour in ((truth, ex["true_position"], ex["true_yaw"], "tab:red"),
                                          (predicted, ex["position"], ex["yaw"], "tab:red")):
            ax.plot(*position, marker="*", markersize=16, color=colour, label="asker")
            ax.arrow(position[0], position[1], ARROW_M * np.cos(yaw), ARROW_M * np.sin(yaw), width=0.05,
                     color=colour)
        predicted.plot(*ex["true_position"], marker="*", markersize=12, markerfacecolor="none",
                       markeredgecolor="tab:red", label="true asker")
        truth.set_title(f"{ex['scene']}: truth\n{_wrap(ex['situation'])}", fontsize=8)
        predicted.set_title("prediction", fontsize=9)
        limits = _limits(ex["bev_target"][valid], ex["true_ego"][:, :2], ex["true_position"])
        for ax in (truth, predicted):
            ax.set(xlim=limits[0], ylim=limits[1], aspect="equal", xlabel="x (m)", ylabel="y (m)")
            ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[i], label=name)
               for i, name in enumerate(PATCH_CLASSES)]
    fig.legend(handles=handles, loc="lower center", ncol=8, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return Path(out)


def _points(ax: plt.Axes, xy: np.ndarray, labels: np.ndarray, colours: np.ndarray) -> None:
    known = labels >= 0
    ax.scatter(xy[known, 0], xy[known, 1], c=colours[labels[known]], s=10, alpha=0.8)


def _limits(*point_sets: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    points = np.concatenate([np.atleast_2d(p) for p in point_sets])
    low, high = points.min(axis=0) - 0.7, points.max(axis=0) + 0.7
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def _wrap(text: str, width: int = 48) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
