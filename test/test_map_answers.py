"""`map_rules`: the oracle's answer rules read from a map's objects, the QA reference of the model's own map."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.evaluation.map_answers import clip_map_objects, map_rules_answer
from loc3r_core.types import MapObject
from loc3r_core.world.scene import Question
from loc3r_core.world.vocabulary import PATCH_CLASSES


def _answers_from_true_points(root, shift: float) -> dict[str, list[bool]]:
    """Fuse each clip's TRUE per-patch points (shifted along x) and answer every stored question
    from the true placement."""
    ds = SceneClipDataset(root, num_frames=8, patch_grid=(16, 16), patch_target="objects_first")
    right: dict[str, list[bool]] = defaultdict(list)
    for scene_index, folder in enumerate(ds.scenes):
        first = ds[next(i for i, item in enumerate(ds.items) if item[0] == scene_index)]
        valid = first["bev_valid"].numpy().reshape(8, -1)
        points = first["bev_target"].numpy().reshape(8, -1, 2) + np.array([shift, 0.0])
        probs = np.eye(len(PATCH_CLASSES))[first["patch_label"].numpy().reshape(8, -1)] * valid[..., None]
        objects = clip_map_objects(points, np.full(points.shape, 0.05), probs, first["ego_pose"].numpy()[:, :2],
                                   PATCH_CLASSES)
        for situation_index, situation in enumerate(folder.situations):
            item = ds[next(i for i, key in enumerate(ds.items) if key[:2] == (scene_index, situation_index))]
            place, yaw = item["situation_position"].numpy(), float(item["situation_yaw"])
            for question in situation.questions:
                right[question.type].append(map_rules_answer(question, objects, place, yaw) == question.answer)
    return right


def test_a_map_of_the_true_points_answers_like_the_oracle_and_a_shifted_one_does_not(world_by_kind):
    truth = _answers_from_true_points(world_by_kind["walk"], 0.0)
    shifted = _answers_from_true_points(world_by_kind["walk"], 1.0)
    share = {name: 100 * np.mean([x for hits in right.values() for x in hits]) for name, right in
             (("truth", truth), ("shifted", shifted))}
    assert sum(len(hits) for hits in truth.values()) > 50
    for qtype in ("count", "direction", "nearest", "what_direction"):  # distance reads the fitted boxes' edges
        assert np.mean(truth[qtype]) >= 0.9, qtype
    assert share["truth"] >= 85
    assert share["shifted"] <= share["truth"] - 10


def test_a_map_without_the_asked_class_has_no_answer():
    lamp = MapObject(0, "lamp", np.array([1.0, 0.0, 0.0]), np.array([0.4, 0.4, 1.5]), 0.0, 0.9)
    here, facing_x = np.zeros(2), 0.0
    ask = lambda kind, text: map_rules_answer(Question(kind, text, "", ()), [lamp], here, facing_x)  # noqa: E731
    assert ask("direction", "Where is the bed, relative to me?") == ""
    assert ask("distance", "How far away is the bed from me?") == ""
    assert ask("count", "How many beds are there?") == "0"
    assert ask("direction", "Where is the lamp, relative to me?") == "front"
    assert ask("what_direction", "What is the nearest thing in front of me?") == "lamp"
    assert ask("what_direction", "What is the nearest thing behind me?") == ""
    assert map_rules_answer(Question("nearest", "Which is closer to me, the lamp or the bed?", "", ()), [], here,
                            facing_x) == ""
    with pytest.raises(ValueError, match="no rule answers"):
        ask("colour", "What colour is the lamp?")
