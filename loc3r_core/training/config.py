"""The one training config: a dataclass, read from YAML, every field documented.

Unknown keys are an error (a typo must not silently train the wrong thing).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loc3r_core.data.targets import PATCH_TARGETS, PRESENT_SHARE
from loc3r_core.errors import UsageError


class YamlConfig:
    """A dataclass read from one YAML mapping of its fields (plus overrides); unknown keys are an error."""

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> Any:
        import yaml

        try:
            raw = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise UsageError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise UsageError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if raw is None:  # more likely a failed write than a wish for every default
            raise UsageError(f"{path} is empty: write the fields to set ({{}} takes every default)")
        if not isinstance(raw, dict):
            raise UsageError(f"{path} must hold a mapping of config fields")
        return cls.from_dict({**raw, **(overrides or {})}, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise UsageError(f"{source}: unknown field(s) {', '.join(unknown)}")
        config = cls(**raw)
        config.validate(source)
        return config

    def validate(self, source: str = "config") -> None:
        for ok, message in self.checks():
            if not ok:
                raise UsageError(f"{source}: {message}")

    def checks(self) -> list[tuple[bool, str]]:
        return []

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train_folders(train_data: str | list[str]) -> list[str]:
    """train_data as a list of folders (it may name one folder or several)."""
    return [train_data] if isinstance(train_data, str) else train_data


def _train_data_check(train_data: object) -> tuple[bool, str]:
    folders = train_folders(train_data)  # type: ignore[arg-type]  # checked just below
    ok = isinstance(folders, list) and len(folders) > 0 and all(isinstance(f, str) and f for f in folders)
    return ok, "train_data must be a folder or a non-empty list of folders"


@dataclass
class TrainConfig(YamlConfig):
    # --- data ---
    # folder written by `loc3r data generate --split train`, or a list of folders read as one
    train_data: str | list[str] = "data/train"
    val_data: str | None = None  # optional: validation split; periodic metrics come from it
    num_frames: int = 8  # frames per clip (sampled in time order)
    frame_sampling: str = "random"  # random (augmentation) or uniform; evaluation always uses uniform
    pseudo_situation_share: float = 0.3  # situation-free questions that get "I am standing in the room."
    max_train_scenes: int | None = None  # use only the first N scenes, in train_data's order (tiny runs, tests)
    # > 1: each clip carries up to this many of its scene's (situation, question) rows, encoded
    # once for all of them (packed; batch_size then counts clips); 1: one clip per question
    questions_per_clip: int = 1
    # per-patch map targets: majority (label and mean point of the whole patch) or objects_first
    # (an object covering >= 10 % of the patch wins, with the mean point of its own pixels);
    # see loc3r_core/data/targets.py. Evaluation always scores against majority targets.
    patch_targets: str = "majority"
    # objects_first: the share of a token's pixels (the LM's patch, 32 x 32 px at 128 px with
    # vision_merge 2) that makes an object present in its label; the map head's sub-patches keep 0.10
    token_present_share: float = PRESENT_SHARE
    # the semantic and map-label losses weight patch classes by (training count)^-class_balance
    # (0: unweighted), counted over class_count_frames frames drawn from the training split
    class_balance: float = 0.0
    class_count_frames: int = 2000
    # --- model: keyword arguments of Loc3rConfig (vision_config/text_config dicts, loss weights, ...) ---
    model: dict[str, Any] = field(default_factory=dict)
    tokenizer_vocab_size: int = 512  # tokenizer trained on the training text when no LM path is given
    # --- camera prior corruption (odometry-like drift, and no prior at all for a share of clips) ---
    prior_dropout: float = 0.3
    prior_drift_per_m: float = 0.05  # translation noise per metre travelled (std, accumulates)
    prior_yaw_drift_deg: float = 1.0  # yaw noise per frame step (std, accumulates)
    # --- optimisation ---
    batch_size: int = 16  # per process; global batch = batch_size * processes * grad_accum
    grad_accum: int = 1
    max_steps: int = 4000  # optimiser steps
    learning_rate: float = 1e-3
    min_lr_ratio: float = 0.05  # cosine schedule decays to learning_rate * this
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mixed_precision: str = "no"  # no | fp16 | bf16 (accelerate)
    num_workers: int = 1  # DataLoader workers per process
    # a frozen tower's features of every training frame, computed once at the start (training then
    # never runs the tower: the same steps, faster; needs model.freeze_vision_tower)
    cache_vision_features: bool = False
    # --- bookkeeping ---
    output_dir: str = "runs/loc3r"
    seed: int = 0
    log_every: int = 20
    eval_every: int = 500  # steps between validation passes (needs val_data)
    eval_samples: int = 256  # validation items per pass
    checkpoint_every: int = 250  # steps between resumable checkpoints
    keep_checkpoints: int = 2

    def checks(self) -> list[tuple[bool, str]]:
        return [
            _train_data_check(self.train_data),
            (self.num_frames >= 1, "num_frames must be at least 1"),
            (self.frame_sampling in ("random", "uniform"), "frame_sampling must be random or uniform"),
            (self.patch_targets in PATCH_TARGETS, f"patch_targets must be one of {', '.join(PATCH_TARGETS)}"),
            (0.0 < self.token_present_share <= 1.0, "token_present_share must lie in (0, 1]"),
            (0.0 <= self.prior_dropout <= 1.0, "prior_dropout must lie in [0, 1]"),
            (0.0 <= self.pseudo_situation_share <= 1.0, "pseudo_situation_share must lie in [0, 1]"),
            (0.0 <= self.class_balance <= 1.0 and self.class_count_frames >= 1,
             "class_balance must lie in [0, 1] and class_count_frames be at least 1"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be at least 1"),
            (self.questions_per_clip >= 1, "questions_per_clip must be at least 1"),
            (self.max_steps >= 1, "max_steps must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.mixed_precision in ("no", "fp16", "bf16"), "mixed_precision must be no, fp16 or bf16"),
            (min(self.log_every, self.eval_every, self.checkpoint_every) >= 1, "*_every must be at least 1"),
            (not self.cache_vision_features or bool(self.model.get("freeze_vision_tower")),
             "cache_vision_features needs a frozen tower (model.freeze_vision_tower: true)"),
        ]


@dataclass
class VisionPretrainConfig(YamlConfig):
    """Stage 1 of the shipped recipe: the vision tower learns, from single frames, what each patch
    shows (its class) and where it is (its point in the camera frame), before the video model is
    trained on top of it (frozen, as the paper freezes SigLIP)."""

    train_data: str | list[str] = "data/train"  # see TrainConfig.train_data
    val_data: str | None = "data/val"  # per-class patch recall on its frames at the end
    output_dir: str = "runs/vision"  # tower/ (save_pretrained SigLIP), metrics.jsonl, curves.png
    max_train_scenes: int | None = None
    # SigLIP fields over the shipped tiny tower's (hidden 96, 2 layers, 64 px, 16 px patches)
    vision_config: dict[str, Any] = field(default_factory=dict)
    patch_targets: str = "objects_first"  # see TrainConfig.patch_targets
    focal_gamma: float = 0.0  # 0: cross-entropy on patch classes; > 0: focal loss
    class_balance: float = 0.0  # patch classes weighted by (training count)^-class_balance; 0: unweighted
    geometry_weight: float = 1.0  # weight of the camera-frame point loss (Huber, metres)
    # > 0: each token also learns the classes and points of its s x s sub-patches (s = subpatch_subdivision,
    # targets on a grid s times finer), so its features keep where in the patch a small object is
    subpatch_weight: float = 0.0
    subpatch_subdivision: int = 4
    # > 0: each patch also learns which way its object faces (fronted objects: data.targets.FRONTED_PLACEMENTS),
    # in the camera's floor plane, with this weight on the 1 - cos loss: the tower then knows orientation
    front_weight: float = 0.0
    mirror: bool = False  # mirror half of the frames left-right (image, patch columns, camera x)
    batch_size: int = 64  # frames per step
    max_steps: int = 3000
    learning_rate: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    workers: int = 2  # processes that build the in-memory frame targets
    seed: int = 0
    log_every: int = 50

    def checks(self) -> list[tuple[bool, str]]:
        return [
            _train_data_check(self.train_data),
            (self.patch_targets in PATCH_TARGETS, f"patch_targets must be one of {', '.join(PATCH_TARGETS)}"),
            (self.focal_gamma >= 0 and self.geometry_weight >= 0 and 0 <= self.class_balance <= 1,
             "focal_gamma and geometry_weight must be >= 0, class_balance in [0, 1]"),
            (self.subpatch_weight >= 0 and self.subpatch_subdivision >= 2,
             "subpatch_weight must be >= 0 and subpatch_subdivision at least 2"),
            (self.front_weight >= 0, "front_weight must be >= 0"),
            (self.batch_size >= 1 and self.max_steps >= 1 and self.workers >= 1,
             "batch_size, max_steps and workers must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.log_every >= 1, "log_every must be at least 1"),
        ]


@dataclass
class MotionPretrainConfig(YamlConfig):
    """The visual odometry network (model.motion): each consecutive pair of a walk's frames and the
    camera's planar step between them (`loc3r pretrain-motion`)."""

    train_data: str | list[str] = "data/train"  # see TrainConfig.train_data
    val_data: str | None = "data/val"  # per-step and walk-chained pose errors at the end
    output_dir: str = "runs/motion"  # motion/ (the network), metrics.jsonl, curves.png
    max_train_scenes: int | None = None
    image_size: int = 64  # the network's input (MotionConfig.image_size)
    batch_size: int = 64  # frame pairs per step
    max_steps: int = 8000
    learning_rate: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    huber_beta: float = 0.2  # smooth L1 on the step in units of the training steps' mean size
    # how often a pair is the same frame twice, consecutive frames, frames two apart, ...: the
    # unmoved pairs teach a still camera to read as still, which a runtime that compares frames
    # closer than the walks' steps needs (results/experiments.md, session 43, G1)
    gap_weights: list[float] = field(default_factory=lambda: [0.2, 0.6, 0.2])
    # weight of the second frame's heading against the room's walls, modulo 90 degrees (0: the network
    # reads none); the chain snaps its headings to it (results/experiments.md, session 45)
    room_heading_weight: float = 1.0
    seed: int = 0
    log_every: int = 50

    def checks(self) -> list[tuple[bool, str]]:
        return [
            _train_data_check(self.train_data),
            (self.image_size >= 32, "image_size must be at least 32 (five stride-2 blocks)"),
            (self.batch_size >= 1 and self.max_steps >= 1, "batch_size and max_steps must be at least 1"),
            (self.learning_rate > 0 and self.huber_beta > 0, "learning_rate and huber_beta must be positive"),
            (0 <= self.min_lr_ratio <= 1 and self.warmup_steps >= 0, "min_lr_ratio in [0, 1], warmup_steps >= 0"),
            (self.log_every >= 1, "log_every must be at least 1"),
            (self.room_heading_weight >= 0, "room_heading_weight must be 0 (no room heading) or positive"),
            (len(self.gap_weights) >= 2 and min(self.gap_weights) >= 0 and sum(self.gap_weights[1:]) > 0,
             "gap_weights: one non-negative weight per gap from 0, with some weight on a gap of 1 or more"),
        ]
