"""Object fronts (object_front_weight): their targets, loss and the yaw bump the pointer reads from them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL, overfit_one_batch, tiny_train_config
from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.data.targets import FRONTED_PLACEMENTS
from loc3r_core.model.checkpoint import save_model
from loc3r_core.model.configuration_loc3r import Loc3rConfig
from loc3r_core.model.modeling_loc3r import SituationPointer, front_loss, pointed_fronts
from loc3r_core.model.spatial import bin_centres
from loc3r_core.readout import front_bump as numpy_front_bump
from loc3r_core.readout import pointed_fronts as numpy_pointed_fronts
from loc3r_core.runtime.backend import head_names
from loc3r_core.runtime.spec import ModelSpec
from loc3r_core.training.batch import collate
from loc3r_core.training.config import TrainConfig
from loc3r_core.training.loop import create_model
from loc3r_core.world.vocabulary import CATEGORY_BY_NAME, PATCH_CLASSES

FRONT_MODEL = {**TINY_MODEL, "situation_readout": "pointer", "grounding_weight": 0.2, "object_front_weight": 0.5}


def test_front_targets_are_the_way_each_fronted_object_faces_in_the_clip(world_by_kind):
    ds = SceneClipDataset(world_by_kind["walk"], num_frames=8, patch_grid=(4, 4), patch_target="objects_first")
    checked = 0
    for index in np.linspace(0, len(ds) - 1, 12).round().astype(int):
        item = ds[index]
        labels, fronts, valid = (item[k].numpy() for k in ("patch_label", "front_target", "front_valid"))
        fronted = np.array([c >= 3 and CATEGORY_BY_NAME[PATCH_CLASSES[c]].placement in FRONTED_PLACEMENTS
                            for c in labels.ravel()]).reshape(labels.shape)
        assert not (valid & ~fronted).any(), "only patches of fronted objects carry a front"
        np.testing.assert_allclose(np.linalg.norm(fronts[valid], axis=-1), 1.0, atol=1e-9)
        by_class = {}
        for o in item["objects"]:
            by_class.setdefault(o["class"], []).append(np.array([math.cos(o["yaw"]), math.sin(o["yaw"])]))
        for front, label in zip(fronts[valid], labels[valid], strict=True):
            # the front of an object of the patch's class, turned into the clip's axes
            assert min(np.linalg.norm(front - f) for f in by_class[int(label)]) < 1e-6
            checked += 1
    assert checked > 20


def test_the_front_loss_is_zero_when_aligned_two_when_opposed_and_skips_tokens_without_a_front():
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]]])
    valid = torch.tensor([[[True, True, False]]])
    aligned = torch.tensor([[[[3.0, 0.0], [0.0, 0.5], [-1.0, 0.0]]]], requires_grad=True)  # length does not count
    assert front_loss(aligned, target, valid).item() == pytest.approx(0.0, abs=1e-6)
    assert front_loss(-aligned, target, valid).item() == pytest.approx(2.0)
    front_loss(aligned + torch.tensor([0.0, 1.0]), target, valid).backward()
    assert aligned.grad[0, 0, 2].abs().sum() == 0 and aligned.grad[0, 0, 0].abs().sum() > 0
    assert front_loss(aligned, target, torch.zeros_like(valid)).item() == 0.0


def test_the_front_bump_faces_along_or_against_the_pointed_fronts():
    pointer = SituationPointer(hidden=8, dim=8, places=1, fronts=True)
    bins = 36
    # <Pos> weighs token 0 (front along +y), <Ori> token 1 (front along +x)
    weights = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    fronts = torch.tensor([[[0.0, 2.0], [5.0, 0.0]]])
    state = torch.zeros(1, 8)
    with torch.no_grad():
        pointer.front_gain.weight.zero_()
        pointer.front_gain.bias.zero_()
        assert pointer.front_bump(state, pointed_fronts(weights, fronts), bins).abs().max() < 1e-6  # no gain, no bump
        centres = bin_centres(bins)
        pointer.front_gain.bias.copy_(torch.tensor([-3.0, 0.0]))  # against <Ori>'s front: facing -x
        peak = centres[pointer.front_bump(state, pointed_fronts(weights, fronts), bins).argmax()].item()
        assert abs(abs(peak) - math.pi) < 2 * math.pi / bins
        pointer.front_gain.bias.copy_(torch.tensor([0.0, 3.0]))  # along <Pos>'s front: facing +y
        peak = centres[pointer.front_bump(state, pointed_fronts(weights, fronts), bins).argmax()].item()
        assert abs(peak - math.pi / 2) < 2 * math.pi / bins


def test_numpy_bumps_the_yaw_like_the_model():
    """The runtime's twin (readout.front_bump), with two <Pos> places and random fronts and gains."""
    torch.manual_seed(1)
    pointer = SituationPointer(hidden=8, dim=8, places=2, fronts=True)
    with torch.no_grad():
        pointer.front_gain.weight.normal_()
        state = torch.randn(1, 8)
        weights = torch.softmax(torch.randn(1, 3, 5), dim=-1)
        fronts = torch.randn(1, 5, 2)
        expected = pointer.front_bump(state, pointed_fronts(weights, fronts), 24)[0].numpy()
        gains = pointer.front_gain(state)[0].numpy()
    pointed = numpy_pointed_fronts(weights[0].numpy(), fronts[0].numpy())
    np.testing.assert_allclose(pointed, pointed_fronts(weights, fronts)[0].numpy(), atol=1e-6)
    bump = numpy_front_bump(gains, pointed, 24)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(bump, expected, atol=1e-5)


