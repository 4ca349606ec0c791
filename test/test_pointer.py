"""The pointer readout of <Pos>/<Ori>, its grounding loss, and the runtime's numpy half of it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL, overfit_one_batch, tiny_train_config
from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.evaluation.predict import greedy_answers
from loc3r_core.export.onnx_export import export_checkpoint
from loc3r_core.export.parity import check_parity
from loc3r_core.model.checkpoint import save_model
from loc3r_core.model.configuration_loc3r import Loc3rConfig
from loc3r_core.model.modeling_loc3r import (
    AnswerReadout,
    SituationPointer,
    egocentric_features,
    grounding_loss,
    relative_place,
    rotate_towards,
    viewer_place,
)
from loc3r_core.model.spatial import place_loss
from loc3r_core.model.tokenizer import answer_text
from loc3r_core.readout import (
    answer_reads,
    circular_soft_argmax,
    facing_bump,
    pointer_attention,
    relative_offsets,
    softmax,
    split_gaussian,
    widened_log_sigma,
)
from loc3r_core.runtime.mapping import LayoutGrid
from loc3r_core.runtime.onnx_backend import OnnxBackend
from loc3r_core.runtime.scenario import scene_frames
from loc3r_core.runtime.session import Session, SessionConfig
from loc3r_core.runtime.torch_backend import TorchBackend
from loc3r_core.training.batch import collate, model_inputs
from loc3r_core.training.config import TrainConfig
from loc3r_core.training.loop import create_model
from loc3r_core.world.scene_io import SceneFolder
from loc3r_core.world.situations import plural
from loc3r_core.world.vocabulary import PATCH_CLASSES

POINTER_MODEL = {**TINY_MODEL, "situation_readout": "pointer", "grounding_weight": 0.2}
# <Pos> points at two places (their midpoint) and moves by offsets towards the faced place and the viewer;
# the <answer> state also learns where the asked object stands from the asker (training only); the
# pointer averages the tokens' object centres; the map gets 2 x 2 sub-patch points per token, each
# given in its own frame's camera axes; each LM token merges 2 x 2 of the tower's patches; the answer
# reads the map as the asker sees it (two heads, the first taught to find the asked object and the
# counted class; their features include the four sectors, their reads the spread of what they weigh);
# <Ori>'s place is also pulled to the faced object's centre; the yaw reads the pointed objects' fronts,
# as strongly as the facing rule the <Ori> state names asks, and the position moves along <Pos>'s front too
RELATIONAL_MODEL = {**POINTER_MODEL, "pointer_places": 2, "relative_offset": True, "answer_geometry_weight": 0.1,
                    "object_centre_weight": 0.1, "map_subdivision": 2, "bev_frame": "camera", "vision_merge": 2,
                    "answer_readout_heads": 2, "answer_grounding_weight": 0.2, "answer_grounding_counts": True,
                    "answer_sector_features": True, "answer_spread_reads": True, "answer_copy_labels": True,
                    "faced_place_weight": 0.2, "object_front_weight": 0.2, "front_rule_weight": 0.1,
                    "front_offset": True}


def test_the_pointer_recovers_a_known_point_and_numpy_points_the_same_way():
    torch.manual_seed(0)
    pointer = SituationPointer(hidden=8, dim=4)
    keys = torch.eye(4)[None] * 1.0  # (1, 4 tokens, d = 4)
    points = torch.tensor([[[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0], [4.0, -1.0]]])
    queries = torch.stack([torch.eye(4)[1] * 60.0, torch.eye(4)[3] * 60.0])[None]  # sharp on tokens 1 and 3
    weights = pointer.attention(queries, keys)
    places, spread = pointer.point(weights, points)
    at, faced = places[0]
    np.testing.assert_allclose(at.numpy(), [-3.0, 0.5], atol=1e-4)
    np.testing.assert_allclose(faced.numpy(), [4.0, -1.0], atol=1e-4)
    np.testing.assert_allclose(spread.numpy(), 0.0, atol=1e-3)  # sharp attention: no spread
    # attention split between two points: the place is their middle, the spread their half-gap squared
    half, _ = pointer.point(torch.tensor([[[0.5, 0.5, 0.0, 0.0]]]), points)
    np.testing.assert_allclose(pointer.point(torch.tensor([[[0.5, 0.5, 0.0, 0.0]]]), points)[1][0, 0].numpy(),
                               [4.0, 0.5625], atol=1e-5)
    np.testing.assert_allclose(half[0, 0].numpy(), [-1.0, 1.25], atol=1e-5)
    np.testing.assert_allclose(pointer_attention(queries[0].numpy(), keys[0].numpy()), weights[0].numpy(), atol=1e-6)
    # the yaw logits lean towards the heading from the position to the faced place, by kappa
    offset = torch.tensor([[0.5, -0.5, -1.0, -1.0]])
    logits = torch.zeros(1, 36)
    pos, leaned = pointer.combine(offset, logits, at[None], faced[None])
    np.testing.assert_allclose(pos[0, :2].numpy(), [-2.5, 0.0], atol=1e-4)
    # readouts widen the head's sigma by the pointer's spread: sqrt(e^-2 + 0.25) along x, e^-1 along y
    np.testing.assert_allclose(np.exp(widened_log_sigma(pos[0, 2:].detach().numpy(), np.array([0.25, 0.0]))),
                               [math.sqrt(math.exp(-2) + 0.25), math.exp(-1)], atol=1e-5)
    heading = math.atan2(-1.0 - 0.0, 4.0 - -2.5)
    np.testing.assert_allclose(leaned[0].detach().numpy(), facing_bump(36, heading, math.e), atol=1e-4)


def test_grounding_loss_rewards_attention_on_the_named_tokens():
    labels = torch.tensor([[3, 5, 5, 7, 0, 0]])
    classes = torch.tensor([[5, -1, 7]])  # placed by the class-5 object, facing the class-7 one
    on_target = torch.tensor([[[0.0, 0.5, 0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]])
    uniform = torch.full((1, 2, 6), 1 / 6)
    assert grounding_loss(on_target, labels, classes).item() == pytest.approx(0.0, abs=1e-5)
    assert grounding_loss(uniform, labels, classes).item() == pytest.approx((math.log(3) + math.log(6)) / 2)
    # "between A and C": both placing objects count; a class no token shows leaves its pointer out
    assert grounding_loss(uniform, labels, torch.tensor([[3, 7, 9]])).item() == pytest.approx(math.log(3))
    assert grounding_loss(uniform, labels, torch.tensor([[-1, -1, -1]])).item() == 0.0


def test_the_place_loss_is_a_huber_loss_of_the_distance_over_placed_rows_only():
    place = torch.tensor([[0.0, 0.0], [3.0, 4.0], [9.0, 9.0]], requires_grad=True)
    target = torch.zeros(3, 2)
    valid = torch.tensor([True, True, False])
    loss = place_loss(place, target, valid, delta=0.5)
    assert loss.item() == pytest.approx((0.0 + 0.5 * (5.0 - 0.25)) / 2)  # 0 at the target, linear beyond delta
    loss.backward()
    assert torch.isfinite(place.grad).all() and place.grad[2].abs().sum() == 0  # the row without a place learns nothing
    assert place_loss(place, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_the_place_loss_trains_the_faced_pointer_onto_the_target():
    """With the map's points fixed, the loss alone moves <Ori>'s place onto a place the points
    can average to (here midway between two tokens' points), through the attention only."""
    torch.manual_seed(0)
    pointer = SituationPointer(hidden=16, dim=16)
    vision = torch.randn(4, 6, 16)
    points = torch.rand(4, 6, 2) * 4 - 2
    target = (points[:, 1] + points[:, 4]) / 2
    states = torch.randn(4, 2, 16, requires_grad=True)  # the <Pos> and <Ori> hidden states
    optimizer = torch.optim.Adam([*pointer.parameters(), states], lr=0.05)

    def faced() -> torch.Tensor:
        weights = pointer.attention(pointer.queries(states[:, 0], states[:, 1]), pointer.keys(vision))
        return pointer.point(weights, points)[0][:, -1]

    valid = torch.ones(4, dtype=torch.bool)
    first = (faced() - target).norm(dim=-1).mean().item()
    for _ in range(300):
        optimizer.zero_grad()
        place_loss(faced(), target, valid).backward()
        optimizer.step()
    last = (faced() - target).norm(dim=-1).mean().item()
    assert first > 0.5 and last < 0.1, (first, last)


def test_two_place_grounding_sends_one_pointer_to_each_placing_object():
    labels = torch.tensor([[3, 5, 5, 7, 0, 0]])
    one_each = torch.tensor([[[0.0, 1.0, 0.0, 0.0, 0.0, 0.0],    # <Pos> 1 on the class-5 object
                              [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],    # <Pos> 2 on the class-7 object
                              [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]])  # <Ori> on the class-3 object
    between = torch.tensor([[5, 7, 3]])
    assert grounding_loss(one_each, labels, between).item() == pytest.approx(0.0, abs=1e-5)
    # both <Pos> pointers on one of the two: the other's object gets no mass (clamped at 1e-6)
    both_on_first = one_each.clone()
    both_on_first[0, 1] = one_each[0, 0]
    assert grounding_loss(both_on_first, labels, between).item() == pytest.approx(-math.log(1e-6) / 3, rel=1e-4)
    # a one-object relation sends both <Pos> pointers to it
    assert grounding_loss(both_on_first, labels, torch.tensor([[5, -1, 3]])).item() == pytest.approx(0.0, abs=1e-5)


def test_relative_offsets_turn_with_the_directions_to_the_faced_place_and_the_viewer():
    offsets = torch.tensor([[1.0, 0.0], [1.0, 0.5], [0.3, -0.2]])
    directions = torch.tensor([[0.0, 2.0], [-3.0, 0.0], [0.0, 0.0]])  # left, behind, none (both on one place)
    turned = rotate_towards(offsets, directions)
    np.testing.assert_allclose(turned.numpy(), [[0.0, 1.0], [-1.0, -0.5], [0.3, -0.2]], atol=1e-6)
    # the place moves 1 m towards the faced place (+y) and 0.5 m to the right of the way to the viewer (-x)
    at, faced, viewer = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 4.0]]), torch.tensor([[-2.0, 1.0]])
    offset = torch.tensor([[1.0, 0.0, 0.0, -0.5]])
    moved = relative_place(offset, at, faced, viewer)
    np.testing.assert_allclose(moved[0].numpy(), [0.0, 1.5], atol=1e-6)
    np.testing.assert_allclose(relative_offsets(offset[0].numpy(), at[0].numpy(), faced[0].numpy(),
                                                viewer[0].numpy()), moved[0].numpy(), atol=1e-6)
    # front_offset: a third offset along a front (-y here): 0.4 m ahead of it, 0.1 m to its left (+x)
    front = torch.tensor([[0.0, -2.0]])
    offset = torch.tensor([[1.0, 0.0, 0.0, -0.5, 0.4, 0.1]])
    moved = relative_place(offset, at, faced, viewer, front)
    np.testing.assert_allclose(moved[0].numpy(), [0.1, 1.1], atol=1e-6)
    np.testing.assert_allclose(relative_offsets(offset[0].numpy(), at[0].numpy(), faced[0].numpy(),
                                                viewer[0].numpy(), front[0].numpy()), moved[0].numpy(), atol=1e-6)
    # the viewer is the mean of the frames' estimated positions, frame 0 at the origin by definition
    ego = torch.zeros(1, 3, 40)
    ego[0, :, :2] = torch.tensor([[5.0, 5.0], [1.0, 0.0], [2.0, 3.0]])
    np.testing.assert_allclose(viewer_place(ego)[0].numpy(), [1.0, 1.0], atol=1e-6)


