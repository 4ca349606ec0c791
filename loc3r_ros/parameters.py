"""The node's parameters: one table gives each its default, description and check.

The node declares exactly these (with descriptors, so `ros2 param describe` explains them),
config/loc3r.yaml sets them, and a test checks the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from loc3r_core.runtime.floor_scale import CameraMount
from loc3r_core.runtime.keyframes import EVICTIONS, MEMORY_KEYFRAMES, KeyframePolicy
from loc3r_core.runtime.mapping import GridConfig
from loc3r_core.runtime.session import MAP_ANSWER_TYPES, MAP_TIEBREAK_TYPES, SessionConfig
from loc3r_core.static_transforms import DEFAULT_FLOOR_FRAME
from loc3r_core.world.situations import QUESTION_TYPES


@dataclass(frozen=True)
class Parameter:
    name: str
    default: object
    description: str
    valid: Callable[[object], bool] = lambda value: True
    rule: str = ""  # what valid() demands, for the error message


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def one_of(*choices: str) -> Callable[[object], bool]:
    return lambda value: value in choices


def type_list(value: object) -> tuple[str, ...]:
    """"count,what_direction" -> ("count", "what_direction"); "" -> ()."""
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def question_types(value: object) -> bool:
    return isinstance(value, str) and set(type_list(value)) <= set(QUESTION_TYPES)


PARAMETERS = (
    Parameter("model.backend", "onnx", "onnx (ONNX Runtime, no torch) or torch (PyTorch eager)",
              one_of("onnx", "torch"), "onnx or torch"),
    Parameter("model.checkpoint", "", "model folder for the torch backend, or to check an ONNX export against "
              "(empty: the shipped model)"),
    Parameter("model.onnx_dir", "", "`loc3r export` folder for the onnx backend (empty: the shipped model's)"),
    Parameter("model.provider", "cpu", "ONNX Runtime execution provider: cpu, cuda or tensorrt",
              one_of("cpu", "cuda", "tensorrt"), "cpu, cuda or tensorrt"),
    Parameter("frames.map", "map", "the map frame (REP-105)", bool, "a frame name"),
    Parameter("frames.odom", "odom", "the odometry frame (REP-105)", bool, "a frame name"),
    Parameter("frames.base", "base_link", "the robot's base frame (REP-105)", bool, "a frame name"),
    Parameter("publish_tf", True, "publish map->odom (with odometry) or map->base (without) on /tf"),
    Parameter("tf_rate", 20.0, "Hz at which the latest map transform is re-sent (future-dated by tf_tolerance)",
              positive, "> 0"),
    Parameter("tf_tolerance", 0.1, "seconds map transforms are dated ahead, so lookups at 'now' never "
              "extrapolate (as AMCL's transform_tolerance)", lambda v: isinstance(v, float) and 0 <= v <= 2,
              "in [0, 2] s"),
    Parameter("odometry.wait", 0.1, "seconds an image waits for odometry to reach its stamp while odometry is "
              "published (as tf2's MessageFilter); then the nearest pose within 0.1 s, or none",
              lambda v: isinstance(v, float) and 0 <= v <= 2, "in [0, 2] s"),
    Parameter("odometry.visual", True, "without odometry at an image's stamp, read the camera's motion from the "
              "images (the visual odometry network) as the model's prior; false: no prior",
              lambda v: isinstance(v, bool), "true or false"),
    Parameter("odometry.motion_dir", "", "visual odometry network folder (`loc3r pretrain-motion`; empty: the "
              "shipped one)"),
    Parameter("odometry.room_axes", True, "visual odometry snaps its heading to the walls' directions, read from "
              "each image (walls that meet at right angles); false for other buildings",
              lambda v: isinstance(v, bool), "true or false"),
    Parameter("memory.max_keyframes", MEMORY_KEYFRAMES, "keyframes in memory",
              lambda v: isinstance(v, int) and 2 <= v <= 256, "an integer in [2, 256]"),
    Parameter("memory.eviction", SessionConfig.eviction, "which quarter of a full memory goes: time (keep a spread "
              "over the session), pose (keep distinct views) or oldest", one_of(*EVICTIONS), "time, pose or oldest"),
    Parameter("keyframe.min_translation", 0.4, "metres moved before a frame becomes a keyframe", positive, "> 0"),
    Parameter("keyframe.min_rotation_deg", 20.0, "degrees turned before a frame becomes a keyframe", positive, "> 0"),
    Parameter("keyframe.max_interval", 3.0, "seconds after which a frame becomes a keyframe anyway", positive, "> 0"),
    Parameter("layout.rate", 1.0, "Hz at which layout, markers and objects are published when they changed",
              positive, "> 0"),
    Parameter("grid.resolution", 0.1, "metres per layout cell", lambda v: positive(v) and v <= 1.0, "in (0, 1] m"),
    Parameter("grid.size", 16.0, "metres per side of the square layout grid, centred on the map origin",
              lambda v: positive(v) and v <= 200.0, "in (0, 200] m"),
    Parameter("grid.rays_pause_at_objects", GridConfig.rays_pause_at_objects, "a conservative map: camera rays that "
              "cross an object the keyframe saw free nothing until grid.object_shadow_m past it (free cells under "
              "tables and beds fewer, free coverage lower)", lambda v: isinstance(v, bool), "true or false"),
    Parameter("grid.object_shadow_m", GridConfig.object_shadow_m, "metres past an object before a paused ray frees "
              "cells again (only with grid.rays_pause_at_objects)", lambda v: isinstance(v, float) and 0 <= v <= 100,
              "in [0, 100] m"),
    Parameter("grid.wall_right_angles_deg", GridConfig.wall_right_angles_deg, "fitted walls within this many "
              "degrees of the walls' dominant axes are turned onto them (walls that meet at right angles; 0: off)",
              lambda v: isinstance(v, float) and 0 <= v <= 45, "in [0, 45] degrees"),
    Parameter("qos.image", "sensor_data", "QoS of the image subscription: sensor_data (best effort, depth 5) or "
              "reliable (depth 5)", one_of("sensor_data", "reliable"), "sensor_data or reliable"),
    Parameter("camera.fx", 0.0, "intrinsics to use until camera_info arrives (0: none; the model itself needs none)",
              lambda v: isinstance(v, float) and v >= 0, ">= 0"),
    Parameter("camera.fy", 0.0, "see camera.fx", lambda v: isinstance(v, float) and v >= 0, ">= 0"),
    Parameter("camera.cx", 0.0, "see camera.fx", lambda v: isinstance(v, float) and v >= 0, ">= 0"),
    Parameter("camera.cy", 0.0, "see camera.fx", lambda v: isinstance(v, float) and v >= 0, ">= 0"),
    Parameter("camera.height_m", 0.0, "the camera's height above the floor, from the robot's mount (0: unknown); "
              "with it each keyframe's floor sets the scale of its map points", lambda v: isinstance(v, float)
              and 0 <= v <= 10, "in [0, 10] m"),
    Parameter("camera.pitch_deg", 0.0, "the camera's pitch on the robot, negative looking down (only with "
              "camera.height_m)", lambda v: isinstance(v, float) and -90 < v < 90, "in (-90, 90) degrees"),
    Parameter("camera.mount_from_tf", True, "where camera.height_m is 0, take the camera's mount from /tf_static: "
              "the transform from camera.floor_frame to the images' frame_id (their optical frame)",
              lambda v: isinstance(v, bool), "true or false"),
    Parameter("camera.floor_frame", DEFAULT_FLOOR_FRAME, "the robot's frame on the floor, z up (REP-120's "
              "base_footprint), that the camera's height is measured from", bool, "a frame name"),
    Parameter("question.max_chars", 1000, "longest question or situation accepted",
              lambda v: isinstance(v, int) and 1 <= v <= 100_000, "an integer in [1, 100000]"),
    Parameter("localize.max_sigma", 2.5, "metres: a situation placed less surely than this is refused by query "
              "and localize (success=false)", positive, "> 0"),
    Parameter("question.map_types", ",".join(MAP_ANSWER_TYPES), "question types (comma-separated; empty: none) "
              "answered by rules from the map's objects where the map holds a candidate, when asked in the "
              "phrasings the model was trained on; every other answer is the model's",
              question_types, f"comma-separated among {', '.join(QUESTION_TYPES)}"),
    Parameter("question.map_tiebreak_types", ",".join(MAP_TIEBREAK_TYPES), "question types (comma-separated; empty: "
              "none) where the map's answer replaces the model's when the model finds it at least half as likely "
              "as its own", question_types, f"comma-separated among {', '.join(QUESTION_TYPES)}"),
    Parameter("diagnostics.period", 1.0, "seconds between /diagnostics reports", positive, "> 0"),
)
BY_NAME = {p.name: p for p in PARAMETERS}


def type_words(default: object) -> str:
    """What a parameter file must write for a parameter of this default's type."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, float):
        return f"a number with a decimal point (like {default!r}; write 1.0, not 1)"
    if isinstance(default, int):
        return "a whole number"
    return "a string"


