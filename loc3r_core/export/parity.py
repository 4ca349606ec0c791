"""ONNX Runtime against PyTorch on the same inputs, graph by graph: the export's check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loc3r_core.export.onnx_export import answer_read_size
from loc3r_core.runtime.backend import empty_cache
from loc3r_core.runtime.onnx_backend import OnnxBackend
from loc3r_core.runtime.torch_backend import TorchBackend


def check_parity(checkpoint: Path | None, export: Path, seed: int = 0) -> dict[str, float]:
    """Max absolute difference per graph on random inputs (a 40-token memory, then 6 new tokens)."""
    torch_backend, onnx_backend = TorchBackend(checkpoint), OnnxBackend(export, checkpoint=checkpoint)
    spec = torch_backend.spec
    rng = np.random.default_rng(seed)
    images = rng.random((3, 3, spec.image_size, spec.image_size), dtype=np.float32)
    prior = rng.standard_normal((3, 4)).astype(np.float32)
    valid = np.array([True, False, True])
    ids = rng.integers(0, 50, 7)
    memory = rng.standard_normal((40, spec.hidden_size)).astype(np.float32)
    new = rng.standard_normal((6, spec.hidden_size)).astype(np.float32)
    errors = {}

    def compare(name: str, a: np.ndarray, b: np.ndarray) -> None:
        errors[name] = max(errors.get(name, 0.0), float(np.abs(a - b).max()))

    compare("vision", torch_backend.encode_images(images), onnx_backend.encode_images(images))
    compare("camera", torch_backend.camera_tokens(prior, valid), onnx_backend.camera_tokens(prior, valid))
    compare("embed", torch_backend.embed_tokens(ids), onnx_backend.embed_tokens(ids))
    _, cache = torch_backend.decode(memory, empty_cache(spec))
    (hidden_t, cache_t), (hidden_o, cache_o) = torch_backend.decode(new, cache), onnx_backend.decode(new, cache)
    compare("decoder", hidden_t, hidden_o)
    compare("decoder", cache_t[0], cache_o[0])
    heads_t, heads_o = torch_backend.heads(hidden_t), onnx_backend.heads(hidden_t)
    for name in heads_t:
        compare("heads", heads_t[name], heads_o[name])
    if spec.answer_readout_heads:
        reads = rng.random((2, answer_read_size(spec))).astype(np.float32)
        answer_t, answer_o = torch_backend.answer(reads), onnx_backend.answer(reads)
        for name in answer_t:
            compare("answer", answer_t[name], answer_o[name])
    return errors