def test_the_answer_readout_finds_a_named_or_placed_token_and_numpy_reads_the_same_way():
    torch.manual_seed(0)
    readout = AnswerReadout(hidden=8, dim=4, heads=2, classes=3)
    points = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [0.0, -2.0]]])  # ahead, left, behind, right
    keys = torch.eye(4)[None]
    probs = torch.eye(3)[[0, 1, 2, 2]][None]
    state = torch.randn(1, 8)
    with torch.no_grad():  # head 0 looks for token 1 by its key; head 1 for what lies furthest to the right
        readout.query.weight.zero_()
        readout.query.bias.copy_(torch.cat([torch.eye(4)[1] * 80.0, torch.zeros(4)]))
        readout.gate.weight.zero_()
        readout.gate.bias.copy_(torch.tensor([0.0] * 5 + [0.0, -20.0, 0.0, 0.0, 0.0]))
    position, yaw = torch.tensor([[0.0, 0.0]]), torch.tensor([0.0])
    reads = readout.reads(state, keys, points, probs, position, yaw).view(2, -1)
    np.testing.assert_allclose(reads[0].detach().numpy(), [0.0, 3.0, 3.0, 0.0, 1.0, 0.0, 1.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(reads[1, :2].detach().numpy(), [0.0, -2.0], atol=1e-3)
    # the asker turned to face +y: token 1 is now ahead, token 3 behind and the right holds token 0
    turned = readout.reads(state, keys, points, probs, position, torch.tensor([math.pi / 2])).view(2, -1)
    np.testing.assert_allclose(turned[0, :2].detach().numpy(), [3.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(turned[1, :2].detach().numpy(), [0.0, -2.0], atol=1e-3)
    np.testing.assert_allclose(turned[1, 5:].detach().numpy(), [1.0, 0.0, 0.0], atol=1e-3)
    with torch.no_grad():
        queries, gates = readout.query(state).view(2, 4), readout.gate(state).view(2, 5)
    np.testing.assert_allclose(answer_reads(queries.numpy(), gates.numpy(), keys[0].numpy(), points[0].numpy(),
                                            probs[0].numpy(), np.zeros(2), math.pi / 2),
                               turned.flatten().detach().numpy(), atol=1e-5)


def test_sector_features_let_one_head_find_the_nearest_thing_well_inside_a_sector():
    readout = AnswerReadout(hidden=8, dim=4, heads=1, classes=3, sectors=True)
    # asker at the origin facing +x: a chair far on the left, a lamp near on the left, a table ahead-left
    # (42 degrees: nearer than both, but not well inside the left sector)
    points = torch.tensor([[[0.2, 2.5], [-0.1, 1.0], [0.6, 0.55]]])
    probs = torch.eye(3)[None]
    keys, state = torch.zeros(1, 3, 4), torch.randn(1, 8)
    ego = egocentric_features(points, torch.zeros(1, 2), torch.zeros(1), sectors=True)[0]
    np.testing.assert_allclose(ego[1, 5:].numpy(), [0.001, 0.95, 0.002, 0.0], atol=0.01)  # front, left, behind, right
    with torch.no_grad():  # "what is on my left?": well inside the left sector, then the nearest
        readout.query.weight.zero_()
        readout.query.bias.zero_()
        readout.gate.weight.zero_()
        readout.gate.bias.copy_(torch.tensor([0.0, 0.0, -4.0, 0.0, 0.0, 0.0, 30.0, 0.0, 0.0]))
    reads = readout.reads(state, keys, points, probs, torch.zeros(1, 2), torch.zeros(1))[0]
    np.testing.assert_allclose(reads[-3:].detach().numpy(), [0.0, 1.0, 0.0], atol=0.02)  # the lamp
    with torch.no_grad():
        queries, gates = readout.query(state).view(1, 4), readout.gate(state).view(1, 9)
    np.testing.assert_allclose(answer_reads(queries.numpy(), gates.numpy(), keys[0].numpy(), points[0].numpy(),
                                            probs[0].numpy(), np.zeros(2), 0.0, sectors=True),
                               reads.detach().numpy(), atol=1e-5)


def test_spread_reads_tell_two_objects_apart_from_one():
    readout = AnswerReadout(hidden=8, dim=2, heads=2, classes=2, spread=True)
    # two chairs 3 m apart and a table; head 0 looks for chairs, head 1 for the table
    points = torch.tensor([[[2.0, 1.5], [2.0, -1.5], [-1.0, 0.0]]])
    keys, probs = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]]), torch.eye(2)[[0, 0, 1]][None]
    state = torch.randn(1, 8)
    with torch.no_grad():
        readout.query.weight.zero_()
        readout.query.bias.copy_(torch.tensor([60.0, 0.0, 0.0, 60.0]))
        readout.gate.weight.zero_()
        readout.gate.bias.zero_()
    reads = readout.reads(state, keys, points, probs, torch.zeros(1, 2), torch.zeros(1)).view(2, -1)
    np.testing.assert_allclose(reads[:, -1].detach().numpy(), [1.5, 0.0], atol=1e-2)  # 3 m apart; one table
    np.testing.assert_allclose(reads[0, :2].detach().numpy(), [2.0, 0.0], atol=1e-3)  # their mean: between them
    with torch.no_grad():
        queries, gates = readout.query(state).view(2, 2), readout.gate(state).view(2, 5)
    np.testing.assert_allclose(answer_reads(queries.numpy(), gates.numpy(), keys[0].numpy(), points[0].numpy(),
                                            probs[0].numpy(), np.zeros(2), 0.0, spread=True),
                               reads.flatten().detach().numpy(), atol=1e-5)


def test_the_copy_path_votes_for_the_label_the_first_head_reads():
    # classes: wall (structure), then chair, lamp, table, whose answers start with tokens 10, 11, 12
    readout = AnswerReadout(hidden=8, dim=2, heads=2, classes=4, copy_tokens=[10, 11, 12], vocab=16)
    points = torch.tensor([[[2.0, 1.5], [-1.0, 0.0], [0.5, -2.0]]])
    keys, probs = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]]), torch.eye(4)[[0, 2, 1]][None]
    with torch.no_grad():  # head 0 finds the lamp; head 1 the wall and the chair
        readout.query.weight.zero_()
        readout.query.bias.copy_(torch.tensor([0.0, 60.0, 60.0, 0.0]))
        readout.gate.weight.zero_()
        readout.gate.bias.zero_()
    reads = readout.reads(torch.randn(1, 8), keys, points, probs, torch.zeros(1, 2), torch.zeros(1))
    copy = readout.copy_logits(reads)[0]
    assert int(copy.argmax()) == 11  # the lamp: what head 0 reads, whatever head 1 does
    np.testing.assert_allclose(copy[10:13].detach().numpy(), np.array([-1, 2, -1]) * np.log(1001) / 3, atol=1e-3)
    assert float(copy[:10].abs().max()) == 0.0 and float(copy[13:].abs().max()) == 0.0  # other tokens untouched
    state = torch.randn(3, 8)
    with torch.no_grad():
        readout.copy_gate.weight.zero_()
        readout.copy_gate.bias.fill_(2.0)
    np.testing.assert_allclose(readout.vote(state, copy).detach().numpy(), 2.0 * copy.expand(3, -1).detach().numpy())


