"""Maps to score: a scene streamed through the node's `Session`, and the same grid fed the truth.

The oracle ("oracle fusion") feeds a fresh `LayoutGrid` through `LayoutGrid.add`, the entry
point the session uses, at the keyframes the session chose, with the true per-patch points
and labels (one per point the model gives the map: per patch, or per sub-patch with a map
head; `majority` targets, a small fixed sigma) and the true camera positions. Its score is the
fusion's own ceiling at the model's map resolution, so
the gap between the two says how much of the map's error is the model's and how much the
fusion's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from loc3r_core.data.targets import patch_targets
from loc3r_core.errors import DataError, UsageError
from loc3r_core.evaluation.map_quality import map_frame, mean_scores, score_layout
from loc3r_core.geometry import invert_pose, transform_points
from loc3r_core.runtime.backend import Backend
from loc3r_core.runtime.floor_scale import CAMERA_MOUNTS
from loc3r_core.runtime.mapping import GridConfig, LayoutGrid
from loc3r_core.runtime.scenario import scene_camera_mount, scene_frames
from loc3r_core.runtime.session import Session, SessionConfig
from loc3r_core.runtime.spec import ModelSpec, patch_grid
from loc3r_core.runtime.visual_odometry import open_visual_odometry
from loc3r_core.types import Layout
from loc3r_core.world.scene import Scene, seen_object_ids
from loc3r_core.world.scene_io import SceneFolder, scene_folders

ORACLE_SIGMA_M = 0.05  # true points are exact; well under the grid's max_point_sigma
# the pose prior a walk is streamed with: the robot's perfect odometry, the camera's own (the
# visual odometry network, as the node runs without odometry), or none
STREAM_PRIORS = ("odometry", "visual", "none")


@dataclass(frozen=True)
class Observation:
    """One keyframe's input to LayoutGrid.add, in the map frame."""

    points: np.ndarray  # (P, 2)
    sigma: np.ndarray  # (P, 2)
    probs: np.ndarray  # (P, C) label probabilities
    camera_xy: np.ndarray  # (2,)


@dataclass(frozen=True)
class SceneMaps:
    name: str
    scene: Scene  # world frame
    T_world_map: np.ndarray
    model: Layout
    oracle: Layout
    keyframes: tuple[int, ...]  # frame indices the session made keyframes
    seen_ids: frozenset[int]
    seconds: float  # streaming the model (the oracle and scoring not included)


def map_grid(spec: ModelSpec) -> tuple[int, int]:
    """Rows x cols of the points a keyframe gives the map: the patch grid, subdivided by a map head."""
    rows, cols = patch_grid(spec)
    return rows * spec.map_subdivision, cols * spec.map_subdivision


def streaming_session(backend: Backend, config: SessionConfig | None, prior: str = "odometry",
                      motion: Path | None = None) -> Session:
    """The node's Session for a STREAM_PRIORS prior: with "visual", the visual odometry network in
    `motion` (the shipped one when None) reads the frames' steps."""
    if prior not in STREAM_PRIORS:
        raise UsageError(f"prior must be one of {', '.join(STREAM_PRIORS)}, not {prior!r}")
    return Session(backend, config, open_visual_odometry(motion) if prior == "visual" else None)


def stream_scene(session: Session, folder: SceneFolder, odometry: bool = True, mount: str = "none") -> tuple[int, ...]:
    """Push every frame (with perfect odometry, as a robot gives it, if asked; with the camera's mount
    from the scene if `mount` is "scene"); the keyframes' frame indices."""
    if mount not in CAMERA_MOUNTS:
        raise UsageError(f"camera mount must be one of {', '.join(CAMERA_MOUNTS)}, not {mount!r}")
    session.camera_mount = scene_camera_mount(folder) if mount == "scene" else None
    session.reset()
    keyframes = []
    for frame, given in zip(folder.scene.frames, scene_frames(folder, odometry=odometry), strict=True):
        if session.push(given.rgb, given.stamp_ns, given.intrinsics, given.odometry).keyframe:
            keyframes.append(frame.index)
    return tuple(keyframes)


def seen_ids(folder: SceneFolder) -> frozenset[int]:
    """Objects the camera saw over the whole walk (the generator's rule, from instance pixels)."""
    pixels: dict[int, int] = {}
    frame_pixels = 0
    for frame in folder.scene.frames:
        instance = folder.instance(frame.index)
        frame_pixels = instance.size
        for i, n in enumerate(np.bincount(instance.ravel())):
            pixels[i] = pixels.get(i, 0) + int(n)
    return frozenset(seen_object_ids(pixels, frame_pixels))


