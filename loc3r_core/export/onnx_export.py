"""Export a checkpoint's runtime graphs (see runtime.graphs) to ONNX with the dynamo exporter.

The folder holds vision/camera/embed/decoder/heads .onnx (and answer.onnx for a model with an
answer readout), the tokenizer, and runtime.json:
the model spec (with the checkpoint's hash), the precision, and each file's hash so that the
ONNX backend refuses a folder whose files do not belong together or to the checkpoint asked for.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from loc3r_core.atomic import atomic_path
from loc3r_core.errors import UsageError
from loc3r_core.model.checkpoint import load_model
from loc3r_core.model.folder import SHIPPED_MODEL
from loc3r_core.readout import answer_read_width, ego_feature_count
from loc3r_core.runtime.backend import answer_outputs, empty_cache, graph_names, head_names
from loc3r_core.runtime.graphs import model_graphs
from loc3r_core.runtime.spec import ModelSpec, file_sha256

PRECISIONS = ("fp32", "fp16")
MANIFEST = "runtime.json"


@dataclass(frozen=True)
class GraphIO:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]  # input name -> {axis: dim name}


GRAPH_IO = {
    "vision": GraphIO(("images",), ("tokens",), {"images": {0: "frames"}}),
    "camera": GraphIO(("prior", "valid"), ("camera",), {"prior": {0: "frames"}, "valid": {0: "frames"}}),
    "embed": GraphIO(("ids",), ("embeddings",), {"ids": {0: "tokens"}}),
    "decoder": GraphIO(("embeds", "past_keys", "past_values"), ("hidden", "keys", "values"),
                       {"embeds": {1: "tokens"}, "past_keys": {3: "past"}, "past_values": {3: "past"}}),
}


def graph_io(spec: ModelSpec) -> dict[str, GraphIO]:
    return {**GRAPH_IO, "heads": GraphIO(("hidden",), head_names(spec), {"hidden": {0: "tokens"}}),
            "answer": GraphIO(("reads",), answer_outputs(spec), {"reads": {0: "rows"}})}


def example_inputs(spec: ModelSpec) -> dict[str, tuple[torch.Tensor, ...]]:
    """Inputs whose dynamic axes have sizes > 1 and differ from each other (so none is specialised)."""
    keys, values = (torch.from_numpy(np.repeat(a, 7, axis=3) + 0.1) for a in empty_cache(spec))
    frames, tokens = 3, 5
    return {
        "vision": (torch.rand(frames, 3, spec.image_size, spec.image_size),),
        "camera": (torch.randn(frames, 4), torch.tensor([True, False, True])),
        "embed": (torch.arange(tokens, dtype=torch.int64),),
        "decoder": (torch.randn(1, tokens, spec.hidden_size), keys.contiguous(), values.contiguous()),
        "heads": (torch.randn(tokens, spec.hidden_size),),
        "answer": (torch.rand(2, answer_read_size(spec)),),
    }


def answer_read_size(spec: ModelSpec) -> int:
    """Features per row of the answer graph's input (readout.answer_reads)."""
    return spec.answer_readout_heads * answer_read_width(ego_feature_count(spec.answer_sector_features),
                                                         len(spec.label_names), spec.answer_spread_reads)


def export_checkpoint(checkpoint: Path | None, out: Path, precision: str = "fp32") -> dict:
    """Write the ONNX folder atomically; returns its manifest."""
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    folder = Path(checkpoint) if checkpoint is not None else SHIPPED_MODEL
    model, _ = load_model(folder)
    spec = ModelSpec.from_checkpoint(folder)
    graphs = model_graphs(model.half() if precision == "fp16" else model)
    examples = example_inputs(spec)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name in graph_names(spec):
            export_graph(graphs[name], examples[name], graph_io(spec)[name], tmp / f"{name}.onnx")
        shutil.copyfile(folder / "tokenizer.json", tmp / "tokenizer.json")
        manifest = {"format": 1, "precision": precision, "spec": spec.to_json(),
                    "files": {f"{name}.onnx": file_sha256(tmp / f"{name}.onnx") for name in graph_names(spec)},
                    "torch": torch.__version__, "onnx": onnx.__version__}
        manifest["files"]["tokenizer.json"] = file_sha256(tmp / "tokenizer.json")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def export_graph(graph: torch.nn.Module, inputs: tuple, io: GraphIO, path: Path) -> None:
    dynamic_shapes = {name: dict.fromkeys(io.dynamic.get(name, {}), torch.export.Dim.DYNAMIC)
                      for name in io.inputs}
    # the exporter narrates each stage on stdout and warns about torchvision; the CLI prints a summary
    with warnings.catch_warnings(), contextlib.redirect_stdout(io_buffer()), quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(graph, inputs, dynamo=True, input_names=list(io.inputs),
                                    output_names=list(io.outputs), dynamic_shapes=dynamic_shapes,
                                    verbose=False, optimize=True)
    proto = program.model_proto
    for value in proto.graph.input:  # readable dim names instead of s0, s1, ...
        for axis, dim_name in io.dynamic.get(value.name, {}).items():
            value.type.tensor_type.shape.dim[axis].dim_param = dim_name
    onnx.save_model(proto, str(path))
    onnx.checker.check_model(str(path))


def io_buffer() -> io.StringIO:
    return io.StringIO()


class quiet_exporter:  # noqa: N801 (used like contextlib's lower-case managers)
    """The dynamo exporter logs each stage at WARNING; the CLI prints its own summary."""

    def __enter__(self) -> None:
        names = ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")
        self.loggers = [logging.getLogger(name) for name in names]
        self.levels = [logger.level for logger in self.loggers]
        for logger in self.loggers:
            logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for logger, level in zip(self.loggers, self.levels, strict=True):
            logger.setLevel(level)
