"""Stage 1: pretrain the vision tower on single frames (`loc3r pretrain-vision`).

A SigLIP tower and one linear layer per patch learn the patch's class (floor, wall, ceiling or
an object category; objects_first targets by default, so small objects are not buried), its
point in the camera frame and (front_weight > 0) the way the patch's object faces. Only the
tower is kept (`OUTPUT_DIR/tower`, a save_pretrained folder): the video model then reads it
through `vision_tower_path`, frozen. Frames and their targets are built once in memory, so a
step costs one small forward and backward pass.
"""

from __future__ import annotations

import json
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn
from tqdm import tqdm
from transformers import PreTrainedConfig
from transformers.utils import logging as hf_logging

from loc3r_core.atomic import atomic_path
from loc3r_core.data.frames import FrameArrays, load_frames
from loc3r_core.model.configuration_loc3r import Loc3rConfig, config_kwargs
from loc3r_core.model.modeling_loc3r import front_loss
from loc3r_core.model.spatial import balanced_class_weights, focal_cross_entropy
from loc3r_core.model.vision_tower import build_vision_tower
from loc3r_core.training.config import VisionPretrainConfig
from loc3r_core.training.curves import append_record, plot_curves
from loc3r_core.training.loop import learning_rate_factor
from loc3r_core.training.run_folder import check_run_folder
from loc3r_core.world.vocabulary import PATCH_CLASSES, STRUCTURE_CLASSES

TOWER_DIR = "tower"
POINT_DIMS = 3
FRONT_DIMS = 2  # (x, z) in the camera frame: which way the patch's object faces
SubPatches = tuple[torch.Tensor, torch.Tensor]  # sub-patch logits and points
TARGETS = ("labels", "points", "valid")
PatchOutputs = tuple[torch.Tensor, torch.Tensor, SubPatches | None, torch.Tensor | None]


class PatchPretrainer(nn.Module):
    """The tower and a linear read-out of (class logits, camera-frame point) per patch; with
    subdivision s > 1 also one of each token's s x s sub-patches, with `fronts` also the way the
    patch's object faces (training only: the heads are not kept)."""

    def __init__(self, vision_config: PreTrainedConfig, subdivision: int = 1, fronts: bool = False) -> None:
        super().__init__()
        self.tower = build_vision_tower(vision_config)
        outputs = len(PATCH_CLASSES) + POINT_DIMS
        self.head = nn.Linear(vision_config.hidden_size, outputs)
        self.sub_head = nn.Linear(vision_config.hidden_size, subdivision ** 2 * outputs) if subdivision > 1 else None
        self.front_head = nn.Linear(vision_config.hidden_size, FRONT_DIMS) if fronts else None

    def forward(self, images: torch.Tensor) -> PatchOutputs:
        """(B, S, S, 3) uint8 -> logits (B, P, classes), points (B, P, 3), with a sub-patch head its
        logits and points (B, P * s^2, ...), token-major (token_major's order), and with a front
        head the fronts (B, P, 2), unnormalised."""
        pixels = images.permute(0, 3, 1, 2).float() / 255.0
        features = self.tower(pixel_values=pixels * 2.0 - 1.0).last_hidden_state  # as Loc3rForSpatialQA feeds it
        out = self.head(features)
        sub = None
        if self.sub_head is not None:
            fine = self.sub_head(features).unflatten(-1, (-1, out.shape[-1])).flatten(1, 2)
            sub = (fine[..., :-POINT_DIMS], fine[..., -POINT_DIMS:])
        fronts = None if self.front_head is None else self.front_head(features)
        return out[..., :-POINT_DIMS], out[..., -POINT_DIMS:], sub, fronts


def tower_config(config: VisionPretrainConfig) -> PreTrainedConfig:
    return Loc3rConfig(**config_kwargs({"vision_config": config.vision_config})).vision_config


