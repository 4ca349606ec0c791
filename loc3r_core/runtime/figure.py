"""A PNG of a streamed scene: the reconstructed map, its objects, the path, and placed situations.

Estimates are drawn over the ground truth (when there is one) on the same map-frame axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Polygon, Rectangle

from loc3r_core.atomic import atomic_path
from loc3r_core.types import OCCUPIED, UNKNOWN, Layout, PlanarPose
from loc3r_core.world.scene import Scene

ARROW_M = 0.4


@dataclass(frozen=True)
class PlacedSituation:
    label: str
    predicted: PlanarPose
    truth: tuple[float, float, float] | None = None  # x, y, yaw


def draw_run(out: Path, layout: Layout, trajectory: np.ndarray, situations: list[PlacedSituation],
             truth: Scene | None = None, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(9, 9))
    rows, cols = layout.occupancy.shape
    extent = (layout.origin[0], layout.origin[0] + cols * layout.resolution,
              layout.origin[1], layout.origin[1] + rows * layout.resolution)
    shade = np.where(layout.occupancy == UNKNOWN, 0.75, np.where(layout.occupancy == OCCUPIED, 0.15, 1.0))
    ax.imshow(shade, origin="lower", extent=extent, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if truth is not None:
        ax.add_patch(Polygon(truth.room.polygon, fill=False, edgecolor="tab:blue", linewidth=1.5, label="true room"))
        for obj in truth.objects:
            ax.add_patch(Polygon(obj.footprint(), fill=False, edgecolor="tab:blue", linestyle="--"))
            ax.annotate(obj.label, obj.center[:2], color="tab:blue", fontsize=8, ha="center", va="top")
        true_path = np.array([f.T_world_camera[:2, 3] for f in truth.frames])
        ax.plot(true_path[:, 0], true_path[:, 1], color="tab:blue", linewidth=1, label="true path")
    for obj in layout.objects:
        corner = obj.center[:2] - obj.size[:2] / 2
        ax.add_patch(Rectangle(tuple(corner), obj.size[0], obj.size[1], angle=float(np.degrees(obj.yaw)),
                               rotation_point="center", facecolor="tab:orange",
                               alpha=0.3 + 0.7 * obj.confidence, edgecolor="tab:orange"))
        ax.annotate(f"{obj.label} {obj.confidence:.2f}", obj.center[:2], color="tab:red", fontsize=8,
                    ha="center", va="bottom")
    if len(trajectory):
        ax.plot(trajectory[:, 0], trajectory[:, 1], color="black", linewidth=1.5, label="estimated path")
    for index, placed in enumerate(situations, start=1):
        p = placed.predicted
        _arrow(ax, p.x, p.y, p.yaw, "tab:red", f"S{index}")
        if placed.truth is not None:
            _arrow(ax, *placed.truth, "tab:green", f"S{index}")
    ax.plot([], [], "s", color="0.15", label="occupied")
    ax.plot([], [], ">", color="tab:red", label="situation: estimated")
    ax.plot([], [], ">", color="tab:green", label="situation: true")
    ax.set_xlim(*_limits(layout, trajectory, truth, 0))
    ax.set_ylim(*_limits(layout, trajectory, truth, 1))
    ax.set_aspect("equal")
    ax.set_xlabel("map x (m)")
    ax.set_ylabel("map y (m)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "loc3r: map, objects, path and situations")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def _arrow(ax: plt.Axes, x: float, y: float, yaw: float, colour: str, label: str) -> None:
    ax.arrow(x, y, ARROW_M * np.cos(yaw), ARROW_M * np.sin(yaw), width=0.04, color=colour)
    ax.annotate(label, (x, y), color=colour, fontsize=9, ha="right", va="top")


def _limits(layout: Layout, trajectory: np.ndarray, truth: Scene | None, axis: int) -> tuple[float, float]:
    """Fit the known cells, the path and the room, not the whole (mostly unknown) grid."""
    rows, cols = np.nonzero(layout.occupancy != UNKNOWN)
    cells = (cols if axis == 0 else rows) * layout.resolution + layout.origin[axis]
    values = [cells, trajectory[:, axis]] if len(trajectory) else [cells]
    if truth is not None:
        values.append(truth.room.polygon[:, axis])
    values = np.concatenate([v for v in values if len(v)]) if any(len(v) for v in values) else np.zeros(1)
    return float(values.min()) - 0.5, float(values.max()) + 0.5
