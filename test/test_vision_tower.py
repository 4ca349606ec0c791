"""The vision tower's convolutional stem (P44): same patch grid, saved and loaded with its weights."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig

from conftest import TINY_MODEL, tiny_train_config
from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.errors import UsageError
from loc3r_core.export.onnx_export import export_checkpoint
from loc3r_core.export.parity import check_parity
from loc3r_core.model.checkpoint import save_model
from loc3r_core.model.configuration_loc3r import Loc3rConfig, config_kwargs
from loc3r_core.model.modeling_loc3r import Loc3rForSpatialQA, build_model
from loc3r_core.model.vision_tower import ConvStem, build_vision_tower, load_vision_tower
from loc3r_core.training.config import TrainConfig
from loc3r_core.training.loop import create_model

PIXELS = torch.rand(2, 3, 32, 32) * 2.0 - 1.0


def tiny_vision(**changes: object):
    return AutoConfig.for_model(**{**TINY_MODEL["vision_config"], **changes})


def test_the_stem_gives_the_patch_projections_grid_and_only_where_asked():
    plain, stem = build_vision_tower(tiny_vision()), build_vision_tower(tiny_vision(conv_stem=True))
    assert not isinstance(plain.embeddings.patch_embedding, ConvStem)
    assert isinstance(stem.embeddings.patch_embedding, ConvStem)
    assert stem(pixel_values=PIXELS).last_hidden_state.shape == plain(pixel_values=PIXELS).last_hidden_state.shape
    with pytest.raises(UsageError, match="power-of-two patch_size"):
        ConvStem(32, 12)


def test_a_stem_tower_reloads_with_its_weights_alone_and_inside_the_video_model(tmp_path):
    torch.manual_seed(0)
    tower = build_vision_tower(tiny_vision(conv_stem=True)).eval()
    tower.save_pretrained(tmp_path / "tower")
    saved = AutoConfig.from_pretrained(tmp_path / "tower")
    assert saved.conv_stem, "the stem travels in the tower folder's config"
    expected = tower(pixel_values=PIXELS).last_hidden_state
    loaded = load_vision_tower(tmp_path / "tower", saved).eval()
    assert torch.equal(loaded(pixel_values=PIXELS).last_hidden_state, expected)

    config = Loc3rConfig(**config_kwargs({**TINY_MODEL, "vision_config": saved.to_dict(),
                                          "vision_tower_path": str(tmp_path / "tower")}))
    model = build_model(config).eval()
    assert torch.equal(model.tower_features((PIXELS + 1.0) / 2.0), expected)
    model.save_pretrained(tmp_path / "model")
    again = Loc3rForSpatialQA.from_pretrained(tmp_path / "model").eval()
    assert torch.allclose(again.tower_features((PIXELS + 1.0) / 2.0), expected, atol=1e-6)


def test_a_plain_towers_weights_under_a_stem_config_are_refused(tmp_path):
    build_vision_tower(tiny_vision()).save_pretrained(tmp_path / "tower")
    with pytest.raises(UsageError, match="does not match its config"):
        load_vision_tower(tmp_path / "tower", tiny_vision(conv_stem=True))


def test_a_stem_model_exports_to_onnx_with_parity(world_by_kind, tmp_path):
    model = {**TINY_MODEL, "vision_config": {**TINY_MODEL["vision_config"], "conv_stem": True}}
    config = TrainConfig.from_dict(tiny_train_config(world_by_kind["walk"], tmp_path / "run", model=model))
    probe = Loc3rConfig(**config_kwargs(model))
    dataset = SceneClipDataset(world_by_kind["walk"], num_frames=4, patch_grid=probe.patch_grid,
                               image_size=probe.vision_config.image_size)
    torch.manual_seed(0)
    folder = save_model(*create_model(config, dataset), tmp_path / "model")
    assert isinstance(Loc3rForSpatialQA.from_pretrained(folder).vision_tower.embeddings.patch_embedding, ConvStem)
    export_checkpoint(folder, tmp_path / "onnx")
    errors = check_parity(folder, tmp_path / "onnx")
    assert max(errors.values()) < 1e-4, errors