def test_grounding_classes_are_what_places_and_what_is_faced(world_by_kind):
    dataset = SceneClipDataset(world_by_kind["walk"], num_frames=4, patch_grid=(4, 4))
    for index in range(0, len(dataset), 7):
        item = dataset[index]
        scene_index, situation_index, _ = dataset.items[index]
        folder = dataset.scenes[scene_index]
        situation = folder.situations[situation_index]
        classes = item["grounding_classes"].tolist()
        if not item["has_situation"]:
            assert classes == [-1, -1, -1]
            continue
        first, faced = situation.relations[0], situation.relations[-1]
        placing = first.get("object_ids", [first.get("object_id")])
        assert classes[:len(placing)] == [PATCH_CLASSES.index(folder.scene.object(i).label) for i in placing]
        assert classes[2] == PATCH_CLASSES.index(folder.scene.object(faced["object_id"]).label)
        assert PATCH_CLASSES[classes[2]] in situation.text
        # faced_xy: that object's centre in the clip's frame, the place the asker's facing points to
        centre = next(o["center"] for o in item["objects"] if o["id"] == faced["object_id"])
        np.testing.assert_allclose(item["faced_xy"].numpy(), centre, atol=1e-9)
        ahead = item["faced_xy"].numpy() - item["situation_position"].numpy()
        turn = math.atan2(ahead[1], ahead[0]) - item["situation_yaw"].item()
        assert math.cos(turn) > math.cos(math.radians(30)), (situation.text, math.degrees(turn))


