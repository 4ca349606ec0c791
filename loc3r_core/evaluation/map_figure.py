"""One PNG per scored scene: the model's grid and the oracle-fed grid, each under the true room.

The truth is drawn in the map frame (the scene moved by T_map_world), so what is off in the
picture is off in the scores.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Polygon, Rectangle

from loc3r_core.atomic import atomic_path
from loc3r_core.evaluation.map_run import SceneMaps
from loc3r_core.geometry import invert_pose
from loc3r_core.types import OCCUPIED, UNKNOWN, Layout
from loc3r_core.world.scene import Scene

MARGIN_M = 0.6


def draw_maps(out: Path, maps: SceneMaps, model_scores: dict, oracle_scores: dict) -> Path:
    truth = maps.scene.transformed(invert_pose(maps.T_world_map))
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    for ax, layout, name, scores in ((axes[0], maps.model, "model", model_scores),
                                     (axes[1], maps.oracle, "oracle fusion", oracle_scores)):
        _panel(ax, layout, truth)
        ax.set_title(f"{name}: occ.prec {scores['occupied_precision']:.2f}  wall rec {scores['wall_recall']:.2f}\n"
                     f"free prec {scores['free_precision']:.2f}  free cov {scores['free_coverage']:.2f}  "
                     f"obj F1 {scores['object_f1']:.2f}", fontsize=9)
    fig.suptitle(f"{maps.name}: {len(maps.keyframes)} keyframes; true room and objects in blue, "
                 "map objects in orange", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return out


def _panel(ax: plt.Axes, layout: Layout, truth: Scene) -> None:
    rows, cols = layout.occupancy.shape
    extent = (layout.origin[0], layout.origin[0] + cols * layout.resolution,
              layout.origin[1], layout.origin[1] + rows * layout.resolution)
    shade = np.where(layout.occupancy == UNKNOWN, 0.75, np.where(layout.occupancy == OCCUPIED, 0.15, 1.0))
    ax.imshow(shade, origin="lower", extent=extent, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.add_patch(Polygon(truth.room.polygon, fill=False, edgecolor="tab:blue", linewidth=1.5))
    for obj in truth.objects:
        ax.add_patch(Polygon(obj.footprint(), fill=False, edgecolor="tab:blue", linestyle="--"))
        ax.annotate(obj.label, obj.center[:2], color="tab:blue", fontsize=7, ha="center", va="top")
    for obj in layout.objects:
        ax.add_patch(Rectangle(tuple(obj.center[:2] - obj.size[:2] / 2), obj.size[0], obj.size[1],
                               angle=float(np.degrees(obj.yaw)), rotation_point="center",
                               fill=False, edgecolor="tab:orange", linewidth=1.2))
        ax.annotate(obj.label, obj.center[:2], color="tab:red", fontsize=7, ha="center", va="bottom")
    known = np.nonzero(layout.occupancy != UNKNOWN)
    xs = np.concatenate([truth.room.polygon[:, 0], layout.origin[0] + (known[1] + 0.5) * layout.resolution])
    ys = np.concatenate([truth.room.polygon[:, 1], layout.origin[1] + (known[0] + 0.5) * layout.resolution])
    ax.set_xlim(xs.min() - MARGIN_M, xs.max() + MARGIN_M)
    ax.set_ylim(ys.min() - MARGIN_M, ys.max() + MARGIN_M)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
