"""Evaluate a model on a split: metrics over (a deterministic subset of) its questions."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import PreTrainedTokenizerFast

from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.evaluation.map_answers import per_frame, predicted_clip_objects
from loc3r_core.evaluation.metrics import LOCALIZATION_KEYS, MetricAccumulator, pick_items
from loc3r_core.evaluation.objects import ObjectAccumulator, semantic_pointer
from loc3r_core.evaluation.predict import predict_batch
from loc3r_core.evaluation.visual_prior import VisualPrior
from loc3r_core.model.modeling_loc3r import Loc3rForSpatialQA
from loc3r_core.model.motion import PlanarMotionNet, load_motion
from loc3r_core.runtime.session import (
    MAP_ANSWER_TYPES,
    MAP_TIEBREAK_TYPES,
    check_map_answer_types,
    map_answered_types,
    map_breaks_tie,
)
from loc3r_core.training.batch import collate, model_inputs
from loc3r_core.types import MapObject
from loc3r_core.world.answer_rules import answer_by_rules
from loc3r_core.world.situations import question_type
from loc3r_core.world.vocabulary import PATCH_CLASSES

# clean relative poses as the camera prior, none at all, or the motion network's chained steps (visual_prior)
PRIOR_MODES = ("odometry", "none", "visual")


@dataclass
class Evaluation:
    metrics: dict
    examples: list[dict] = field(default_factory=list)  # per-clip predictions kept for the figure


def evaluation_dataset(data: str | Path, model: Loc3rForSpatialQA, num_frames: int) -> SceneClipDataset:
    """Uniformly sampled frames and every question with its own situation: the same items every time.

    Map targets are always the majority label and mean point of each patch (and of each sub-patch,
    for a model with a map head), whatever a model was trained on, so that map metrics keep one
    definition across models.
    """
    vision = model.config.vision_config
    return SceneClipDataset(data, num_frames=num_frames, patch_grid=model.config.patch_grid,
                            image_size=vision.image_size, sampling="uniform", pseudo_situation_share=0.0,
                            patch_target="majority", map_subdivision=model.config.map_subdivision)


@torch.no_grad()
def evaluate(
    model: Loc3rForSpatialQA,
    tokenizer: PreTrainedTokenizerFast,
    dataset: SceneClipDataset,
    max_samples: int | None = None,
    batch_size: int = 32,
    prior: str = "odometry",
    keep_examples: int = 4,
    progress: bool = True,
    map_answer_types: tuple[str, ...] = MAP_ANSWER_TYPES,
    map_tiebreak_types: tuple[str, ...] = MAP_TIEBREAK_TYPES,
    motion: PlanarMotionNet | None = None,
) -> Evaluation:
    """Metrics of `model` on `dataset`. Answers are scored as the runtime gives them: questions of
    `map_answer_types` (recognised from their words) answered by rules from the clip's fused map
    where it holds a candidate and the runtime's rule lets it (`session.map_answered_types`: every
    type with odometry, what_direction and distance's ties with visual odometry, none without a prior); those of
    `map_tiebreak_types` by the map's answer where the decoder finds it nearly as likely as its own
    (`session.map_breaks_tie`); every other one by the decoder (alone: `decoder_qa_em`).
    With prior "visual" the prior is `motion`'s (the shipped network when None) chained steps."""
    if prior not in PRIOR_MODES:
        raise ValueError(f"prior must be one of {PRIOR_MODES}, not {prior!r}")
    check_map_answer_types(map_answer_types)
    check_map_answer_types(map_tiebreak_types)
    visual = VisualPrior(motion or load_motion(), dataset) if prior == "visual" else None
    frames = dataset.num_frames
    odometry, visual_odometry = (frames if prior == "odometry" else 0), (frames if prior == "visual" else 0)
    routed = map_answered_types(map_answer_types, odometry, visual_odometry, frames)
    tiebroken = map_answered_types(map_tiebreak_types, odometry, visual_odometry, frames)
    was_training = model.training
    model.eval()
    accumulator = MetricAccumulator()
    objects = ObjectAccumulator()
    has_map = model.config.map_subdivision > 1
    map_objects = ObjectAccumulator()  # the same measures on the map head's sub-patch points (the runtime's map)
    pointer = MetricAccumulator()  # the semantic_pointer reference: localization only
    map_rules = MetricAccumulator()  # the map_rules reference: QA only, from the model's place and map
    decoder = MetricAccumulator()  # the decoder's answers alone
    from_map: list[bool] = []  # per question: answered from the map
    pointer_found: list[bool] = []
    located: set[tuple[int, int]] = set()
    clips_seen: set[int] = set()
    clip_objects: dict[int, list[MapObject]] = {}  # map_rules: each clip's map, fused once for all its questions
    examples: list[dict] = []
    indices = pick_items(dataset, max_samples)
    patches = model.config.patches_per_frame
    device = next(model.parameters()).device
    with tqdm(total=len(indices), desc="eval", unit="q", disable=not progress, leave=False) as bar:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            items = [dataset[i] for i in chunk]
            batch = collate(items, tokenizer, patches, with_answers=False)
            if visual is not None:
                batch["planar_prior"] = visual.planar_prior(items).to(batch["planar_prior"].dtype)
            inputs = model_inputs(batch, use_prior=prior != "none")
            inputs = {key: value.to(device) for key, value in inputs.items()}  # a model on an accelerator
            questions = [dataset.scenes[s].situations[i].questions[q] for s, i, q in (dataset.items[j] for j in chunk)]
            scenes = [dataset.items[j][0] for j in chunk]
            challengers = partial(tiebreak_challengers, questions=questions, scenes=scenes, clip_objects=clip_objects,
                                  types=tiebroken)
            out = predict_batch(model, tokenizer, inputs, batch["lengths"], challengers=challengers)
            targets = {k: v.numpy() for k, v in batch["targets"].items()}
            places = clip_places(out, scenes, clip_objects)
            for row, (index, question, place) in enumerate(zip(chunk, questions, places, strict=True)):
                scene_index, situation_index, _ = dataset.items[index]
                map_rules.add_answer(question.type, answer_by_rules(question.type, question.question, *place),
                                     question.answer)
                asked = question_type(question.question)  # what the runtime reads of the words
                ruled = answer_by_rules(asked, question.question, *place) if asked in routed else ""
                if not ruled and out["challengers"][row] and map_breaks_tie(out["answer_confidence"][row],
                                                                            out["challenger_confidence"][row]):
                    ruled = out["challengers"][row]  # the map's answer, scored in predict_batch
                from_map.append(bool(ruled))
                accumulator.add_answer(question.type, ruled or out["answers"][row], question.answer)
                decoder.add_answer(question.type, out["answers"][row], question.answer)
                if (scene_index, situation_index) not in located:
                    located.add((scene_index, situation_index))
                    accumulator.add_localization(out["position"][row], float(out["yaw"][row]),
                                                 out["position_sigma"][row], targets["situation_position"][row],
                                                 float(targets["situation_yaw"][row]), batch["meta"][row]["placement"])
                    named = batch["meta"][row]["named_classes"]
                    if named is not None:
                        xy, yaw, found = semantic_pointer(out["bev"][row], out["labels"][row], named,
                                                          out["ego_xy"][row], out["ego_yaw"][row])
                        pointer_found.append(found)
                        pointer.add_localization(xy, yaw, np.zeros(2), targets["situation_position"][row],
                                                 float(targets["situation_yaw"][row]))
                if scene_index not in clips_seen:  # uniform sampling: one clip per scene
                    clips_seen.add(scene_index)
                    accumulator.add_frames(out["bev"][row], targets["bev_target"][row], targets["bev_valid"][row],
                                           out["labels"][row], targets["patch_label"][row], out["ego_xy"][row],
                                           out["ego_yaw"][row], targets["ego_pose"][row])
                    meta = batch["meta"][row]
                    objects.add_clip(out["bev"][row], out["labels"][row], meta["objects"], meta["seen_object_ids"],
                                     targets["bev_target"][row], targets["bev_valid"][row], targets["patch_label"][row],
                                     cameras=out["ego_xy"][row])
                    if has_map:
                        map_objects.add_clip(*(per_frame(value[row]) for value in (
                            out["map_bev"], out["map_labels"])), meta["objects"], meta["seen_object_ids"],
                            *(per_frame(targets[key][row]) for key in ("map_target", "map_valid", "map_label")),
                            cameras=out["ego_xy"][row])
                    if len(examples) < keep_examples:
                        examples.append(example_record(items[row], out, targets, row))
            bar.update(len(chunk))
    model.train(was_training)
    pointer_metrics = {k: v for k, v in pointer.summary().items() if k in LOCALIZATION_KEYS}
    pointer_metrics["named_class_found"] = round(100.0 * float(np.mean(pointer_found)), 2) if pointer_found else 0.0
    metrics = {**accumulator.summary(), **objects.summary(), "semantic_pointer": pointer_metrics}
    decoded = decoder.summary()
    metrics |= {"decoder_qa_em": decoded["qa_em"], "decoder_qa_em_by_type": decoded["qa_em_by_type"],
                "map_answer_types": list(routed), "map_tiebreak_types": list(tiebroken),
                "map_answered_share": round(100.0 * float(np.mean(from_map)), 2) if from_map else 0.0}
    if has_map:
        metrics |= {f"map_{key}": value for key, value in map_objects.summary().items()}
    metrics["map_rules"] = {k: v for k, v in map_rules.summary().items() if k in ("qa_em", "qa_em_by_type")}
    return Evaluation(metrics, examples)