def test_the_asked_class_is_the_one_object_an_egocentric_question_is_about(world_by_kind):
    dataset = SceneClipDataset(world_by_kind["walk"], num_frames=4, patch_grid=(4, 4))
    asked = counted = 0
    for index in range(0, len(dataset), 3):
        item = dataset[index]
        if item["question_type"] == "count":  # the counted class, whether or not any is where it is counted
            counted += 1
            label = PATCH_CLASSES[item["counted_class"].item()]
            assert f"How many {plural(label)} are" in item["question"], (item["question"], label)
        else:
            assert item["counted_class"].item() == -1
        if not bool(item["answer_xy_valid"]):
            assert item["asked_class"].item() == -1
            continue
        asked += 1
        label = PATCH_CLASSES[item["asked_class"].item()]
        about = item["answer"] if item["question_type"] in ("nearest", "what_direction") else item["question"]
        assert label in about, (item["question"], item["answer"], label)
    assert asked > 0 and counted > 0


@pytest.fixture(scope="module", params=[POINTER_MODEL, RELATIONAL_MODEL], ids=["one-place", "relational"])
def pointer_model(request, world_by_kind, tmp_path_factory):
    """A tiny pointer-readout model after a few steps on one batch (so its pointers are not uniform)."""
    config = TrainConfig.from_dict(tiny_train_config(world_by_kind["walk"], tmp_path_factory.mktemp("run"),
                                                     model=request.param, patch_targets="objects_first"))
    probe = Loc3rConfig(**request.param)
    dataset = SceneClipDataset(world_by_kind["walk"], num_frames=4, patch_grid=probe.patch_grid,
                               image_size=probe.vision_config.image_size, patch_target="objects_first",
                               map_subdivision=request.param.get("map_subdivision", 1))
    torch.manual_seed(0)
    model, tokenizer = create_model(config, dataset)
    batch = collate([dataset[i] for i in range(0, 32, 4)], tokenizer, model.config.patches_per_frame)
    history = overfit_one_batch(model, batch, steps=40)
    return model.eval(), tokenizer, history


