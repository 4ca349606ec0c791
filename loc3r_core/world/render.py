"""Offscreen MuJoCo rendering of a scene: RGB, metric z-depth and per-pixel object ids.

The OpenGL backend is MUJOCO_GL: "osmesa" by default (software, any CPU machine, Debian's
libosmesa6); set MUJOCO_GL=egl to render on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import numpy as np

from loc3r_core.world.gl import backend
from loc3r_core.world.polygon import convex_vertices, from_box_frame
from loc3r_core.world.room import RoomStyle
from loc3r_core.world.scene import Scene
from loc3r_core.world.vocabulary import CATEGORY_BY_NAME

backend()  # MuJoCo reads MUJOCO_GL once, on import
import mujoco  # noqa: E402

WALL_THICKNESS = 0.1
NEAR_CLIP = 0.02  # metres; the camera never gets closer to a surface than its clearance
FAR_CLIP = 40.0
# OpenCV camera axes (x right, y down, z forward) -> MuJoCo's (x right, y up, looking along -z).
_CV_TO_MUJOCO = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class RenderedFrame:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 z-depth in metres; 0 where nothing was hit
    instance: np.ndarray  # (H, W) uint16 object id, 0 for room structure


class SceneRenderer:
    """Renders one scene from any camera pose. Use as a context manager (frees the GL context)."""

    def __init__(
        self, scene: Scene, style: RoomStyle, part_colours: dict[int, tuple[tuple[float, float, float], ...]]
    ) -> None:
        self.scene = scene
        intr = scene.intrinsics
        fovy = math.degrees(2 * math.atan(0.5 * intr.height / intr.fy))
        self.model = mujoco.MjModel.from_xml_string(_scene_mjcf(scene, style, part_colours, fovy))
        self.data = mujoco.MjData(self.model)
        self._geom_instance = np.zeros(self.model.ngeom + 1, dtype=np.uint16)  # last slot: no hit
        for obj in scene.objects:
            for k in range(len(CATEGORY_BY_NAME[obj.label].parts)):
                self._geom_instance[self.model.geom(f"obj{obj.id}_part{k}").id] = obj.id
        self._renderer = mujoco.Renderer(self.model, intr.height, intr.width)

    def render(self, T_world_camera: np.ndarray) -> RenderedFrame:
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, (T_world_camera[:3, :3] @ _CV_TO_MUJOCO).flatten())
        self.model.cam_pos[0] = T_world_camera[:3, 3]
        self.model.cam_quat[0] = quat
        mujoco.mj_forward(self.model, self.data)
        r = self._renderer
        r.update_scene(self.data, camera=0)  # one scene update; each pass sets its own render flags
        rgb = r.render().copy()
        r.enable_depth_rendering()
        depth = r.render().astype(np.float32)
        r.disable_depth_rendering()
        r.enable_segmentation_rendering()
        geom_ids = r.render()[..., 0]
        r.disable_segmentation_rendering()
        hit = geom_ids >= 0
        depth[~hit] = 0.0
        instance = self._geom_instance[np.where(hit, geom_ids, self.model.ngeom)]
        return RenderedFrame(rgb=rgb, depth=depth, instance=instance)

    def close(self) -> None:
        self._renderer.close()

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rgba(colour: tuple[float, float, float]) -> str:
    return " ".join(f"{c:.4f}" for c in colour) + " 1"


def _quat_z(yaw: float) -> str:
    return f"{math.cos(yaw / 2):.6f} 0 0 {math.sin(yaw / 2):.6f}"


def _geom(name: str, shape: str, pos: np.ndarray, size: np.ndarray, yaw: float, rgba: str, extra: str = "") -> str:
    p = " ".join(f"{v:.5f}" for v in pos)
    s = " ".join(f"{v:.5f}" for v in size)
    return (f'<geom name={quoteattr(name)} type="{shape}" pos="{p}" size="{s}" '
            f'quat="{_quat_z(yaw)}" rgba="{rgba}" {extra}/>')


def _room_geoms(scene: Scene, style: RoomStyle) -> list[str]:
    polygon, height = scene.room.polygon, scene.room.height
    low, high = polygon.min(axis=0) - 1.0, polygon.max(axis=0) + 1.0
    mid, half = (low + high) / 2, (high - low) / 2
    geoms = [
        _geom("floor", "box", np.array([*mid, -0.05]), np.array([*half, 0.05]), 0.0, "1 1 1 1", 'material="floor"'),
        _geom("ceiling", "box", np.array([*mid, height + 0.05]), np.array([*half, 0.05]), 0.0,
              _rgba(style.ceiling_colour)),
    ]
    convex = convex_vertices(polygon)
    for i, (a, b) in enumerate(zip(polygon, np.roll(polygon, -1, axis=0), strict=True)):
        length = float(np.linalg.norm(b - a))
        direction = (b - a) / length
        outward = np.array([direction[1], -direction[0]])  # right of a counter-clockwise edge
        # Close convex corners by extending past them; at reflex corners an extension would
        # poke into the room, so the walls stop flush there.
        ext_a = WALL_THICKNESS if convex[i] else 0.0
        ext_b = WALL_THICKNESS if convex[(i + 1) % len(polygon)] else 0.0
        centre = (a + b) / 2 + direction * (ext_b - ext_a) / 2 + outward * WALL_THICKNESS / 2
        size = np.array([(length + ext_a + ext_b) / 2, WALL_THICKNESS / 2, height / 2 + 0.1])
        yaw = math.atan2(direction[1], direction[0])
        geoms.append(_geom(f"wall{i}", "box", np.array([*centre, height / 2]), size, yaw, _rgba(style.wall_colours[i])))
    return geoms


def _object_geoms(scene: Scene, part_colours: dict[int, tuple[tuple[float, float, float], ...]]) -> list[str]:
    geoms = []
    for obj in scene.objects:
        category = CATEGORY_BY_NAME[obj.label]
        for k, part in enumerate(category.parts):
            lo, hi = np.array(part.lo), np.array(part.hi)
            local = (lo + hi) / 2 * obj.size
            extent = (hi - lo) * obj.size
            pos = np.array([*from_box_frame(local[:2], obj.center[:2], obj.yaw), local[2]])
            if part.shape == "cylinder":
                size = np.array([min(extent[0], extent[1]) / 2, extent[2] / 2])
            else:
                size = extent / 2
            geoms.append(_geom(f"obj{obj.id}_part{k}", part.shape, pos, size, obj.yaw, _rgba(part_colours[obj.id][k])))
    return geoms


def _lights(scene: Scene) -> list[str]:
    """A light near the ceiling over each vertex-to-centroid midpoint and the centroid."""
    polygon, height = scene.room.polygon, scene.room.height
    centroid = polygon.mean(axis=0)
    spots = [centroid] + [(v + centroid) / 2 for v in polygon[::2]]
    return [
        f'<light pos="{x:.3f} {y:.3f} {height - 0.1:.3f}" dir="0 0 -1" directional="false" '
        f'diffuse="{0.55 / len(spots) ** 0.5:.3f} {0.55 / len(spots) ** 0.5:.3f} {0.5 / len(spots) ** 0.5:.3f}" '
        f'specular="0 0 0" castshadow="false" attenuation="1 0.05 0"/>'
        for x, y in spots
    ]


def _scene_mjcf(scene: Scene, style: RoomStyle, part_colours: dict, fovy: float) -> str:
    intr = scene.intrinsics
    tile_repeat = 1.0 / (2.0 * style.floor_tile)  # the checker texture holds 2 x 2 tiles
    body = "\n    ".join(_room_geoms(scene, style) + _object_geoms(scene, part_colours) + _lights(scene))
    return f"""<mujoco model="loc3r_scene">
  <statistic extent="1" center="0 0 0"/>
  <visual>
    <global offwidth="{intr.width}" offheight="{intr.height}"/>
    <map znear="{NEAR_CLIP}" zfar="{FAR_CLIP}"/>
    <quality shadowsize="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.25 0.25 0.25" specular="0 0 0"/>
  </visual>
  <default><geom contype="0" conaffinity="0"/></default>
  <asset>
    <texture name="floor" type="2d" builtin="checker" width="64" height="64"
             rgb1="{_rgba(style.floor_colours[0])[:-2]}" rgb2="{_rgba(style.floor_colours[1])[:-2]}"/>
    <material name="floor" texture="floor" texuniform="true" texrepeat="{tile_repeat:.4f} {tile_repeat:.4f}"
              specular="0.1"/>
  </asset>
  <worldbody>
    <camera name="camera" pos="0 0 1" fovy="{fovy:.6f}"/>
    {body}
  </worldbody>
</mujoco>"""