def pretrain_vision(config: VisionPretrainConfig, progress: bool = True) -> Path:
    """Train the tower; returns OUTPUT_DIR/tower."""
    run = Path(config.output_dir)
    check_run_folder(run, resume=None)
    torch.manual_seed(config.seed)
    vision = tower_config(config)
    side = vision.image_size // vision.patch_size
    frames = load_frames(config.train_data, vision.image_size, (side, side), config.patch_targets,
                         config.max_train_scenes, config.workers, progress)
    sub = config.subpatch_subdivision if config.subpatch_weight > 0 else 1
    fine = None if sub == 1 else load_frames(config.train_data, vision.image_size, (side * sub, side * sub),
                                             config.patch_targets, config.max_train_scenes, config.workers,
                                             progress, desc="sub-patch targets")
    run.mkdir(parents=True, exist_ok=True)  # only now: bad data leaves no half-made run behind
    (run / "pretrain_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    model = PatchPretrainer(vision, sub, fronts=config.front_weight > 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(learning_rate_factor, config=config))
    generator = torch.Generator().manual_seed(config.seed)
    tensors = {name: torch.from_numpy(getattr(frames, name)) for name in ("images", *TARGETS, "fronts")}
    fine_tensors = {} if fine is None else {name: torch.from_numpy(getattr(fine, name)) for name in TARGETS}
    class_weights = None
    if config.class_balance:
        counts = np.bincount(frames.labels[frames.labels >= 0], minlength=len(PATCH_CLASSES))
        class_weights = balanced_class_weights(counts, config.class_balance)
    log = run / "metrics.jsonl"
    window: dict[str, float] = {}
    started = time.perf_counter()
    for step in tqdm(range(config.max_steps), desc="pretrain vision", unit="step", disable=not progress):
        pick = torch.randint(len(frames), (config.batch_size,), generator=generator)
        batch = {name: value[pick] for name, value in tensors.items()}
        fine_batch = {"images": batch["images"], **{name: value[pick] for name, value in fine_tensors.items()}}
        if config.mirror:
            flip = torch.rand(config.batch_size, generator=generator) < 0.5
            batch = mirrored(batch, flip, side)
            fine_batch = mirrored(fine_batch, flip, side * sub) if fine_tensors else fine_batch
        logits, points, sub_out, fronts = model(batch["images"])
        losses = patch_losses(logits, points, batch["labels"], batch["points"], batch["valid"], config.focal_gamma,
                              class_weights)
        loss = losses["semantic"] + config.geometry_weight * losses["geometry"]
        if fronts is not None:
            losses["front"] = front_loss(fronts, batch["fronts"], batch["fronts"].norm(dim=-1) > 0.5)
            loss = loss + config.front_weight * losses["front"]
        if sub_out is not None:
            targets = [token_major(fine_batch[name], side, sub) for name in TARGETS]
            sub_losses = patch_losses(*sub_out, *targets, config.focal_gamma, class_weights)
            loss = loss + config.subpatch_weight * (sub_losses["semantic"]
                                                    + config.geometry_weight * sub_losses["geometry"])
            losses |= {f"subpatch_{name}": value for name, value in sub_losses.items()}
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        for name, value in {"loss": loss, **losses}.items():
            window[name] = window.get(name, 0.0) + float(value.detach())
        if (step + 1) % config.log_every == 0 or step + 1 == config.max_steps:
            count = (step % config.log_every) + 1
            means = {k: round(v / count, 5) for k, v in window.items()}
            append_record(log, {"step": step + 1, "split": "train", **means})
            window = {}
    record = {"step": config.max_steps, "split": "train", "seconds": round(time.perf_counter() - started, 1)}
    if config.val_data:
        val = load_frames(config.val_data, vision.image_size, (side, side), config.patch_targets,
                          workers=config.workers, progress=progress, desc="validation frames")
        val_fine = None if sub == 1 else load_frames(config.val_data, vision.image_size, (side * sub, side * sub),
                                                     config.patch_targets, workers=config.workers,
                                                     progress=progress, desc="validation sub-patches")
        record = {**record, "split": "val", **patch_metrics(model, val, val_fine)}
    append_record(log, record)
    hf_logging.disable_progress_bar()  # a bar for writing a few-MB file is noise
    with atomic_path(run / TOWER_DIR) as tmp:
        model.tower.save_pretrained(tmp, safe_serialization=True)
    plot_curves(log, run / "curves.png")
    return run / TOWER_DIR


def mirrored(batch: dict[str, torch.Tensor], flip: torch.Tensor, side: int) -> dict[str, torch.Tensor]:
    """Left-right mirror the frames where flip is true: the image, the patch grid's columns, and
    the camera-frame x of each point and front (a mirrored room is as plausible as the room)."""
    count = len(flip)
    images = torch.where(flip[:, None, None, None], batch["images"].flip(2), batch["images"])

    def columns(x: torch.Tensor) -> torch.Tensor:
        grid = x.view(count, side, side, *x.shape[2:])
        return torch.where(flip.view(count, 1, 1, *[1] * (x.dim() - 2)), grid.flip(2), grid).view_as(x)

    def negate_x(x: torch.Tensor) -> torch.Tensor:
        sign = torch.ones(x.shape[-1])
        sign[0] = -1.0
        return torch.where(flip[:, None, None], columns(x) * sign, columns(x))

    out = {"images": images, "labels": columns(batch["labels"]), "points": negate_x(batch["points"]),
           "valid": columns(batch["valid"])}
    return out | ({"fronts": negate_x(batch["fronts"])} if "fronts" in batch else {})


def token_major(fine: torch.Tensor, side: int, subdivision: int) -> torch.Tensor:
    """(B, (side * s)^2, ...) targets of the finer grid, row-major -> (B, side^2 * s^2, ...) token by
    token, sub-patches row-major within the token: the batched torch twin of data.targets.subdivide,
    the order the sub-patch head writes."""
    s, rest = subdivision, fine.shape[2:]
    grid = fine.reshape(len(fine), side, s, side, s, *rest)
    return grid.permute(0, 1, 3, 2, 4, *range(5, 5 + len(rest))).reshape(len(fine), side * side * s * s, *rest)


def patch_losses(logits: torch.Tensor, points: torch.Tensor, labels: torch.Tensor, target: torch.Tensor,
                 valid: torch.Tensor, focal_gamma: float, class_weights: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
    mask = valid.float()[..., None]
    geometry = (F.huber_loss(points, target, reduction="none", delta=0.5) * mask).sum() / (3 * mask.sum()).clamp(min=1)
    return {"semantic": focal_cross_entropy(logits, labels, focal_gamma, class_weights=class_weights),
            "geometry": geometry}


@torch.no_grad()
def patch_metrics(model: PatchPretrainer, frames: FrameArrays, fine: FrameArrays | None = None, batch: int = 256
                  ) -> dict:
    """Per-patch class recall (objects per class and their mean) and the camera-point median error;
    with the sub-patch head and its frames (fine), the sub-patches' object recall too; with the
    front head, how far its fronts turn from the truth on the patches of fronted objects."""
    was_training = model.training
    model.eval()
    predicted, errors, sub_predicted, front_errors = [], [], [], []
    for start in range(0, len(frames), batch):
        logits, points, sub, fronts = model(torch.from_numpy(frames.images[start:start + batch]))
        if fronts is not None:
            front_errors.append(front_error_deg(fronts.numpy(), frames.fronts[start:start + batch]))
        predicted.append(logits.argmax(-1).numpy())
        gap = np.linalg.norm(points.numpy() - frames.points[start:start + batch], axis=-1)
        errors.append(gap[frames.valid[start:start + batch]])
        if sub is not None and fine is not None:
            sub_predicted.append(sub[0].argmax(-1).numpy())
    model.train(was_training)
    predicted_labels = np.concatenate(predicted)
    by_class = object_recall_by_class(predicted_labels, frames.labels)
    known = frames.labels >= 0
    metrics = {
        "patch_acc": round(100.0 * float((predicted_labels[known] == frames.labels[known]).mean()), 2),
        "patch_object_recall": round(float(np.mean(list(by_class.values()))), 2),
        "patch_object_recall_by_class": by_class,
        "camera_point_median_error_m": round(float(np.median(np.concatenate(errors))), 4),
    }
    if front_errors:
        turned = np.concatenate(front_errors)
        metrics |= {"front_within_30deg": round(100.0 * float((turned <= 30.0).mean()), 2),
                    "front_median_error_deg": round(float(np.median(turned)), 2)}
    if sub_predicted:
        side = round(math.sqrt(frames.labels.shape[1]))
        sub_labels = token_major(torch.from_numpy(fine.labels), side, round(math.sqrt(fine.labels.shape[1])) // side)
        sub_by_class = object_recall_by_class(np.concatenate(sub_predicted), sub_labels.numpy())
        metrics |= {"subpatch_object_recall": round(float(np.mean(list(sub_by_class.values()))), 2),
                    "subpatch_object_recall_by_class": sub_by_class}
    return metrics


def front_error_deg(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Angles (degrees) between (..., 2) predicted fronts and the unit true ones, where there is one."""
    has = np.linalg.norm(truth, axis=-1) > 0.5
    mine, theirs = predicted[has], truth[has]
    cosine = (mine * theirs).sum(-1) / np.maximum(np.linalg.norm(mine, axis=-1), 1e-12)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def object_recall_by_class(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Percent of each object class's patches given that class (classes with no patch left out)."""
    by_class = {}
    for cls in range(len(STRUCTURE_CLASSES), len(PATCH_CLASSES)):
        mine = labels == cls
        if mine.any():
            by_class[PATCH_CLASSES[cls]] = round(100.0 * float((predicted[mine] == cls).mean()), 2)
    return by_class
