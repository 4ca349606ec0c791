"""The visual odometry network: chaining steps, its folder, training on walks, and the eval's visual prior."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from conftest import run_cli
from loc3r_core.errors import DataError
from loc3r_core.export.motion_export import motion_parity
from loc3r_core.geometry import relative_planar, wrap_angle
from loc3r_core.model.folder import CheckpointError
from loc3r_core.model.motion import MotionConfig, PlanarMotionNet, chain, load_motion, save_motion
from loc3r_core.runtime.visual_odometry import StepReader, open_visual_odometry
from loc3r_core.training.motion_pretrain import Walks, load_walks, pair_batch, planar_camera_poses, walk_errors
from loc3r_core.world.scene_io import SceneFolder


def test_chained_steps_go_round_a_square_back_to_the_start():
    poses = chain(np.array([[1.0, 0.0, math.pi / 2]] * 4))
    np.testing.assert_allclose(poses[3], [0.0, 1.0, -math.pi / 2], atol=1e-12)  # three sides, facing back down
    np.testing.assert_allclose(poses[4], [0.0, 0.0, 0.0], atol=1e-12)


def test_snapping_to_the_room_headings_undoes_a_drift_under_45_degrees_and_not_more(scene_dirs):
    walks = load_walks(scene_dirs[0].parent, 32, max_scenes=1, progress=False)
    poses, true_steps = walks.poses[0], walks.steps()[0]
    truth = np.array([relative_planar(poses[0], pose) for pose in poses])
    headings = walks.room_headings()[0]
    assert np.all(np.abs(headings) <= math.pi / 4)
    drifting = true_steps + np.array([0.0, 0.0, math.radians(4)])  # every turn read 4 degrees too far
    assert np.degrees(np.abs(wrap_angle(chain(drifting)[-1, 2] - truth[-1, 2]))) > 20
    np.testing.assert_allclose(chain(drifting, headings), truth, atol=1e-9)  # the drift never passes 4 degrees
    wrong_turn = true_steps.copy()
    wrong_turn[0, 2] += math.radians(60)  # over 45 degrees: snapped to the wrong wall, 90 degrees off
    off = wrap_angle(chain(wrong_turn, headings)[1:, 2] - truth[1:, 2])
    np.testing.assert_allclose(np.abs(off), math.pi / 2, atol=1e-9)


def test_a_walks_true_steps_chain_back_to_its_poses(scene_dirs):
    poses = planar_camera_poses(SceneFolder(scene_dirs[0]))
    steps = Walks([np.zeros((len(poses), 3, 2, 2), np.uint8)], [poses], [0.0]).steps()[0]
    expected = np.array([relative_planar(poses[0], pose) for pose in poses])
    np.testing.assert_allclose(chain(steps), expected, atol=1e-9)


def test_pairs_are_drawn_gaps_apart_within_their_walk(scene_dirs):
    walks = load_walks(scene_dirs[0].parent, 32, max_scenes=1, progress=False)
    frames = [torch.from_numpy(f) for f in walks.frames]
    last = len(walks.poses[0]) - 1
    pick = np.array([[0, 3], [0, 3], [0, 3], [0, last - 1]])
    previous, current, target, room = pair_batch(walks, frames, pick, np.array([0, 1, 2, 5]))
    assert torch.equal(previous[0], current[0]) and torch.equal(target[0], torch.zeros(3))  # an unmoved camera
    poses, headings = walks.poses[0], walks.room_headings()[0]
    for row, later in zip(range(4), (3, 4, 5, last), strict=True):  # the last gap stops at the walk's end
        assert torch.equal(current[row], frames[0][later].float() / 255.0)
        np.testing.assert_allclose(target[row], relative_planar(poses[pick[row, 1]], poses[later]), atol=1e-6)
        # the later frame's heading against the room, as the network reads it: 90 degrees is a full turn
        np.testing.assert_allclose(room[row], [math.cos(4 * headings[later]), math.sin(4 * headings[later])],
                                   atol=1e-6)


def test_a_saved_network_loads_to_the_same_outputs_and_a_broken_folder_says_what_is_wrong(tmp_path):
    model = PlanarMotionNet(MotionConfig(image_size=32, widths=(8, 8, 8, 8, 8), hidden=16)).eval()
    save_motion(model, tmp_path / "motion")
    loaded = load_motion(tmp_path / "motion")
    frames = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        a = model(torch.from_numpy(frames[:2]), torch.from_numpy(frames[1:]))
        b = loaded(torch.from_numpy(frames[:2]), torch.from_numpy(frames[1:]))
    assert torch.equal(a, b) and loaded.config == model.config
    with pytest.raises(CheckpointError, match=r"not a motion network folder: motion_config\.json is missing"):
        load_motion(tmp_path)
    (tmp_path / "motion" / "motion.safetensors").write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="cannot be loaded as a motion network"):
        load_motion(tmp_path / "motion")


@pytest.fixture(scope="module")
def trained_motion(world_by_kind, tmp_path_factory):
    """A network trained for a few seconds on the small walk world (its own validation split)."""
    run = tmp_path_factory.mktemp("motion") / "run"
    config = tmp_path_factory.mktemp("motion_config") / "motion.yaml"
    config.write_text(yaml.safe_dump({
        "train_data": str(world_by_kind["walk"]), "val_data": str(world_by_kind["walk"]), "output_dir": str(run),
        "image_size": 32, "batch_size": 8, "max_steps": 200, "warmup_steps": 10, "learning_rate": 0.003,
        "log_every": 20, "gap_weights": [0.0, 1.0]}))  # consecutive pairs: learnt fastest (pair_batch has gaps)
    result = run_cli("pretrain-motion", "--config", config, "--no-progress", check=True)
    return run, json.loads(result.stdout.splitlines()[0]), config


def test_pretrain_motion_learns_the_steps_of_its_walks(trained_motion, world_by_kind):
    run, final, config = trained_motion
    losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if r["split"] == "train"]
    assert losses[-1] < 0.5 * losses[0]
    # on the walks it was trained on, each step is read far better than by standing still
    walks = load_walks(world_by_kind["walk"], 32, progress=False)
    errors = walk_errors(load_motion(run / "motion"), walks)
    assert errors == {k: final[k] for k in errors}
    step_length = np.median(np.concatenate([np.linalg.norm(s[:, :2], axis=1) for s in walks.steps()]))
    assert errors["step_translation_m"] < 0.5 * step_length
    # a few seconds barely train its room heading, and the snapped chain follows it: the free chain
    # is what its steps give
    assert errors["free_walk_position_m"] < errors["standing_still_walk_position_m"]
    assert 0 <= errors["room_heading_deg"] <= 45 and "walk_position_m" in errors
    assert (run / "curves.png").stat().st_size > 0
    again = run_cli("pretrain-motion", "--config", config)
    assert again.returncode == 2 and "already holds a run" in again.stderr


def test_eval_with_the_visual_prior_gives_the_model_the_networks_chained_poses(trained_motion, world_by_kind):
    run = trained_motion[0]
    result = run_cli("eval", "--data", world_by_kind["walk"], "--json", "--max-samples", "6", "--prior", "visual",
                     "--motion", run / "motion", "--no-progress", check=True)
    metrics = json.loads(result.stdout)
    # no robot odometry: the map answers only what surrounds the asker, and breaks distance's ties
    assert metrics["map_answer_types"] == ["what_direction"] and metrics["map_tiebreak_types"] == ["distance"]
    assert math.isfinite(metrics["ego_position_median_error_m"])
    misused = run_cli("eval", "--data", world_by_kind["walk"], "--motion", run / "motion")
    assert misused.returncode == 2 and "--motion is read only with --prior visual" in misused.stderr
    missing = run_cli("eval", "--data", world_by_kind["walk"], "--prior", "visual", "--motion", run / "absent")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "not a motion network folder" in missing.stderr


def test_the_visual_prior_is_each_clips_chain_relative_to_its_first_frame(trained_motion, world_by_kind):
    from loc3r_core.evaluation.evaluate import evaluation_dataset
    from loc3r_core.evaluation.visual_prior import VisualPrior
    from loc3r_core.model.checkpoint import load_model

    run = trained_motion[0]
    model, _ = load_model()
    dataset = evaluation_dataset(world_by_kind["walk"], model, 4)
    prior = VisualPrior(load_motion(run / "motion"), dataset)
    item = dataset[len(dataset) - 1]
    rows = prior.planar_prior([item])[0].numpy()
    walk = prior.walk(int(item["scene_index"]))
    picked = walk[item["frame_indices"].numpy()]
    np.testing.assert_allclose(rows[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(rows, [relative_planar(picked[0], pose) for pose in picked], atol=1e-12)
    assert len(walk) == len(dataset.scenes[int(item["scene_index"])].scene.frames)


def test_the_shipped_network_loads():
    model = load_motion()
    assert model.config.image_size == 64 and not model.training
    frames = torch.zeros(1, 3, 64, 64)
    assert model.config.room_heading and model(frames, frames).shape == (1, 5)


def test_training_exports_an_onnx_twin_and_a_stale_export_is_refused(trained_motion, tmp_path):
    import shutil

    run = trained_motion[0]
    assert motion_parity(run / "motion") < 1e-4
    copy = tmp_path / "motion"
    shutil.copytree(run / "motion", copy)
    save_motion(PlanarMotionNet(load_motion(copy).config), copy)  # retrained weights, the old export beside them
    with pytest.raises(DataError, match=r"was not exported from .* re-run `loc3r export-motion"):
        StepReader(copy)
    done = run_cli("export-motion", "--motion", copy, check=True)
    assert "parity max |onnx - torch|" in done.stdout and motion_parity(copy) < 1e-4
    (copy / "motion_config.json").write_text('{"image_size": 0}')
    with pytest.raises(DataError, match="gives no usable image_size"):
        StepReader(copy)
    (copy / "motion_onnx.json").unlink()
    with pytest.raises(DataError, match="holds no exported motion network"):
        open_visual_odometry(copy)
    with pytest.raises(DataError, match="not a motion network folder"):
        open_visual_odometry(tmp_path / "absent")


def test_the_shipped_visual_odometry_holds_still_and_follows_a_walk(tmp_path):
    """An unmoved camera stays put (the network reads pairs of one frame as no motion, and the
    reference frame only moves on with the camera), and a walk's poses beat standing still (a
    new scene with the splits' spacing: the small test worlds' 12 frames step 5x further)."""
    from loc3r_core.runtime.scenario import fresh_scene

    odometry = open_visual_odometry()
    folder = fresh_scene(tmp_path)
    intrinsics = folder.scene.intrinsics
    still = [odometry.update(folder.rgb(0), intrinsics) for _ in range(40)]
    assert np.abs(still[-1][:2]).max() < 0.05 and abs(still[-1][2]) < math.radians(2)
    odometry.reset()
    poses = planar_camera_poses(folder)
    truth = np.array([relative_planar(poses[0], pose) for pose in poses])
    read = np.array([odometry.update(folder.rgb(frame.index), intrinsics) for frame in folder.scene.frames])
    np.testing.assert_array_equal(read[0], 0.0)
    walk_error = np.median(np.linalg.norm(read[:, :2] - truth[:, :2], axis=1))
    # 0.47 m against 1.27 m on this scene; on val's walks 0.31 m against 0.99 m, though a few go astray
    assert walk_error < 0.8 * np.median(np.linalg.norm(truth[:, :2], axis=1))
    # the heading, snapped to the room's walls read in each frame, does not drift: on this scene
    # 1.1 degrees median and 7.0 at most, against 14.5 and 37.8 with the snap off
    yaw_error = np.degrees(np.abs(wrap_angle(read[:, 2] - truth[:, 2])))
    assert np.median(yaw_error) < 3 and yaw_error.max() < 15
    free = open_visual_odometry(room_axes=False)
    unsnapped = np.array([free.update(folder.rgb(frame.index), intrinsics) for frame in folder.scene.frames])
    assert np.median(np.degrees(np.abs(wrap_angle(unsnapped[:, 2] - truth[:, 2])))) > 2 * np.median(yaw_error)