def true_observations(folder: SceneFolder, keyframes: tuple[int, ...], label_names: tuple[str, ...],
                      grid: tuple[int, int], T_world_map: np.ndarray, sigma: float = ORACLE_SIGMA_M,
                      mode: str = "majority") -> Iterator[Observation]:
    """What a perfect model would have given the grid at each keyframe: true patch points and labels.

    `mode` is data.targets' patch target: majority (what evaluation scores against) by default;
    objects_first is what the shipped model trains on, and keeps small objects.
    """
    scene = folder.scene
    T_map_world = invert_pose(T_world_map)
    frames = {frame.index: frame for frame in scene.frames}
    for index in keyframes:
        frame = frames[index]
        targets = patch_targets(folder.depth(frame.index), folder.instance(frame.index), scene.intrinsics,
                                frame.T_world_camera, scene, grid, mode)
        valid = targets["valid"].reshape(-1) & (targets["label"].reshape(-1) < len(label_names))
        points = transform_points(T_map_world, targets["points"].reshape(-1, 3)[valid])[:, :2]
        probs = np.eye(len(label_names), dtype=np.float32)[targets["label"].reshape(-1)[valid]]
        camera = transform_points(T_map_world, frame.T_world_camera[:3, 3])[:2]
        yield Observation(points, np.full_like(points, sigma), probs, camera)


def fuse(observations: Iterator[Observation], config: GridConfig, label_names: tuple[str, ...]) -> Layout:
    """A fresh grid fed through LayoutGrid.add, exactly as the session feeds it."""
    grid = LayoutGrid(config, label_names)
    for seen in observations:
        grid.add(seen.points, seen.sigma, seen.probs, seen.camera_xy)
    return grid.layout()


def map_scene(session: Session, folder: SceneFolder, oracle_targets: str = "majority",
              odometry: bool = True, mount: str = "none") -> SceneMaps:
    """The model's final map of the walk and the oracle-fed grid at the same keyframes."""
    started = time.perf_counter()
    keyframes = stream_scene(session, folder, odometry, mount)
    seconds = time.perf_counter() - started
    scene = folder.scene
    T_world_map = map_frame(scene)
    names = session.spec.label_names
    oracle = fuse(true_observations(folder, keyframes, names, map_grid(session.spec), T_world_map,
                                    mode=oracle_targets), session.config.grid, names)
    return SceneMaps(folder.path.name, scene, T_world_map, session.layout(), oracle, keyframes, seen_ids(folder),
                     seconds)


def split_scenes(root: Path, max_scenes: int | None = None) -> list[Path]:
    """The split's complete scene folders, `max_scenes` of them evenly spread."""
    if max_scenes is not None and max_scenes < 1:
        raise UsageError("--max-scenes must be at least 1")
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (make one with `loc3r data generate --out {root}`)")
    folders = scene_folders(root)
    if max_scenes is None or max_scenes >= len(folders):
        return folders
    return [folders[i] for i in np.unique(np.linspace(0, len(folders) - 1, max_scenes).round().astype(int))]


def evaluate_maps(backend: Backend, root: Path, max_scenes: int | None = None, figures: Path | None = None,
                  progress: bool = True, config: SessionConfig | None = None,
                  oracle_targets: str = "majority", prior: str = "odometry", motion: Path | None = None,
                  mount: str = "none") -> dict:
    """Score the model's and the oracle's map of every scene: {"model", "oracle_fusion", "num_scenes", "grid",
    "max_keyframes", "prior", "camera_mount"}."""
    folders = split_scenes(root, max_scenes)
    session = streaming_session(backend, config, prior, motion)
    blocks: dict[str, list[dict]] = {"model": [], "oracle_fusion": []}
    for path in tqdm(folders, unit="scene", desc="eval-map", disable=not progress):
        maps = map_scene(session, SceneFolder(path), oracle_targets, prior == "odometry", mount)
        common = {"scene": maps.name, "keyframes": len(maps.keyframes)}
        for key, layout in (("model", maps.model), ("oracle_fusion", maps.oracle)):
            blocks[key].append({**common, **score_layout(layout, maps.scene, maps.T_world_map, set(maps.seen_ids))})
        blocks["model"][-1]["seconds"] = round(maps.seconds, 3)
        if figures is not None:
            from loc3r_core.evaluation.map_figure import draw_maps  # matplotlib only when asked

            draw_maps(figures / f"{maps.name}.png", maps, blocks["model"][-1], blocks["oracle_fusion"][-1])
    report = {key: {**mean_scores(scores), "per_scene": scores} for key, scores in blocks.items()}
    report["model"]["seconds_per_scene"] = float(np.mean([s["seconds"] for s in blocks["model"]]))
    report["oracle_fusion"]["targets"] = oracle_targets
    report["num_scenes"] = len(folders)
    report["grid"] = asdict(session.config.grid)  # the fusion these maps were scored with
    report["max_keyframes"] = session.config.max_keyframes  # and the memory they were streamed through
    report["prior"] = prior
    report["camera_mount"] = mount
    return report
