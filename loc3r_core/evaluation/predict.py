"""Run the model on batches: spatial readouts and greedy answers, as numpy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from loc3r_core.model.modeling_loc3r import Loc3rForSpatialQA
from loc3r_core.model.tokenizer import answer_text
from loc3r_core.readout import circular_soft_argmax, softmax, split_gaussian, widened_log_sigma


@torch.no_grad()
def greedy_answers(
    model: Loc3rForSpatialQA,
    tokenizer: PreTrainedTokenizerFast,
    input_ids: torch.Tensor,
    lengths: torch.Tensor,
    frame_tokens: torch.Tensor,
    max_new_tokens: int = 8,
    forced: list[list[int]] | None = None,
) -> tuple[list[str], dict[str, torch.Tensor], np.ndarray]:
    """Decode answers after each row's prompt (rows right-padded); also the heads of the prompt pass
    and each answer's probability as the runtime states it (the geometric mean of its tokens',
    <eos> included where it came). With `forced` (each row's answer tokens, ending in <eos>) the
    rows take those tokens instead of the likeliest: the model's probability of a given answer.

    Causal attention means padding after a row's end never changes that row, so each step
    runs the whole batch and reads the logits at each row's last real token.
    """
    eos = tokenizer.eos_token_id
    count = len(input_ids)
    steps = max_new_tokens if forced is None else max(len(f) for f in forced)
    ids = torch.cat([input_ids, input_ids.new_full((count, steps), tokenizer.pad_token_id)], dim=1)
    lengths = lengths.to(input_ids.device, copy=True)
    done = torch.zeros(count, dtype=torch.bool)
    generated: list[list[int]] = [[] for _ in range(count)]
    log_probs: list[list[float]] = [[] for _ in range(count)]
    heads: dict[str, torch.Tensor] = {}
    rows = torch.arange(count, device=input_ids.device)
    for step in range(steps):
        width = int(lengths.max())
        hidden, _ = model.language_forward(model.embed(ids[:, :width], frame_tokens))
        if step == 0:
            frames = frame_tokens.shape[1] // (1 + model.config.patches_per_frame)
            heads = model.read_heads(ids[:, :width], hidden, frames)
        last = hidden[rows, lengths - 1]
        if "answer_context" in heads:  # every answer token's state gains the answer readout, as in training
            last = last + heads["answer_context"]
        logits = model.language_model.get_output_embeddings()(last)
        if "answer_copy" in heads:  # ... and its label tokens the first head's vote
            logits = logits + model.answer_readout.vote(last, heads["answer_copy"])
        if step == 0:  # every answer has a token (readout.without_eos)
            logits[:, eos] = -torch.inf
        token = logits.argmax(dim=-1)
        if forced is not None:
            token = torch.tensor([f[min(step, len(f) - 1)] for f in forced], device=token.device)
        chosen = torch.log_softmax(logits.float(), dim=-1)[rows, token]
        for row in torch.nonzero(~done).flatten().tolist():
            log_probs[row].append(float(chosen[row]))
            if int(token[row]) == eos:
                done[row] = True
            else:
                generated[row].append(int(token[row]))
                ids[row, lengths[row]] = token[row]
                lengths[row] += 1
        if bool(done.all()):
            break
    confidence = np.array([np.exp(np.mean(lp)) for lp in log_probs])
    return [tokenizer.decode(g, skip_special_tokens=True).strip() for g in generated], heads, confidence


@torch.no_grad()
def predict_batch(model: Loc3rForSpatialQA, tokenizer: PreTrainedTokenizerFast, inputs: dict, lengths: torch.Tensor,
                  max_new_tokens: int = 8, challengers: Callable[[dict], list[str]] | None = None
                  ) -> dict[str, np.ndarray | list[str]]:
    """inputs: model_inputs() of a batch encoded without answers. `challengers`, given the outputs,
    names per row another answer to score ("" for none): the names are `challengers`, their
    probability `challenger_confidence` (NaN where none), as `answer_confidence` is the greedy answer's."""
    images = inputs["images"]
    batch, frames = images.shape[:2]
    prior_valid = inputs["prior_valid"][:, None].expand(batch, frames).flatten()
    geometry = inputs["geometry"].flatten(0, 1) if model.config.use_geometry_input else None
    tokens = model.encode_frames(images.flatten(0, 1), inputs["prior"].flatten(0, 1), prior_valid, geometry)
    tokens = tokens.view(batch, -1, tokens.shape[-1])
    answers, heads, confidence = greedy_answers(model, tokenizer, inputs["input_ids"], lengths, tokens,
                                                max_new_tokens)
    heads = {name: value.float().cpu().numpy() for name, value in heads.items()}
    pos = heads["pos"]
    if "pointer_spread" in heads:  # the pointer's spread widens the head's sigma, as the runtime reads it
        pos = np.concatenate([pos[:, :2], widened_log_sigma(pos[:, 2:4], heads["pointer_spread"])], axis=1)
    pos_mean, pos_sigma = split_gaussian(pos)
    yaw, yaw_concentration = circular_soft_argmax(heads["ori_logits"])
    ego_mean, ego_sigma = split_gaussian(heads["ego"][..., :4])
    ego_yaw, _ = circular_soft_argmax(heads["ego"][..., 4:])
    bev_mean, bev_sigma = split_gaussian(heads["bev"])
    map_points = {}
    if "map_bev" in heads:  # the map head's sub-patch points, sigmas and labels (what the runtime fuses)
        map_mean, map_sigma = split_gaussian(heads["map_bev"])
        logits = heads["map_semantic_logits"]
        map_points = {"map_bev": map_mean, "map_sigma": map_sigma, "map_labels": logits.argmax(axis=-1),
                      "map_probs": softmax(logits)}
    out = {
        "answers": answers, "answer_confidence": confidence,
        "position": pos_mean, "position_sigma": pos_sigma,
        "yaw": yaw, "yaw_concentration": yaw_concentration,
        "ego_xy": ego_mean, "ego_sigma": ego_sigma, "ego_yaw": ego_yaw,
        "bev": bev_mean, "bev_sigma": bev_sigma,
        "labels": heads["semantic_logits"].argmax(axis=-1), "label_probs": softmax(heads["semantic_logits"]),
        **map_points,
    }
    out["challenger_confidence"] = np.full(batch, np.nan)
    named = challengers(out) if challengers is not None else [""] * batch
    out["challengers"] = named
    picked = [row for row, answer in enumerate(named) if answer]
    if picked:
        forced = [tokenizer(answer_text(named[row]), add_special_tokens=False)["input_ids"] for row in picked]
        index = torch.tensor(picked, device=tokens.device)
        _, _, scored = greedy_answers(model, tokenizer, inputs["input_ids"][index], lengths[index], tokens[index],
                                      max_new_tokens, forced)
        out["challenger_confidence"][picked] = scored
    return out
