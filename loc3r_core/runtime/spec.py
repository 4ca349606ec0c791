"""What the runtime must know about a model, read from JSON: no torch, no transformers.

(A pointer-readout model adds one scalar weight, read from its safetensors file with numpy.)

Both a checkpoint folder (its config.json) and an ONNX export (its runtime.json, written by
`loc3r export`) give one; the export also names the checkpoint it came from, so files from
another checkpoint are caught before they answer anything.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import numpy as np
from safetensors import safe_open

from loc3r_core.errors import DataError
from loc3r_core.world.vocabulary import PATCH_CLASSES

POINTER_LOG_KAPPA = "pointer.log_kappa"  # model.modeling_loc3r.SituationPointer's parameter


@dataclass(frozen=True)
class ModelSpec:
    image_size: int
    patches_per_frame: int
    hidden_size: int
    num_layers: int
    num_kv_heads: int
    head_dim: int
    max_positions: int
    num_yaw_bins: int
    image_token_id: int
    frame_token_id: int
    pos_token_id: int
    ori_token_id: int
    eos_token_id: int
    label_names: tuple[str, ...]
    use_camera_prior: bool
    checkpoint_sha256: str  # of model.safetensors: which weights these are
    # Added with the pointer readout; exports written before it are "mlp" models.
    situation_readout: str = "mlp"  # or "pointer" (Loc3rConfig.situation_readout)
    pointer_kappa: float = 0.0  # the pointer's yaw-bump strength, a weight the session needs
    pointer_places: int = 1  # Loc3rConfig.pointer_places: <Pos> points at this many places
    relative_offset: bool = False  # Loc3rConfig.relative_offset
    object_centre: bool = False  # the pointer averages object centres (Loc3rConfig.object_centre_weight > 0)
    object_front: bool = False  # the yaw reads the pointed objects' fronts (Loc3rConfig.object_front_weight > 0)
    front_offset: bool = False  # Loc3rConfig.front_offset: the position also moves along <Pos>'s pointed front
    map_subdivision: int = 1  # Loc3rConfig.map_subdivision: the map gets s^2 points per token
    bev_frame: str = "clip"  # Loc3rConfig.bev_frame: "camera" points are placed by their keyframe's pose
    answer_readout_heads: int = 0  # Loc3rConfig.answer_readout_heads: answers read the map from the asker (0: no)
    answer_sector_features: bool = False  # Loc3rConfig.answer_sector_features: its reads include the sectors
    answer_spread_reads: bool = False  # Loc3rConfig.answer_spread_reads: ... and their places' spread
    answer_copy_labels: bool = False  # Loc3rConfig.answer_copy_labels: the first head votes on label tokens

    @classmethod
    def from_checkpoint(cls, folder: Path) -> ModelSpec:
        config = read_json(folder / "config.json")
        vision, text = config["vision_config"], config["text_config"]
        if config.get("use_geometry_input"):
            raise DataError(f"{folder} is the geometric-input ablation baseline; it needs depth and cannot stream")
        side = vision["image_size"] // vision["patch_size"] // config.get("vision_merge", 1)  # LM tokens
        readout = config.get("situation_readout", "mlp")
        kappa = float(np.exp(read_weight(folder / "model.safetensors", POINTER_LOG_KAPPA)[0])) \
            if readout == "pointer" else 0.0
        return cls(
            image_size=vision["image_size"], patches_per_frame=side * side, hidden_size=text["hidden_size"],
            num_layers=text["num_hidden_layers"], num_kv_heads=text["num_key_value_heads"],
            head_dim=text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"],
            max_positions=text["max_position_embeddings"], num_yaw_bins=config["num_yaw_bins"],
            image_token_id=config["image_token_id"], frame_token_id=config["frame_token_id"],
            pos_token_id=config["pos_token_id"], ori_token_id=config["ori_token_id"],
            eos_token_id=text["eos_token_id"], label_names=tuple(PATCH_CLASSES[: config["num_patch_classes"]]),
            use_camera_prior=config["use_camera_prior"], situation_readout=readout, pointer_kappa=kappa,
            pointer_places=config.get("pointer_places", 1), relative_offset=config.get("relative_offset", False),
            object_centre=readout == "pointer" and config.get("object_centre_weight", 0.0) > 0,
            object_front=readout == "pointer" and config.get("object_front_weight", 0.0) > 0,
            front_offset=config.get("front_offset", False),
            map_subdivision=config.get("map_subdivision", 1), bev_frame=config.get("bev_frame", "clip"),
            answer_readout_heads=config.get("answer_readout_heads", 0),
            answer_sector_features=config.get("answer_sector_features", False),
            answer_spread_reads=config.get("answer_spread_reads", False),
            answer_copy_labels=config.get("answer_copy_labels", False),
            checkpoint_sha256=file_sha256(folder / "model.safetensors"),
        )

    def to_json(self) -> dict:
        data = asdict(self)
        data["label_names"] = list(self.label_names)
        return data

    @classmethod
    def from_json(cls, data: dict, source: Path) -> ModelSpec:
        names = {f.name for f in fields(cls)}
        missing = {f.name for f in fields(cls) if f.default is MISSING} - data.keys()
        if missing:
            raise DataError(f"{source} lacks {', '.join(sorted(missing))}: re-run `loc3r export`")
        values = {name: data[name] for name in names if name in data}
        values["label_names"] = tuple(values["label_names"])
        return cls(**values)


def read_weight(path: Path, name: str) -> np.ndarray:
    """One tensor of a safetensors file, as numpy (no torch)."""
    try:
        with safe_open(str(path), framework="numpy") as weights:
            return weights.get_tensor(name)
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except Exception as exc:  # safetensors raises its own error types for damaged files and missing names
        raise DataError(f"{path} has no readable {name}: {exc}") from None


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is unreadable: {exc}") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    return digest.hexdigest()


def patch_grid(spec: ModelSpec) -> tuple[int, int]:
    """The model's rows x cols of patches per frame (square, as the vision tower makes them)."""
    side = math.isqrt(spec.patches_per_frame)
    if side * side != spec.patches_per_frame:
        raise DataError(f"the model's {spec.patches_per_frame} patches per frame are not a square grid")
    return side, side