def check(values: dict[str, object]) -> list[str]:
    """The problems with a full set of values (empty when all are valid)."""
    problems = []
    for name, value in values.items():
        parameter = BY_NAME[name]
        if not parameter.valid(value):
            problems.append(f"{name} must be {parameter.rule}, not {value!r}")
    return problems


def session_config(values: dict[str, object]) -> SessionConfig:
    return SessionConfig(
        max_keyframes=values["memory.max_keyframes"],
        eviction=values["memory.eviction"],
        keyframes=KeyframePolicy(values["keyframe.min_translation"], values["keyframe.min_rotation_deg"],
                                 values["keyframe.max_interval"]),
        grid=GridConfig(resolution=values["grid.resolution"], size=values["grid.size"],
                        rays_pause_at_objects=values["grid.rays_pause_at_objects"],
                        object_shadow_m=values["grid.object_shadow_m"],
                        wall_right_angles_deg=values["grid.wall_right_angles_deg"]),
        max_text_chars=values["question.max_chars"],
        placeable_sigma=values["localize.max_sigma"],
        map_answer_types=type_list(values["question.map_types"]),
        map_tiebreak_types=type_list(values["question.map_tiebreak_types"]),
        camera_mount=CameraMount(values["camera.height_m"], values["camera.pitch_deg"])
        if values["camera.height_m"] > 0 else None,
    )