def example_record(item: dict, out: dict, targets: dict, row: int) -> dict:
    """What the figure draws for one clip: true and predicted map points, ego poses and the asker."""
    return {
        "scene": item["scene"],
        "situation": item["situation_text"],
        "bev": out["bev"][row], "bev_target": targets["bev_target"][row], "bev_valid": targets["bev_valid"][row],
        "labels": out["labels"][row], "true_labels": targets["patch_label"][row],
        "ego_xy": out["ego_xy"][row], "ego_yaw": out["ego_yaw"][row], "true_ego": targets["ego_pose"][row],
        "position": out["position"][row], "yaw": float(out["yaw"][row]),
        "true_position": targets["situation_position"][row], "true_yaw": float(targets["situation_yaw"][row]),
        "objects": item["objects"], "seen_object_ids": item["seen_object_ids"],
    }


def clip_places(out: dict, scenes: list[int], clip_objects: dict[int, list[MapObject]]) -> list[tuple]:
    """Per row of `predict_batch`'s outputs: its clip's map objects (fused once a scene, into
    clip_objects: uniform sampling gives one clip per scene) and where the model put the asker."""
    for row, scene in enumerate(scenes):
        if scene not in clip_objects:
            clip_objects[scene] = predicted_clip_objects(out, row, PATCH_CLASSES)
    return [(clip_objects[scene], out["position"][row], float(out["yaw"][row])) for row, scene in enumerate(scenes)]


def tiebreak_challengers(out: dict, questions: list, scenes: list[int], clip_objects: dict[int, list[MapObject]],
                         types: tuple[str, ...]) -> list[str]:
    """Per row: the map's answer to a question of `types`, where it differs from the decoder's ("" otherwise)."""
    named = []
    for question, place, answer in zip(questions, clip_places(out, scenes, clip_objects), out["answers"], strict=True):
        asked = question_type(question.question)
        ruled = answer_by_rules(asked, question.question, *place) if asked in types else ""
        named.append(ruled if ruled != answer else "")
    return named
