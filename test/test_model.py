"""The model's parts: spatial losses and readouts, tokenizer, prior, save/load, pretrained backbones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

from conftest import TINY_MODEL, overfit_one_batch, tiny_train_config
from loc3r_core.data.dataset import PackedClipDataset, SceneClipDataset
from loc3r_core.model.checkpoint import load_model, save_model
from loc3r_core.model.configuration_loc3r import Loc3rConfig
from loc3r_core.model.folder import CheckpointError
from loc3r_core.model.modeling_loc3r import build_model, camera_to_clip, frame_poses, merge_patches, turn_to_clip
from loc3r_core.model.prior import drifted
from loc3r_core.model.spatial import bin_centres, gaussian_nll, wrapped_gaussian_target, yaw_kl
from loc3r_core.model.tokenizer import POS, SPECIAL_TOKENS, answer_text, prompt_text, train_tokenizer
from loc3r_core.readout import circular_soft_argmax
from loc3r_core.training.batch import collate, collate_packed, model_inputs
from loc3r_core.training.config import TrainConfig
from loc3r_core.training.loop import create_model


@pytest.mark.parametrize("yaw_deg", [-179.0, -95.5, -3.0, 0.0, 7.3, 44.9, 133.0, 179.9])
def test_soft_argmax_recovers_a_known_yaw(yaw_deg):
    yaw = torch.tensor(math.radians(yaw_deg))
    logits = wrapped_gaussian_target(yaw, 36, math.radians(10)).log()
    recovered, concentration = circular_soft_argmax(logits.numpy())
    error = math.degrees(abs((float(recovered) - yaw.item() + math.pi) % (2 * math.pi) - math.pi))
    assert error < 0.5, f"{yaw_deg} read back as {math.degrees(recovered):.2f}"
    assert 0.9 < concentration <= 1.0


def test_yaw_target_wraps_and_kl_is_zero_at_the_target():
    target = wrapped_gaussian_target(torch.tensor(math.pi - 0.01), 36, math.radians(10))
    assert torch.isclose(target.sum(), torch.tensor(1.0))
    assert target[0] > 0.2 and target[-1] > 0.2  # mass on both sides of the +-pi seam
    assert yaw_kl(target.log(), torch.tensor(math.pi - 0.01), math.radians(10)) < 1e-6
    assert yaw_kl(torch.zeros(36), torch.tensor(0.3), math.radians(10)) > 0.5
    assert bin_centres(36)[0] == pytest.approx(-math.pi + math.pi / 36)


def test_gaussian_nll_is_the_method_formula():
    raw = torch.tensor([[1.0, -2.0, math.log(0.5), math.log(2.0)]])
    target = torch.tensor([[2.0, 0.0]])
    by_hand = 0.5 * ((1.0 / 0.5) ** 2 + math.log(0.25) + (2.0 / 2.0) ** 2 + math.log(4.0))
    assert gaussian_nll(raw, target).item() == pytest.approx(by_hand, rel=1e-6)
    valid = torch.tensor([False])
    assert gaussian_nll(raw, target, valid).item() == 0.0


def test_camera_frame_points_are_placed_and_fronts_turned_by_their_frames_ego_pose():
    """bev_frame "camera": a point 2 m ahead of a camera at (1, 1) facing +y lies at (1, 3); frame 0
    is the origin whatever its ego head says; sigmas are left as given."""
    bins = 36
    ego = torch.zeros(1, 2, 4 + bins)
    ego[..., :2] = torch.tensor([[5.0, 5.0], [1.0, 1.0]])
    ego[..., 4:] = wrapped_gaussian_target(torch.tensor([0.7, math.pi / 2]), bins, math.radians(5)).log()
    poses = frame_poses(ego)
    np.testing.assert_allclose(poses[0, 0].numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(poses[0, 1].numpy(), [1.0, 1.0, math.pi / 2], atol=1e-3)
    raw = torch.tensor([[[[2.0, 0.0, -1.0, 0.5]], [[2.0, 0.0, -1.0, 0.5]]]])  # (B, F, P, 4)
    placed = camera_to_clip(raw, poses)
    np.testing.assert_allclose(placed[0, :, 0].numpy(), [[2.0, 0.0, -1.0, 0.5], [1.0, 3.0, -1.0, 0.5]], atol=1e-3)
    sub = camera_to_clip(raw[:, :, :, None].expand(1, 2, 1, 3, 4), poses)  # sub-patch points: one pose per frame
    np.testing.assert_allclose(sub[0, 1, 0].numpy(), np.tile([1.0, 3.0, -1.0, 0.5], (3, 1)), atol=1e-3)
    fronts = turn_to_clip(torch.tensor([[[[0.0, 2.0]], [[0.0, 2.0]]]]), poses)  # directions turn, never shift
    np.testing.assert_allclose(fronts[0, :, 0].numpy(), [[0.0, 2.0], [-2.0, 0.0]], atol=1e-3)
    with pytest.raises(Exception, match="bev_frame must be one of"):  # transformers wraps the ValueError
        Loc3rConfig(**{**TINY_MODEL, "bev_frame": "world"})


def test_merged_patches_keep_each_block_together_in_the_token_grid_order():
    """vision_merge 2 on a 4 x 4 tower grid: LM token t holds the tower patches of block t (row-major
    blocks, each block's patches row-major), so per-token targets on the 2 x 2 grid stay aligned."""
    side, channels = 4, 3
    index = torch.arange(side * side, dtype=torch.float32)
    features = torch.stack([index, index + 100, index + 200], dim=-1)[None]  # (1, 16, 3): patch id per channel
    merged = merge_patches(features, 2)
    assert merged.shape == (1, 4, 4 * channels)
    first_channel = merged[0, :, ::channels]
    np.testing.assert_array_equal(first_channel.numpy(), [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])
    assert merge_patches(features, 1) is features
    config = Loc3rConfig(**{**TINY_MODEL, "vision_merge": 2})
    assert config.patch_grid == (2, 2) and config.patches_per_frame == 4
    model = build_model(config).eval()
    with torch.no_grad():
        tokens = model.vision_tokens(torch.rand(3, 3, 32, 32))
    assert tokens.shape == (3, 4, config.text_config.hidden_size)
    with pytest.raises(Exception, match="vision_merge must divide"):
        Loc3rConfig(**{**TINY_MODEL, "vision_merge": 3})


def test_drift_leaves_frame_zero_exact_and_grows_along_the_path():
    steps = torch.zeros(64, 10, 3)
    steps[:, :, 0] = torch.arange(10.0)  # 1 m per frame along x
    noisy = drifted(steps, torch.Generator().manual_seed(0), drift_per_m=0.05, yaw_drift_deg=1.0)
    error = (noisy - steps)[..., :2].norm(dim=-1)
    assert torch.all(noisy[:, 0] == steps[:, 0])
    assert error[:, 9].mean() > 2 * error[:, 1].mean() > 0


def test_tokenizer_round_trips_any_text_and_keeps_special_tokens_whole():
    tokenizer = train_tokenizer(["I am standing next to the bed.", "How far is the door?", "1.5 m"] * 20, 300)
    for text in ["Is the bed on my left?", "2.0 m", "héllo ☃ \u00ff", "a" * 50]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    ids = tokenizer(prompt_text("I am here.", "Where is it?") + answer_text("left"))["input_ids"]
    for token in SPECIAL_TOKENS[1:]:  # all but <pad>, plus the prompt's own
        if token in (POS, "<eos>", "<situation>", "<question>", "<answer>"):
            assert ids.count(tokenizer.convert_tokens_to_ids(token)) == 1


@pytest.fixture(scope="module")
def tiny(world_by_kind, tmp_path_factory):
    """A fresh tiny model, its tokenizer and a batch from a small world."""
    config = TrainConfig.from_dict(tiny_train_config(world_by_kind["walk"], tmp_path_factory.mktemp("run")))
    probe = Loc3rConfig(**TINY_MODEL)
    dataset = SceneClipDataset(world_by_kind["walk"], num_frames=4, patch_grid=probe.patch_grid,
                               image_size=probe.vision_config.image_size)
    torch.manual_seed(0)
    model, tokenizer = create_model(config, dataset)
    batch = collate([dataset[i] for i in range(4)], tokenizer, model.config.patches_per_frame)
    return model, tokenizer, batch


def test_save_and_load_round_trip_bit_exactly(tiny, tmp_path):
    model, tokenizer, batch = tiny
    save_model(model, tokenizer, tmp_path / "m")
    loaded, loaded_tokenizer = load_model(tmp_path / "m")
    original = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    model.eval()
    with torch.no_grad():
        a = model(**model_inputs(batch))
        b = loaded(**model_inputs(batch))
    assert torch.equal(a.logits, b.logits) and torch.equal(a.pos, b.pos) and torch.equal(a.bev, b.bev)


def test_the_camera_prior_changes_the_camera_token_only_when_used(tiny):
    model, _, batch = tiny
    inputs = model_inputs(batch)
    images, prior = inputs["images"][0], inputs["prior"][0]
    with torch.no_grad():
        with_prior = model.encode_frames(images, prior)
        moved = model.encode_frames(images, prior + 1.0)
        without = model.encode_frames(images, prior, torch.zeros(len(images), dtype=torch.bool))
        without_moved = model.encode_frames(images, prior + 1.0, torch.zeros(len(images), dtype=torch.bool))
    assert not torch.allclose(with_prior[:, 0], moved[:, 0])
    assert torch.equal(with_prior[:, 1:], moved[:, 1:])  # vision tokens do not see the prior
    assert torch.equal(without, without_moved)
    assert torch.allclose(without[:, 0], model.no_prior.expand_as(without[:, 0]))


def test_every_loss_term_decreases_when_overfitting_one_batch(tiny):
    model, _, batch = tiny
    trained = type(model)(model.config)
    trained.load_state_dict(model.state_dict())
    history = overfit_one_batch(trained, batch, steps=40)
    assert set(history[0]) == {"ce", "bev", "semantic", "ego_pos", "ego_yaw", "pos", "ori"}
    for term in history[0]:
        first, last = history[0][term], np.mean([h[term] for h in history[-3:]])
        assert last < first - 0.1 * abs(first) - 0.05, f"{term}: {first:.3f} -> {last:.3f}"


def test_backbones_load_from_local_pretrained_folders(tmp_path):
    vision = SiglipVisionModel(SiglipVisionConfig(**{k: v for k, v in TINY_MODEL["vision_config"].items()
                                                     if k != "model_type"}))
    lm = Qwen2ForCausalLM(Qwen2Config(**{**{k: v for k, v in TINY_MODEL["text_config"].items()
                                            if k != "model_type"}, "vocab_size": 300}))
    vision.save_pretrained(tmp_path / "vision")
    lm.save_pretrained(tmp_path / "lm")
    config = Loc3rConfig(vision_config=vision.config.to_dict(), text_config=lm.config.to_dict(),
                         vision_tower_path=str(tmp_path / "vision"), language_model_path=str(tmp_path / "lm"),
                         freeze_vision_tower=True)
    model = build_model(config)
    for name, tensor in vision.state_dict().items():
        assert torch.equal(model.vision_tower.state_dict()[name], tensor), name
    for name, tensor in lm.state_dict().items():
        assert torch.equal(model.language_model.state_dict()[name], tensor), name
    assert not any(p.requires_grad for p in model.vision_tower.parameters())


def test_missing_and_damaged_checkpoints_are_clear_errors(tiny, tmp_path):
    model, tokenizer, _ = tiny
    with pytest.raises(CheckpointError, match="no model folder"):
        load_model(tmp_path / "absent")
    folder = save_model(model, tokenizer, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"model\.safetensors cannot be loaded"):
        load_model(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"missing config\.json"):
        load_model(folder)


def test_packed_rows_read_their_clip_like_a_plain_batch_and_never_each_other(world_by_kind, tiny):
    model, tokenizer, _ = tiny
    model.eval()
    config = model.config
    dataset = PackedClipDataset(world_by_kind["walk"], 3, num_frames=4, patch_grid=config.patch_grid,
                                image_size=config.vision_config.image_size)
    items = [dataset[0], dataset[1]]
    packed = collate_packed(items, tokenizer, config.patches_per_frame)
    flat = collate([{k: v for k, v in item.items() if k != "rows"} | row for item in items for row in item["rows"]],
                   tokenizer, config.patches_per_frame)
    assert packed["row_clip"].tolist() == [0] * len(items[0]["rows"]) + [1] * len(items[1]["rows"])
    with torch.no_grad():
        a = model(**model_inputs(packed), labels=packed["labels"], targets=packed["targets"])
        b = model(**model_inputs(flat), labels=flat["labels"], targets=flat["targets"])
    video = packed["input_ids"].shape[1]
    width = packed["row_ids"].shape[1]
    assert torch.allclose(a.logits, b.logits[:, video:video + width], atol=1e-4)
    assert torch.allclose(a.pos, b.pos, atol=1e-5) and torch.allclose(a.ori_logits, b.ori_logits, atol=1e-5)
    for name in a.losses:  # the clip terms average the same clips, the row terms the same rows
        assert a.losses[name].item() == pytest.approx(b.losses[name].item(), rel=1e-4, abs=1e-5), name

    # a row whose situation says something else moves only itself
    changed = {**packed, "row_ids": packed["row_ids"].clone()}
    words = int((packed["row_ids"][0] == config.pos_token_id).int().argmax())  # the situation's tokens
    changed["row_ids"][0, :words] = packed["row_ids"][0, :words].roll(1)
    with torch.no_grad():
        c = model(**model_inputs(changed))
    assert not torch.allclose(c.pos[0], a.pos[0])
    assert torch.equal(c.pos[1:], a.pos[1:]) and torch.equal(c.logits[1:], a.logits[1:])
