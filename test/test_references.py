"""The non-learned reference ladder of `loc3r eval --reference` (chance, majority, anchor, oracle)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import run_cli
from loc3r_core.cli.train import REFERENCE_CHOICES
from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.evaluation.metrics import MetricAccumulator
from loc3r_core.evaluation.references import (
    REFERENCES,
    evaluate_reference,
    oracle_placement,
    path_centre,
)
from loc3r_core.geometry import camera_rotation, make_pose, wrap_angle
from loc3r_core.world.answer_rules import answer_by_rules
from loc3r_core.world.scene_io import SceneFolder
from loc3r_core.world.situations import FACING_MAX_DEG, PLACEMENTS, labels_in, placement_kind


@pytest.fixture(scope="module")
def folders(scene_dirs):
    return [SceneFolder(p) for p in scene_dirs]


def test_oracle_rules_reproduce_every_stored_answer_from_the_true_placement(folders):
    asked = 0
    for folder in folders:
        for situation in folder.situations:
            for question in situation.questions:
                asked += 1
                answer = answer_by_rules(question.type, question.question, folder.scene.objects, situation.position,
                                         situation.yaw)
                assert answer == question.answer, (folder.path.name, question)
    assert asked > 50


def test_oracle_placement_lands_near_the_truth_and_faces_what_it_names(folders):
    errors, facing_errors = [], []
    for folder in folders:
        for situation in folder.situations:
            position, yaw = oracle_placement(folder.scene, situation)
            errors.append(np.linalg.norm(position - situation.position))
            facing_errors.append(abs(float(wrap_angle(yaw - situation.yaw))))
    assert np.mean(np.array(errors) <= 1.0) >= 0.85
    assert np.mean(np.array(facing_errors) <= math.radians(FACING_MAX_DEG + 10)) >= 0.85


def test_localization_is_broken_down_by_how_each_situation_is_placed(folders):
    kinds = {placement_kind(folder.scene, situation) for folder in folders for situation in folder.situations}
    assert kinds <= set(PLACEMENTS) and len(kinds) >= 3
    accumulator = MetricAccumulator()
    for placement, error in (("between", 0.2), ("between", 1.5), ("door", 0.4), (None, 3.0)):
        accumulator.add_localization(np.array([error, 0.0]), 0.0, np.zeros(2), np.zeros(2), 0.0, placement)
    summary = accumulator.summary()
    assert summary["loc_acc_1_0m_by_placement"] == {"between": 50.0, "door": 100.0}  # no placement: overall only
    assert summary["loc_acc_0_5m_by_placement"] == {"between": 50.0, "door": 100.0}
    assert summary["loc_acc_1_0m"] == 50.0


def test_labels_are_read_in_order_and_made_singular():
    assert labels_in("Which is closer to me, the trash can or the bed?") == ["trash can", "bed"]
    assert labels_in("How many shelves are in front of me?") == ["shelf"]
    assert labels_in("Which object is closest to me?") == []


def test_path_centre_is_the_mean_position_facing_the_circular_mean_heading():
    poses = np.stack([make_pose(camera_rotation(math.radians(yaw), 0.0), np.array([x, 0.0, 1.2]))
                      for yaw, x in ((170, 0.0), (-110, 2.0))])
    centre, yaw = path_centre(poses)
    np.testing.assert_allclose(centre, [1.0, 0.0], atol=1e-9)
    assert math.degrees(yaw) == pytest.approx(-150.0)  # across the +-180 seam, not the arithmetic mean 30


def test_the_ladder_orders_chance_below_the_oracle_on_a_fixed_split(world_by_kind):
    dataset = SceneClipDataset(world_by_kind["complex"], num_frames=8)
    indices = list(range(len(dataset)))
    chance = evaluate_reference("path-centre", dataset, indices, progress=False)
    oracle = evaluate_reference("oracle", dataset, indices, progress=False)
    majority = evaluate_reference("majority", dataset, indices, world_by_kind["walk"], progress=False)
    assert oracle["loc_acc_1_0m"] > chance["loc_acc_1_0m"] + 30
    assert oracle["qa_em"] > majority["qa_em"] + 20
    assert oracle["qa_em"] >= 80
    assert "qa_em" not in chance and "loc_acc_1_0m" not in majority
    # the breakdown by how each situation is placed: one entry per placement the split has, each a share
    by_placement = oracle["loc_acc_1_0m_by_placement"]
    assert set(by_placement) <= set(PLACEMENTS) and len(by_placement) >= 3
    assert all(0.0 <= value <= 100.0 for value in by_placement.values())
    assert min(by_placement.values()) <= oracle["loc_acc_1_0m"] <= max(by_placement.values())
    assert evaluate_reference("oracle", dataset, indices, progress=False) == oracle  # deterministic


def test_eval_reference_cli_prints_every_reference_as_json(world_by_kind):
    assert set(REFERENCE_CHOICES) == {*REFERENCES, "all"}
    data = world_by_kind["loop"]
    result = run_cli("eval", "--data", data, "--reference", "all", "--train-data", world_by_kind["walk"],
                     "--json", "--no-progress", check=True)
    metrics = json.loads(result.stdout)
    assert list(metrics) == list(REFERENCES)
    assert {"loc_acc_1_0m", "ori_acc_30deg"} <= set(metrics["anchor"])
    assert metrics["oracle"]["num_samples"] == metrics["majority"]["num_samples"] > 0


def test_majority_without_a_training_split_is_one_readable_error(world_by_kind, tmp_path):
    result = run_cli("eval", "--data", world_by_kind["loop"], "--reference", "majority",
                     "--train-data", tmp_path / "missing")
    assert result.returncode != 0
    assert "majority reference needs a training split" in result.stderr
    assert "Traceback" not in result.stderr
