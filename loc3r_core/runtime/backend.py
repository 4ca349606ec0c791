"""The interface both inference backends give the session, in numpy.

See loc3r_core.runtime.graphs for what each call computes. A key/value cache is a pair of
arrays (layers, 1, kv heads, length, head dim); the empty cache has length 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from loc3r_core.errors import DataError
from loc3r_core.runtime.spec import ModelSpec

KVCache = tuple[np.ndarray, np.ndarray]
HEAD_NAMES = ("logits", "bev", "semantic_logits", "ego", "pos", "ori_logits")  # what heads() returns
POINTER_HEAD_NAMES = ("pointer_key", "pointer_query")  # and after them, for pointer-readout models
GRAPHS = ("vision", "camera", "embed", "decoder", "heads")  # every model's graphs


def graph_names(spec: ModelSpec) -> tuple[str, ...]:
    """The graphs this model runs: every model's, and "answer" where answers read the map
    (Loc3rConfig.answer_readout_heads: reads (R, features) -> answer_outputs)."""
    return GRAPHS + (("answer",) if spec.answer_readout_heads else ())


def answer_outputs(spec: ModelSpec) -> tuple[str, ...]:
    """The answer graph's outputs: the context (R, H), and the copy path's label vote (R, vocab)."""
    return ("context",) + (("copy",) if spec.answer_copy_labels else ())


def head_names(spec: ModelSpec) -> tuple[str, ...]:
    """The heads graph's outputs, in order, for this model (runtime.graphs.HeadsGraph)."""
    pointer = () if spec.situation_readout != "pointer" else (
        POINTER_HEAD_NAMES + (("pointer_query_second",) if spec.pointer_places == 2 else ())
        + (("pos_relative",) if spec.relative_offset else ())
        + (("object_centre_offset",) if spec.object_centre else ())
        + (("object_front", "front_gain") if spec.object_front else ()))
    answer = (("answer_query", "answer_gate") if spec.answer_readout_heads else ()) \
        + (("answer_copy_gate",) if spec.answer_copy_labels else ())
    return HEAD_NAMES + pointer + (("map_head",) if spec.map_subdivision > 1 else ()) + answer


class Backend(Protocol):
    name: str
    spec: ModelSpec
    text: TextCodec

    def encode_images(self, images: np.ndarray) -> np.ndarray: ...

    def camera_tokens(self, prior: np.ndarray, valid: np.ndarray) -> np.ndarray: ...

    def embed_tokens(self, ids: np.ndarray) -> np.ndarray: ...

    def decode(self, embeds: np.ndarray, past: KVCache) -> tuple[np.ndarray, KVCache]: ...

    def heads(self, hidden: np.ndarray) -> dict[str, np.ndarray]: ...

    def answer(self, reads: np.ndarray) -> dict[str, np.ndarray]: ...


def empty_cache(spec: ModelSpec) -> KVCache:
    shape = (spec.num_layers, 1, spec.num_kv_heads, 0, spec.head_dim)
    return np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.float32)


class TextCodec:
    """The model's tokenizer through the `tokenizers` library alone (no transformers, no torch)."""

    def __init__(self, path: Path) -> None:
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a plain Exception for a bad file
            raise DataError(f"{path} is not a tokenizer file: {exc}") from None

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()
