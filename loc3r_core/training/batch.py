"""Dataset items -> model inputs: token ids with video placeholders, labels, stacked targets."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerFast

from loc3r_core.model.modeling_loc3r import IGNORE_INDEX
from loc3r_core.model.prior import drifted, prior_features
from loc3r_core.model.tokenizer import FRAME, IMAGE, answer_text, prompt_text
from loc3r_core.training.feature_cache import TowerFeatureCache

CLIP_META_KEYS = ("scene", "objects", "seen_object_ids")
ROW_META_KEYS = ("question_type", "answer", "situation_text", "question", "named_classes", "placement")
CLIP_TARGET_KEYS = ("bev_target", "bev_valid", "centre_target", "front_target", "front_valid", "patch_label",
                    "ego_pose")
ROW_TARGET_KEYS = ("situation_position", "situation_yaw", "grounding_classes", "facing_rule", "faced_xy",
                   "answer_xy", "answer_xy_valid", "asked_class", "counted_class")
MAP_TARGET_KEYS = ("map_target", "map_valid", "map_label")


def video_ids(tokenizer: PreTrainedTokenizerFast, frames: int, patches: int) -> list[int]:
    frame, image = tokenizer.convert_tokens_to_ids([FRAME, IMAGE])
    return ([frame] + [image] * patches) * frames


def encode_text(
    tokenizer: PreTrainedTokenizerFast,
    frames: int,
    patches: int,
    situations: Sequence[str],
    questions: Sequence[str],
    answers: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded input ids, labels (answer tokens only) and each row's length.

    Without answers the rows end right after <answer>, ready for generation.
    """
    video = video_ids(tokenizer, frames, patches)
    rows, label_rows = [], []
    for i, (situation, question) in enumerate(zip(situations, questions, strict=True)):
        prompt = video + tokenizer(prompt_text(situation, question), add_special_tokens=False)["input_ids"]
        answer = [] if answers is None else tokenizer(answer_text(answers[i]), add_special_tokens=False)["input_ids"]
        rows.append(prompt + answer)
        label_rows.append([IGNORE_INDEX] * len(prompt) + answer)
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    for i, (row, label_row) in enumerate(zip(rows, label_rows, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        labels[i, : len(row)] = torch.tensor(label_row)
    return ids, labels, torch.tensor([len(r) for r in rows])


def collate(items: list[dict], tokenizer: PreTrainedTokenizerFast, patches: int, with_answers: bool = True) -> dict:
    """Stack a list of SceneClipDataset items into one batch (clean prior, no corruption): one row
    per item, its clip's video placeholders first."""
    frames = len(items[0]["frame_indices"])
    ids, labels, lengths = encode_text(tokenizer, frames, patches, [i["situation_text"] for i in items],
                                       [i["question"] for i in items],
                                       [i["answer"] for i in items] if with_answers else None)
    clips, rows = clip_batch(items), row_batch(items)
    return {**clips, "input_ids": ids, "labels": labels, "lengths": lengths,
            "targets": clips["targets"] | rows["targets"],
            "meta": [clip | row for clip, row in zip(clips["meta"], rows["meta"], strict=True)]}


def collate_packed(items: list[dict], tokenizer: PreTrainedTokenizerFast, patches: int) -> dict:
    """Stack PackedClipDataset items: input_ids hold each clip's video placeholders only, row_ids
    the text rows (situation, question, answer) that continue them, row_clip each row's clip."""
    frames = len(items[0]["frame_indices"])
    rows = [row for item in items for row in item["rows"]]
    ids, labels, lengths = encode_text(tokenizer, 0, patches, [r["situation_text"] for r in rows],
                                       [r["question"] for r in rows], [r["answer"] for r in rows])
    clips, row_fields = clip_batch(items), row_batch(rows)
    return {**clips, "input_ids": torch.tensor(video_ids(tokenizer, frames, patches)).repeat(len(items), 1),
            "row_ids": ids, "labels": labels, "lengths": lengths,
            "row_clip": torch.tensor([clip for clip, item in enumerate(items) for _ in item["rows"]]),
            "targets": clips["targets"] | row_fields["targets"], "meta": row_fields["meta"]}


def clip_batch(items: list[dict]) -> dict:
    """Images (where the items carry them), clean prior, geometry and the per-frame targets of the items' clips."""
    targets = {key: torch.stack([item[key] for item in items]) for key in CLIP_TARGET_KEYS}
    per_patch = ("bev_target", "bev_valid", "centre_target", "front_target", "front_valid", "patch_label")
    targets = {k: v.flatten(2, 3) if k in per_patch else v for k, v in targets.items()}
    if "map_target" in items[0]:  # map_subdivision > 1: (B, F, P, s^2, ...)
        targets |= {key: torch.stack([item[key] for item in items]) for key in MAP_TARGET_KEYS}
    return {
        **({"images": torch.stack([i["images"] for i in items])} if "images" in items[0] else {}),
        "scene_index": torch.stack([i["scene_index"] for i in items]),  # keys of the tower feature cache
        "frame_indices": torch.stack([i["frame_indices"] for i in items]),
        "planar_prior": targets["ego_pose"].clone(),  # odometry relative to frame 0, before corruption
        "geometry": torch.stack([i["patch_points"] for i in items]).flatten(2, 3),
        "targets": targets,
        "meta": [{k: i[k] for k in CLIP_META_KEYS} for i in items],
    }


def row_batch(rows: list[dict]) -> dict:
    """The situation targets of text rows (SceneClipDataset.situation_fields dicts)."""
    targets = {key: torch.stack([row[key] for row in rows]) for key in ROW_TARGET_KEYS}
    targets["has_situation"] = torch.tensor([bool(row["has_situation"]) for row in rows])
    return {"targets": targets, "meta": [{k: row[k] for k in ROW_META_KEYS} for row in rows]}


def model_inputs(batch: dict, generator: torch.Generator | None = None, prior_dropout: float = 0.0,
                 drift_per_m: float = 0.0, yaw_drift_deg: float = 0.0, use_prior: bool = True,
                 features: TowerFeatureCache | None = None) -> dict:
    """The keyword arguments of the model's forward; with a generator, the prior is corrupted.

    prior_dropout is the share of clips that get no prior at all (the learned "no prior" token).
    With features (a frozen tower's cache), the frames go in as their cached tower features.
    """
    planar = batch["planar_prior"]
    valid = torch.full((planar.shape[0],), use_prior)
    if generator is not None:
        planar = drifted(planar, generator, drift_per_m, yaw_drift_deg)
        valid &= torch.rand(planar.shape[0], generator=generator) >= prior_dropout
    valid = valid.to(planar.device)
    packed = {key: batch[key] for key in ("row_ids", "row_clip") if key in batch}  # collate_packed's
    if features is None and "images" not in batch:
        raise ValueError("a batch without images (a dataset with load_images off) needs the tower feature cache")
    frames = {"images": batch["images"]} if features is None else \
        {"vision_features": features.lookup(batch["scene_index"], batch["frame_indices"]).to(batch["input_ids"].device)}
    return {"input_ids": batch["input_ids"], **frames, "prior": prior_features(planar),
            "prior_valid": valid, "geometry": batch["geometry"], **packed}
