"""One scene from one seed: room, furniture, camera path, and the anchored world frame.

The layout is made in a room-aligned "design" frame; the scene is then re-expressed in the
frame loc3r uses everywhere: anchored to the first camera (origin on the floor below it,
x along its viewing direction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loc3r_core.errors import UsageError
from loc3r_core.geometry import Intrinsics, anchor_frame
from loc3r_core.world.freespace import FreeSpace
from loc3r_core.world.knobs import WorldKnobs
from loc3r_core.world.placement import furnish
from loc3r_core.world.polygon import signed_area
from loc3r_core.world.room import RoomStyle, make_room, make_room_style
from loc3r_core.world.scene import Frame, Scene
from loc3r_core.world.trajectory import TRAJECTORY_KINDS, camera_poses, plan_path

CAMERA_CLEARANCE = 0.35  # m from walls and furniture for the camera's path
AGENT_CLEARANCE = 0.2  # m for where a situation may place a standing person
MIN_FREE_SHARE = 0.2  # of the room's floor that must stay drivable
LAYOUT_ATTEMPTS = 40


@dataclass(frozen=True)
class BuiltScene:
    scene: Scene  # anchored frame: what goes to disk and gets rendered
    design: Scene  # room-aligned design frame
    T_anchor_design: np.ndarray  # maps design coordinates to anchored ones
    style: RoomStyle
    part_colours: dict[int, tuple[tuple[float, float, float], ...]]  # per object, per part
    agent_space: FreeSpace  # in the design frame
    meta: dict  # what was drawn: trajectory kind, camera height and pitch


def build_scene(seed_sequence: np.random.SeedSequence, knobs: WorldKnobs) -> tuple[BuiltScene, np.random.Generator]:
    """The scene, and a generator for what comes after (situations) from the same seed."""
    layout_seed, path_seed, later_seed = seed_sequence.spawn(3)
    rng = np.random.default_rng(layout_seed)
    for _ in range(LAYOUT_ATTEMPTS):
        room = make_room(rng, knobs.room_size)
        furnishing = furnish(rng, room, int(rng.integers(knobs.objects[0], knobs.objects[1] + 1)))
        if furnishing is None:
            continue
        camera_space = FreeSpace(room, furnishing.objects, CAMERA_CLEARANCE)
        if camera_space.area >= MIN_FREE_SHARE * signed_area(room.polygon):
            break
    else:
        raise UsageError(
            f"could not fit {knobs.objects[0]}-{knobs.objects[1]} objects into rooms of "
            f"{knobs.room_size[0]}-{knobs.room_size[1]} m and keep space to drive; "
            "lower --objects or raise --room-size"
        )
    style = make_room_style(rng, room)

    path_rng = np.random.default_rng(path_seed)
    kind = knobs.trajectory if knobs.trajectory != "mixed" else str(path_rng.choice(TRAJECTORY_KINDS))
    path = plan_path(path_rng, kind, camera_space, knobs.frames)
    height = float(path_rng.uniform(*knobs.camera_height))
    pitch_deg = float(path_rng.uniform(*knobs.camera_pitch))
    poses = camera_poses(path_rng, path, height, math.radians(pitch_deg))

    intrinsics = Intrinsics.from_vertical_fov(knobs.image_size, knobs.image_size, knobs.fov)
    frames = tuple(Frame(i, float(t), pose) for i, (t, pose) in enumerate(zip(path.stamps, poses, strict=True)))
    design = Scene(room, furnishing.objects, intrinsics, frames)
    T_anchor_design = anchor_frame(poses[0])
    built = BuiltScene(
        scene=design.transformed(T_anchor_design),
        design=design,
        T_anchor_design=T_anchor_design,
        style=style,
        part_colours=furnishing.part_colours,
        agent_space=FreeSpace(room, furnishing.objects, AGENT_CLEARANCE),
        meta={"trajectory": path.kind, "camera_height": round(height, 4), "camera_pitch_deg": round(pitch_deg, 3)},
    )
    return built, np.random.default_rng(later_seed)