def test_a_pointer_model_learns_where_to_point(pointer_model):
    _, _, history = pointer_model
    optional = ("answer_geometry", "answer_grounding", "object_centre", "object_front", "map_bev", "map_semantic")
    for term in ("grounding", "pos", "ori", *(t for t in optional if t in history[0])):
        first, last = history[0][term], np.mean([h[term] for h in history[-3:]])
        assert last < first - 0.05 * abs(first), f"{term}: {first:.3f} -> {last:.3f}"
    # in 40 steps the map's points move more than <Ori>'s place can follow: only wired and finite
    # here (test_the_place_loss_trains_the_faced_pointer_onto_the_target shows it trains)
    if "faced_place" in history[0]:  # the relational model
        assert all(np.isfinite(h["faced_place"]) for h in history)


def test_the_session_points_like_the_model_forward(pointer_model, world_by_kind, tmp_path):
    """Four keyframes in memory, no rebuild: the session's numpy pointing over its stored keys and
    map points must give the model's own <Pos>/<Ori> readout of the same clip."""
    model, tokenizer, _ = pointer_model
    folder = save_model(model, tokenizer, tmp_path / "pointer-model")
    session = Session(TorchBackend(folder), SessionConfig(map_answer_types=(), map_tiebreak_types=()))  # the decoder's
    scene = SceneFolder(sorted(world_by_kind["walk"].glob("scene_*"))[0])
    frames = list(scene_frames(scene))
    picks = np.linspace(0, len(frames) - 1, 4).round().astype(int)
    for i in picks:
        session.push(frames[i].rgb, frames[i].stamp_ns, frames[i].intrinsics, frames[i].odometry, force_keyframe=True)
    situation = scene.situations[0]
    located = session.localize(situation.text).pose

    dataset = SceneClipDataset(world_by_kind["walk"], num_frames=4, patch_grid=model.config.patch_grid,
                               image_size=model.config.vision_config.image_size)
    index = next(i for i, (s, k, _) in enumerate(dataset.items) if s == 0 and k == 0)
    np.testing.assert_array_equal(dataset.frame_indices(index), picks)
    batch = collate([dataset[index]], tokenizer, model.config.patches_per_frame, with_answers=False)
    with torch.no_grad():
        out = model(**model_inputs(batch))
    yaw, _ = circular_soft_argmax(out.ori_logits[0].numpy())
    np.testing.assert_allclose([located.x, located.y], out.pos[0, :2].numpy(), atol=2e-3)
    sigma = np.exp(widened_log_sigma(out.pos[0, 2:].numpy(), out.pointer_spread[0].numpy()))
    np.testing.assert_allclose([located.sigma_x, located.sigma_y], sigma, rtol=5e-3)
    assert abs(math.remainder(located.yaw - float(yaw), 2 * math.pi)) < 2e-3
    # the map: each keyframe's points, as the forward pass gives them for its frame (sub-patch
    # points where the model has a map head), fused into a fresh grid, make the session's grid
    bev, logits = (out.map_bev, out.map_semantic_logits) if out.map_bev is not None else \
        (out.bev[:, :, :, None], out.semantic_logits[:, :, :, None])
    expected = LayoutGrid(session.config.grid, session.spec.label_names)
    for f, keyframe in enumerate(session.memory):
        mean, sigma = split_gaussian(bev[0, f].reshape(-1, 4).numpy())
        expected.add(mean, sigma, softmax(logits[0, f].reshape(-1, logits.shape[-1]).numpy()), keyframe.map_pose[:2])
    assert session.grid.votes.sum() == pytest.approx(expected.votes.sum(), rel=1e-3)
    assert np.mean(np.abs(session.grid.votes - expected.votes).sum(axis=2) < 1e-3) > 0.999
    # the answer, which for a model with an answer readout reads the map from where the asker was placed
    item = dataset[index]
    asked = session.ask(item["question"], item["situation_text"])
    with torch.no_grad():
        inputs = model_inputs(batch)
        frame_tokens = model.encode_frames(inputs["images"].flatten(0, 1), inputs["prior"].flatten(0, 1),
                                           inputs["prior_valid"][:, None].expand(1, 4).flatten())
    frame_tokens = frame_tokens.reshape(1, -1, frame_tokens.shape[-1])
    answers, heads, confidence = greedy_answers(model, tokenizer, batch["input_ids"], batch["lengths"], frame_tokens)
    assert asked.text == answers[0]
    assert confidence[0] == pytest.approx(asked.confidence, rel=1e-3)  # the probability as the runtime states it
    # ... and the same answer's probability when it is given, as the map's answers are scored
    given = tokenizer(answer_text(asked.text), add_special_tokens=False)["input_ids"]
    _, _, scored = greedy_answers(model, tokenizer, batch["input_ids"], batch["lengths"], frame_tokens, forced=[given])
    if len(given) <= 8:  # a greedy answer cut at 8 tokens has no <eos> to score
        assert scored[0] == pytest.approx(asked.confidence, rel=1e-3)
    if model.answer_readout is not None:
        assert float(heads["answer_context"].abs().max()) > 1e-3  # trained: the readout changes the answer's state
    if "answer_copy" in heads:  # ... and the copy path votes (a gate trained away from its zero start)
        assert float(model.answer_readout.copy_gate.weight.abs().max()) > 1e-4
    if model.front_head is not None:  # the yaw above read fronts: gains trained away from their zero start
        assert float(model.pointer.front_gain.weight.abs().max()) > 1e-4