def _overfit_tiny_model(world: Path, tmp_path: Path, model_config: dict) -> tuple:
    """A tiny model of model_config fitted 30 steps to one batch of the world: (model, tokenizer, losses)."""
    config = TrainConfig.from_dict(tiny_train_config(world, tmp_path / "run", model=model_config,
                                                     patch_targets="objects_first"))
    probe = Loc3rConfig(**model_config)
    dataset = SceneClipDataset(world, num_frames=4, patch_grid=probe.patch_grid,
                               image_size=probe.vision_config.image_size, patch_target="objects_first")
    torch.manual_seed(0)
    model, tokenizer = create_model(config, dataset)
    batch = collate([dataset[i] for i in range(0, 32, 4)], tokenizer, model.config.patches_per_frame)
    history = overfit_one_batch(model, batch, steps=30)
    return model, tokenizer, history


def test_a_front_model_learns_its_fronts_and_the_runtime_reads_them(world_by_kind, tmp_path):
    model, tokenizer, history = _overfit_tiny_model(world_by_kind["walk"], tmp_path, FRONT_MODEL)
    first, last = history[0]["object_front"], np.mean([h["object_front"] for h in history[-3:]])
    assert last < first - 0.05 * first, (first, last)
    assert all(np.isfinite(h["ori"]) for h in history)
    spec = ModelSpec.from_checkpoint(save_model(model, tokenizer, tmp_path / "model"))
    assert spec.object_front and head_names(spec)[-2:] == ("object_front", "front_gain")
    with pytest.raises(Exception, match="object_front_weight needs"):  # transformers wraps the ValueError
        Loc3rConfig(**{**TINY_MODEL, "object_front_weight": 0.5})
    with pytest.raises(Exception, match="front_offset needs"):  # offsets along fronts need both
        Loc3rConfig(**{**FRONT_MODEL, "front_offset": True})


def test_facing_rules_follow_the_generators_placements(world_by_kind):
    """front_rule_weight's targets: "in front of" faces against a front, a chair's seat along it."""
    seen = set()
    for kind in world_by_kind:
        seen |= _facing_rules_checked(SceneClipDataset(world_by_kind[kind], num_frames=4, patch_grid=(4, 4)))
    assert seen == {0, 1, 2}


def _facing_rules_checked(ds: SceneClipDataset) -> set[int]:
    seen = set()
    for index in range(len(ds)):
        row = ds[index]
        rule = int(row["facing_rule"])
        if row["placement"] is None:
            assert rule == -1
            continue
        text = row["situation_text"]
        expected = 1 if row["placement"] == "in_front_of" else 2 if text.startswith("I am sitting on the chair") else 0
        assert rule == expected, (text, rule)
        seen.add(rule)
    return seen


def test_a_gated_front_bump_is_off_for_sentences_that_face_a_place():
    torch.manual_seed(0)
    pointer = SituationPointer(hidden=8, dim=8, places=1, fronts=True, gated=True)
    weights = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    fronts = torch.tensor([[[0.0, 2.0], [5.0, 0.0]]])
    state = torch.zeros(1, 8)
    with torch.no_grad():
        pointer.front_gain.weight.zero_()
        for rule, expected in ((0, [0.0, 0.0]), (1, [-2.0, -2.0]), (2, [0.0, 2.0])):
            pointer.front_gain.bias.copy_(torch.nn.functional.one_hot(torch.tensor(rule), 3) * 50.0)
            np.testing.assert_allclose(pointer.front_strengths(state)[0].numpy(), expected, atol=1e-4)
        pointer.front_gain.bias.copy_(torch.tensor([50.0, 0.0, 0.0]))
        assert pointer.front_bump(state, pointed_fronts(weights, fronts), 24).abs().max() < 1e-4
    strengths = pointer.front_strengths(torch.randn(3, 8, requires_grad=True))
    strengths.sum().backward()
    assert pointer.rule_gains.grad is not None and pointer.front_gain.weight.grad is None  # the rule is detached


def test_a_gated_front_model_learns_its_rules(world_by_kind, tmp_path):
    model, tokenizer, history = _overfit_tiny_model(world_by_kind["walk"], tmp_path,
                                                    {**FRONT_MODEL, "front_rule_weight": 0.5})
    first, last = history[0]["facing_rule"], np.mean([h["facing_rule"] for h in history[-3:]])
    assert last < 0.5 * first, (first, last)
    spec = ModelSpec.from_checkpoint(save_model(model, tokenizer, tmp_path / "model"))
    assert spec.object_front and head_names(spec)[-2:] == ("object_front", "front_gain")
    with pytest.raises(Exception, match="front_rule_weight needs"):
        Loc3rConfig(**{**TINY_MODEL, "situation_readout": "pointer", "front_rule_weight": 0.5})
