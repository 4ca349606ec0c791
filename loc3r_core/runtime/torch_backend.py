"""The PyTorch backend: the model's graphs run eagerly on a checkpoint folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from loc3r_core.model.checkpoint import load_model
from loc3r_core.model.folder import SHIPPED_MODEL
from loc3r_core.runtime.backend import KVCache, TextCodec, answer_outputs, head_names
from loc3r_core.runtime.graphs import model_graphs
from loc3r_core.runtime.spec import ModelSpec


class TorchBackend:
    name = "torch"

    def __init__(self, checkpoint: Path | None = None, device: str = "cpu") -> None:
        folder = Path(checkpoint) if checkpoint is not None else SHIPPED_MODEL
        model, _ = load_model(folder)
        self.spec = ModelSpec.from_checkpoint(folder)
        self.text = TextCodec(folder / "tokenizer.json")
        self.device = torch.device(device)
        self.graphs = {name: graph.to(self.device) for name, graph in model_graphs(model).items()}

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    @torch.inference_mode()
    def encode_images(self, images: np.ndarray) -> np.ndarray:
        return self.graphs["vision"](self._tensor(images.astype(np.float32))).cpu().numpy()

    @torch.inference_mode()
    def camera_tokens(self, prior: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return self.graphs["camera"](self._tensor(prior.astype(np.float32)), self._tensor(valid.astype(bool))
                                     ).cpu().numpy()

    @torch.inference_mode()
    def embed_tokens(self, ids: np.ndarray) -> np.ndarray:
        return self.graphs["embed"](self._tensor(ids.astype(np.int64))).cpu().numpy()

    @torch.inference_mode()
    def decode(self, embeds: np.ndarray, past: KVCache) -> tuple[np.ndarray, KVCache]:
        hidden, keys, values = self.graphs["decoder"](self._tensor(embeds[None].astype(np.float32)),
                                                      self._tensor(past[0]), self._tensor(past[1]))
        return hidden[0].cpu().numpy(), (keys.cpu().numpy(), values.cpu().numpy())

    @torch.inference_mode()
    def heads(self, hidden: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.graphs["heads"](self._tensor(hidden.astype(np.float32)))
        return {name: value.cpu().numpy() for name, value in zip(head_names(self.spec), outputs, strict=True)}

    @torch.inference_mode()
    def answer(self, reads: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.graphs["answer"](self._tensor(reads.astype(np.float32)))
        return {name: value.cpu().numpy() for name, value in zip(answer_outputs(self.spec), outputs, strict=True)}
