"""The map's scale from the floor (runtime/floor_scale.py): the camera mount's floor distances match
the rendered floor, a keyframe whose floor the model puts too far is pulled in (and one put too near
pushed out), bad mounts are refused, and a session moves its map points and its pointer's places
only when it knows the mount, the more the higher the camera is said to sit."""

from __future__ import annotations

import numpy as np
import pytest

from loc3r_core.data.targets import patch_targets, subdivide
from loc3r_core.runtime.floor_scale import (
    MIN_FLOOR_POINTS,
    CameraMount,
    FloorScaleConfig,
    floor_distances,
    keyframe_scale,
)
from loc3r_core.runtime.onnx_backend import OnnxBackend
from loc3r_core.runtime.scenario import scene_camera_mount, scene_frames
from loc3r_core.runtime.session import Session, SessionConfig
from loc3r_core.world.scene_io import SceneFolder
from loc3r_core.world.vocabulary import PATCH_CLASSES

GRID, SUBDIVISION = (4, 4), 4  # the shipped model's: 4 x 4 tokens, 4 x 4 map points each


@pytest.fixture(scope="module")
def folder(world_by_kind) -> SceneFolder:
    return SceneFolder(sorted(world_by_kind["loop"].glob("scene_*"))[0])


def test_the_mounts_floor_distances_match_the_rendered_floor(folder) -> None:
    scene = folder.scene
    mount = scene_camera_mount(folder)
    distances = floor_distances(scene.intrinsics, mount, GRID, SUBDIVISION)
    fine = (GRID[0] * SUBDIVISION, GRID[1] * SUBDIVISION)
    errors, misread = [], []
    # the same distances read as if the fine grid were row-major: not the map head's order
    row_major = distances.reshape(*GRID, SUBDIVISION, SUBDIVISION).transpose(0, 2, 1, 3).reshape(-1)
    for frame in scene.frames[:6]:
        targets = patch_targets(folder.depth(frame.index), folder.instance(frame.index), scene.intrinsics,
                                frame.T_world_camera, scene, fine)
        label = subdivide(targets["label"], GRID, SUBDIVISION).reshape(-1)
        valid = subdivide(targets["valid"], GRID, SUBDIVISION).reshape(-1)
        points = subdivide(targets["points"], GRID, SUBDIVISION).reshape(-1, 3)
        true = np.linalg.norm(points[:, :2] - frame.T_world_camera[:2, 3], axis=1)
        floor = valid & (label == PATCH_CLASSES.index("floor"))
        errors += list(np.abs(np.log(distances[floor] / true[floor]))[np.isfinite(distances[floor])])
        misread += list(np.abs(np.log(row_major[floor] / true[floor]))[np.isfinite(row_major[floor])])
    assert len(errors) >= 50
    # within a few per cent (the pitch shakes a degree a frame; a sub-patch's mean point is not its centre's)
    assert np.median(errors) < 0.05 and np.percentile(errors, 90) < 0.12
    assert np.median(misread) > 3 * np.median(errors)  # the map head's order matters
    level = floor_distances(scene.intrinsics, CameraMount(mount.height_m, 0.0), GRID, SUBDIVISION)
    top_row = level.reshape(*GRID, SUBDIVISION, SUBDIVISION)[0, :, 0, :]
    assert np.isnan(top_row).all()  # a level camera's upper rays meet no floor


def test_a_keyframe_whose_floor_lies_too_far_is_pulled_in_and_one_too_near_pushed_out() -> None:
    config = FloorScaleConfig()
    floor = np.random.default_rng(0).uniform(1.0, 5.0, 200)
    is_floor = np.ones(200, dtype=bool)
    far = keyframe_scale(floor * 1.2, floor, is_floor, config)
    assert far == pytest.approx(1.0 / (1.0 + config.shrink * (1.2 - config.floor_bias)))
    assert far < 1.0 < keyframe_scale(floor * 0.85, floor, is_floor, config)
    assert keyframe_scale(floor * 5.0, floor, is_floor, config) == pytest.approx(1.0 / (1.0 + config.max_correction))
    few = np.zeros(200, dtype=bool)
    few[:MIN_FLOOR_POINTS - 1] = True
    assert keyframe_scale(floor * 1.2, floor, few, config) == 1.0  # too little floor: left alone
    unseen = np.full(200, np.nan)
    assert keyframe_scale(floor * 1.2, unseen, is_floor, config) == 1.0  # no floor ray: left alone


@pytest.mark.parametrize("mount", [CameraMount(0.0), CameraMount(-1.0), CameraMount(float("nan")),
                                   CameraMount(1.0, 95.0)])
def test_a_bad_mount_is_refused(mount) -> None:
    with pytest.raises(ValueError, match="camera"):
        SessionConfig(camera_mount=mount).validate()


def test_the_session_scales_its_map_by_the_floor_only_when_it_knows_the_mount(folder) -> None:
    backend = OnnxBackend()
    mount = scene_camera_mount(folder)

    def streamed(with_mount: CameraMount | None) -> Session:
        session = Session(backend, SessionConfig(camera_mount=with_mount))
        for frame in scene_frames(folder):
            session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry)
        return session

    def scales(with_mount: CameraMount | None) -> np.ndarray:
        return np.array([keyframe.map_scale for keyframe in streamed(with_mount).memory])

    assert (scales(None) == 1.0).all()
    known = scales(mount)
    # the places the pointer averages move with the map: along their rays, by the keyframe's scale
    for plain, mounted in zip(streamed(None).memory, streamed(mount).memory, strict=True):
        camera = mounted.map_pose[:2]
        assert np.allclose(mounted.pointer_points - camera, (plain.pointer_points - camera) * mounted.map_scale,
                           atol=1e-5)
    assert ((known >= 0.75) & (known <= 1.34)).all() and (known != 1.0).any()
    higher = scales(CameraMount(1.5 * mount.height_m, mount.pitch_deg))
    assert np.median(higher) > np.median(known)  # a higher camera sees its floor further: the model's map grows
