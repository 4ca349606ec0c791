"""A contact sheet of one scene: frames (RGB, depth, instances) beside its bird's-eye map."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.patches import Polygon as PolygonPatch

from loc3r_core.atomic import atomic_path
from loc3r_core.geometry import camera_yaw
from loc3r_core.world.scene import Scene, Situation
from loc3r_core.world.scene_io import SceneFolder

RGB_TILES = 8
# Object ids in tab20 colours; id 0 (room structure) in light grey.
_INSTANCE_COLOURS = ListedColormap(["#d9d9d9", *plt.get_cmap("tab20").colors[1:]])


def draw_bev(ax: Axes, scene: Scene, situations: list[Situation] | None = None, title: str = "") -> None:
    """Room, labelled object boxes, camera path with viewing directions, and situations."""
    ax.add_patch(PolygonPatch(scene.room.polygon, closed=True, fill=True, facecolor="#f4f1ea",
                              edgecolor="#333333", linewidth=3, zorder=0))
    for obj in scene.objects:
        ax.add_patch(PolygonPatch(obj.footprint(), closed=True, facecolor=obj.color, edgecolor="black",
                                  linewidth=1, alpha=0.85, zorder=2))
        front = obj.center[:2] + 0.5 * obj.size[0] * np.array([math.cos(obj.yaw), math.sin(obj.yaw)])
        ax.plot(*np.stack([obj.center[:2], front]).T, color="black", linewidth=0.8, zorder=3)
        ax.annotate(f"{obj.id} {obj.label}", obj.center[:2], ha="center", va="center", fontsize=8, zorder=6,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
    poses = scene.poses()
    xy, yaw = poses[:, :2, 3], camera_yaw(poses)
    ax.plot(xy[:, 0], xy[:, 1], "-", color="tab:blue", linewidth=1.5, zorder=4, label="camera path")
    ax.quiver(xy[:, 0], xy[:, 1], np.cos(yaw), np.sin(yaw), color="tab:blue", angles="xy", scale_units="xy",
              scale=4.0, width=0.004, zorder=4)
    ax.plot(*xy[0], "o", color="tab:green", markersize=8, zorder=5, label="first frame (world origin)")
    for s in situations or []:
        ax.plot(*s.position, "*", color="tab:red", markersize=13, zorder=7)
        ax.arrow(*s.position, 0.45 * math.cos(s.yaw), 0.45 * math.sin(s.yaw), color="tab:red",
                 width=0.03, zorder=7, length_includes_head=True)
        ax.annotate(f"S{s.id}", s.position + 0.15, color="tab:red", fontsize=9, weight="bold", zorder=8)
    ax.plot([], [], "*", color="tab:red", label="situations (facing arrow)")
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.grid(True, linewidth=0.3)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    if title:
        ax.set_title(title, fontsize=10)


def contact_sheet(folder: SceneFolder, out: Path) -> Path:
    scene, situations = folder.scene, folder.situations
    n = len(scene.frames)
    picks = np.unique(np.linspace(0, n - 1, min(RGB_TILES, n)).round().astype(int))
    fig = plt.figure(figsize=(18, 10), dpi=100)
    grid = fig.add_gridspec(4, 8, width_ratios=[1, 1, 1, 1, 1.1, 1.1, 1.1, 1.1], height_ratios=[1, 1, 1, 0.9])
    for k, i in enumerate(picks):
        ax = fig.add_subplot(grid[k // 4, k % 4])
        ax.imshow(folder.rgb(int(i)))
        ax.set_title(f"frame {i}  t={scene.frames[i].stamp:.1f} s", fontsize=8)
        ax.axis("off")
    max_id = max((o.id for o in scene.objects), default=1)
    for k, i in enumerate(picks[[0, len(picks) // 2]]):
        depth_ax = fig.add_subplot(grid[2, 2 * k])
        shown = depth_ax.imshow(folder.depth(int(i)), cmap="magma")
        fig.colorbar(shown, ax=depth_ax, fraction=0.046, pad=0.02, label="depth (m)")
        depth_ax.set_title(f"depth, frame {i}", fontsize=8)
        depth_ax.axis("off")
        instance_ax = fig.add_subplot(grid[2, 2 * k + 1])
        instance_ax.imshow(folder.instance(int(i)), cmap=_INSTANCE_COLOURS, vmin=0, vmax=max(max_id, 19),
                           interpolation="nearest")
        instance_ax.set_title(f"instances, frame {i}", fontsize=8)
        instance_ax.axis("off")
    meta = folder.meta
    title = (f"{folder.path.name}: {len(scene.objects)} objects, {n} frames, "
             f"{meta.get('trajectory', '?')} path, camera {meta.get('camera_height', '?')} m, "
             f"pitch {meta.get('camera_pitch_deg', '?')} deg")
    draw_bev(fig.add_subplot(grid[0:3, 4:8]), scene, situations, title)
    text_ax = fig.add_subplot(grid[3, :])
    text_ax.axis("off")
    lines = []
    for s in situations[:8]:
        qa = "; ".join(f"{q.question} -> {q.answer}" for q in s.questions[:3])
        lines.append(textwrap.shorten(f"S{s.id}: {s.text}   Q: {qa}", 210))
    text_ax.text(0, 1, "\n".join(lines) or "no situations", va="top", ha="left", fontsize=8, family="monospace")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
