"""Answers from a map: the oracle's rules read from a map's objects (the `map_rules` reference), the
question phrasings they are routed by, and the runtime answering the types it takes from its map."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.evaluation.map_answers import clip_map_objects
from loc3r_core.runtime.onnx_backend import OnnxBackend
from loc3r_core.runtime.scenario import scene_frames
from loc3r_core.runtime.session import (
    MAP_ANSWER_TYPES,
    MAP_TIEBREAK_SHARE,
    Session,
    SessionConfig,
    map_answered_types,
    map_breaks_tie,
)
from loc3r_core.runtime.visual_odometry import open_visual_odometry
from loc3r_core.types import MapObject
from loc3r_core.world.answer_rules import answer_by_rules
from loc3r_core.world.scene_io import SceneFolder
from loc3r_core.world.situations import QUESTION_TYPES, SECTOR_QUESTIONS, plural, question_type
from loc3r_core.world.vocabulary import LABELS, PATCH_CLASSES


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
                right[question.type].append(
                    answer_by_rules(question.type, question.question, objects, place, yaw) == question.answer)
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
    ask = lambda kind, text: answer_by_rules(kind, text, [lamp], here, facing_x)  # noqa: E731
    assert ask("direction", "Where is the bed, relative to me?") == ""
    assert ask("distance", "How far away is the bed from me?") == ""
    assert ask("count", "How many beds are there?") == "0"
    assert ask("direction", "Where is the lamp, relative to me?") == "front"
    assert ask("what_direction", "What is the nearest thing in front of me?") == "lamp"
    assert ask("what_direction", "What is the nearest thing behind me?") == ""
    assert answer_by_rules("nearest", "Which is closer to me, the lamp or the bed?", [], here, facing_x) == ""
    with pytest.raises(ValueError, match="no rule answers"):
        ask("colour", "What colour is the lamp?")


def test_every_generated_question_is_recognised_by_its_phrasing(world_by_kind):
    asked = [q for kind in ("walk", "loop") for path in sorted(world_by_kind[kind].glob("scene_*"))
             for situation in SceneFolder(path).situations for q in situation.questions]
    assert {q.type for q in asked} == set(QUESTION_TYPES)
    assert all(question_type(q.question) == q.type for q in asked)
    assert question_type("  what is ON my left ") == "what_direction"  # case, spacing, no question mark
    assert question_type("How many trash cans are in front of me?") == "count"
    for other in ("Is the bed on my left?", "What is the nearest thing in front of me?", "How many chairs are there?",
                  "How many dragons are there in the room?", "What is on my left? And behind me?"):
        assert question_type(other) is None, other


def stream(world_by_kind, odometry: bool = True, visual: bool = False) -> Session:
    session = Session(OnnxBackend(), visual_odometry=open_visual_odometry() if visual else None)
    for frame in scene_frames(SceneFolder(sorted(world_by_kind["loop"].glob("scene_*"))[0]), odometry):
        session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry)
    return session


@pytest.fixture(scope="module")
def streamed(world_by_kind) -> Session:
    return stream(world_by_kind)


def test_the_session_answers_the_map_types_from_its_layout_and_the_rest_from_the_model(streamed):
    assert streamed.config.map_answer_types == MAP_ANSWER_TYPES == ("count", "what_direction")
    objects = streamed.layout().objects
    found = sorted({o.label for o in objects})
    questions = [*SECTOR_QUESTIONS.values(), *(f"How many {plural(label)} are in front of me?" for label in found)]
    routed = [streamed.ask(q) for q in questions]
    streamed.config = SessionConfig(map_answer_types=())  # the same memory, every answer the model's
    decoded = [streamed.ask(q) for q in questions]
    streamed.config = SessionConfig()
    agreeing = 0
    for question, by_map, by_model in zip(questions, routed, decoded, strict=True):
        assert by_model.source == "model"
        assert by_map.asker == by_model.asker  # the placement does not depend on who answers
        place = np.array([by_map.asker.x, by_map.asker.y])
        rules = answer_by_rules(question_type(question), question, objects, place, by_map.asker.yaw)
        assert by_map.source == ("map" if rules else "model")
        assert by_map.text == (rules or by_model.text)
        assert 0 < by_map.confidence <= 1  # the model's probability of the map's answer
        if by_map.text == by_model.text:  # the same tokens: the same probability
            agreeing += 1
            assert by_map.confidence == pytest.approx(by_model.confidence, rel=1e-5)
    assert sum(a.source == "map" for a in routed) >= len(questions) // 2
    assert agreeing >= 1


def test_a_map_type_the_map_cannot_answer_falls_back_to_the_model(streamed):
    absent = next(label for label in LABELS if label not in {o.label for o in streamed.layout().objects})
    question = f"In which direction is the {absent} from me?"
    streamed.config = SessionConfig(map_answer_types=("direction",))
    try:
        answer = streamed.ask(question)
        present = streamed.ask(f"In which direction is the {streamed.layout().objects[0].label} from me?")
    finally:
        streamed.config = SessionConfig()
    assert answer.source == "model" and answer.text
    assert present.source == "map"
    assert streamed.ask("Is the bed on my left?").source == "model"  # a phrasing the rules do not read
    with pytest.raises(ValueError, match="map_answer_types"):
        SessionConfig(map_answer_types=("colour",)).validate()


def test_the_map_breaks_the_models_near_ties_on_distance_and_no_other(streamed):
    assert map_breaks_tie(0.8, 0.8 * MAP_TIEBREAK_SHARE) and not map_breaks_tie(0.8, 0.8 * MAP_TIEBREAK_SHARE - 1e-6)
    objects = streamed.layout().objects
    questions = [f"How far away is the {label} from me?" for label in sorted({o.label for o in objects})]
    streamed.config = SessionConfig(map_tiebreak_types=())
    try:
        plain = [streamed.ask(q) for q in questions]
        given = SessionConfig(map_tiebreak_types=(), map_answer_types=("distance",))  # the map's answer, scored
        streamed.config = given
        scored = [streamed.ask(q) for q in questions]
    finally:
        streamed.config = SessionConfig()
    broken = [streamed.ask(q) for q in questions]
    challenged = 0
    for question, model, mapped, answer in zip(questions, plain, scored, broken, strict=True):
        place = np.array([answer.asker.x, answer.asker.y])
        rules = answer_by_rules("distance", question, objects, place, answer.asker.yaw)
        assert mapped.text == (rules or model.text)
        if rules and rules != model.text:
            challenged += 1
            takes = map_breaks_tie(model.confidence, mapped.confidence)
            assert answer.source == ("map" if takes else "model")
            assert (answer.text, answer.confidence) == ((rules, mapped.confidence) if takes else
                                                        (model.text, model.confidence))
        else:  # nothing to break: the model's answer stands
            assert (answer.text, answer.source) == (model.text, "model")
    assert challenged >= 1


def test_a_map_built_without_odometry_does_not_answer(world_by_kind, streamed):
    types = ("count", "what_direction", "distance")
    assert map_answered_types(types, 7, 0, 12) == types and map_answered_types(types, 6, 0, 12) == ()
    assert map_answered_types(types, 0, 7, 12) == ("what_direction", "distance")  # a map on visual odometry
    assert map_answered_types(types, 4, 4, 12) == () == map_answered_types(types, 0, 0, 0)
    assert streamed.keyframes_with_odometry == streamed.keyframes_fused > 0
    blind = stream(world_by_kind, odometry=False)
    assert blind.keyframes_with_odometry == 0 and blind.layout().objects  # a map, but one that falls apart
    assert {blind.ask(q).source for q in SECTOR_QUESTIONS.values()} == {"model"}
    blind.reset()
    assert blind.keyframes_fused == 0
    seeing = stream(world_by_kind, odometry=False, visual=True)  # the camera's own odometry: what surrounds the asker
    assert seeing.keyframes_with_visual_odometry == seeing.keyframes_fused > 0 == seeing.keyframes_with_odometry
    assert "map" in {seeing.ask(q).source for q in SECTOR_QUESTIONS.values()}
    assert seeing.ask("How many chairs are there?").source == "model"
