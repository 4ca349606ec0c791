"""The SigLIP vision tower, optionally with a convolutional stem in place of its patch projection.

SigLIP embeds each patch with one linear projection (a convolution as large as the patch). Trained
from scratch on a few tens of thousands of frames, a ViT learns faster and further when the patch
embedding is a few small stride-2 convolutions instead ("Early convolutions help transformers see
better", Xiao et al. 2021; results/experiments.md, P44). The stem is switched on by `conv_stem: true`
in the tower's own config (it travels in the tower folder's config.json and from there into the
video model's `vision_config`), so a tower saved with it is rebuilt with it.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoModel, PreTrainedConfig, PreTrainedModel

from loc3r_core.errors import UsageError


class ConvStem(nn.Module):
    """log2(patch) 3x3 stride-2 convolutions, widening to the tower's width: one output per patch,
    exactly where the patch projection put it."""

    def __init__(self, hidden_size: int, patch_size: int) -> None:
        super().__init__()
        stages = patch_size.bit_length() - 1
        if patch_size != 2 ** stages or stages < 2:
            raise UsageError(f"a conv stem needs a power-of-two patch_size of at least 4, not {patch_size}")
        widths = [3] + [hidden_size // 2 ** (stages - 1 - i) for i in range(stages - 1)]
        layers: list[nn.Module] = []
        for width_in, width_out in pairwise(widths):
            layers += [nn.Conv2d(width_in, width_out, 3, stride=2, padding=1), nn.GroupNorm(1, width_out), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(widths[-1], hidden_size, 3, stride=2, padding=1)

    @property
    def weight(self) -> torch.Tensor:
        """SiglipVisionEmbeddings casts the pixels to its patch projection's weight dtype."""
        return self.out.weight

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(pixels))


def uses_conv_stem(config: PreTrainedConfig) -> bool:
    return bool(getattr(config, "conv_stem", False))


def build_vision_tower(config: PreTrainedConfig) -> PreTrainedModel:
    """A fresh tower for this vision config (SigLIP's, with the stem where the config asks)."""
    tower = AutoModel.from_config(config)
    if uses_conv_stem(config):
        tower.embeddings.patch_embedding = ConvStem(config.hidden_size, config.patch_size)
    return tower


def load_vision_tower(path: str | Path, config: PreTrainedConfig) -> PreTrainedModel:
    """A saved tower (save_pretrained folder). AutoModel.from_pretrained would build the plain
    patch projection and drop a stem's weights, so a stem tower is built here and loaded strictly."""
    if not uses_conv_stem(config):
        return AutoModel.from_pretrained(path, config=config)
    weights = Path(path) / "model.safetensors"
    if not weights.is_file():
        raise UsageError(f"no model.safetensors in the vision tower folder {path}")
    tower = build_vision_tower(config)
    try:
        tower.load_state_dict(load_file(weights), strict=True)
    except RuntimeError as exc:  # e.g. a plain tower's weights under a config that asks for the stem
        raise UsageError(f"the vision tower in {path} does not match its config (conv_stem: true): "
                         f"{str(exc).strip().splitlines()[-1].strip()}") from exc
    return tower