def test_an_exported_pointer_model_points_like_its_checkpoint(pointer_model, world_by_kind, tmp_path):
    """The heads graph carries every pointer output the session reads (two places, relative offsets)."""
    model, tokenizer, _ = pointer_model
    folder = save_model(model, tokenizer, tmp_path / "pointer-model")
    export_checkpoint(folder, tmp_path / "onnx")
    errors = check_parity(folder, tmp_path / "onnx")
    assert max(errors.values()) < 1e-4, errors
    scene = SceneFolder(sorted(world_by_kind["walk"].glob("scene_*"))[0])
    sessions = [Session(TorchBackend(folder)), Session(OnnxBackend(tmp_path / "onnx", checkpoint=folder))]
    frames = list(scene_frames(scene))
    for i in np.linspace(0, len(frames) - 1, 4).round().astype(int):
        for session in sessions:
            session.push(frames[i].rgb, frames[i].stamp_ns, frames[i].intrinsics, frames[i].odometry,
                         force_keyframe=True)
    poses = [session.localize(scene.situations[1].text).pose for session in sessions]
    np.testing.assert_allclose([poses[0].x, poses[0].y, poses[0].sigma_x], [poses[1].x, poses[1].y, poses[1].sigma_x],
                               atol=1e-3)
    assert abs(math.remainder(poses[0].yaw - poses[1].yaw, 2 * math.pi)) < 1e-3
