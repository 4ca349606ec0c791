"""The Loc3R model, top to bottom: vision tower -> projector -> causal LM, plus spatial heads.

Sequence: for each frame a camera-prior token then its vision tokens, then the text of
`tokenizer.prompt_text` (situation, <Pos>, <Ori>, question, answer). Read from the LM's
last hidden states:
- every vision token: a BEV point (x, y, sigmas) and a semantic label (the map);
- every camera token: the frame's ego pose (x, y, sigmas, yaw bins) (the robot's TF);
- <Pos>: the asker's position (x, y, sigmas); <Ori>: the asker's yaw as bins.
All positions are metres in the clip's BEV frame (gravity-aligned, anchored at frame 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from loc3r_core.model.configuration_loc3r import Loc3rConfig
from loc3r_core.model.prior import PRIOR_FEATURES
from loc3r_core.model.spatial import bin_centres, focal_cross_entropy, gaussian_nll, place_loss, soft_argmax_yaw, yaw_kl
from loc3r_core.model.vision_tower import build_vision_tower, load_vision_tower
from loc3r_core.readout import SECTOR_SHARPNESS, answer_read_width, ego_feature_count

IGNORE_INDEX = -100
COPY_FLOOR = 1e-3  # the answer copy path's floor on a read probability: a vote of at most log(1e3) against


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """The 2-layer MLP METHOD.md uses for the projector, the prior and the situation heads."""
    return nn.Sequential(nn.Linear(inputs, hidden), nn.GELU(), nn.Linear(hidden, outputs))


@dataclass
class Loc3rOutput:
    """What one forward pass gives; every spatial field is in the clip's BEV frame."""

    logits: torch.Tensor  # (B, L, vocab)
    bev: torch.Tensor  # (B, F, P, 4) x, y, log sigma_x, log sigma_y per vision token
    semantic_logits: torch.Tensor  # (B, F, P, classes)
    ego: torch.Tensor  # (B, F, 4 + bins) x, y, log sigmas, yaw logits per frame
    pos: torch.Tensor  # (B, 4) asker x, y, log sigmas
    ori_logits: torch.Tensor  # (B, bins) asker yaw
    # (B, places + 1, F * P) where <Pos> (pointer_places queries) and <Ori> point (pointer readout)
    pointer_weights: torch.Tensor | None = None
    pointer_spread: torch.Tensor | None = None  # (B, 2) variance of the points <Pos> weighs, per axis
    pointer_faced: torch.Tensor | None = None  # (B, 2) the place <Ori> points at (the asker faces it)
    object_centre: torch.Tensor | None = None  # (B, F, P, 4) centre of each token's object, x, y, log sigmas
    object_front: torch.Tensor | None = None  # (B, F, P, 2) the way each token's object faces (unnormalised)
    facing_rule_logits: torch.Tensor | None = None  # (B, 3) the facing rule (front_rule_weight; training only)
    map_bev: torch.Tensor | None = None  # (B, F, P, s^2, 4) sub-patch BEV points (map_subdivision s > 1)
    map_semantic_logits: torch.Tensor | None = None  # (B, F, P, s^2, classes) their labels
    answer_geometry: torch.Tensor | None = None  # (B, 4) the asked object in the asker's frame, x, y, log sigmas
    answer_context: torch.Tensor | None = None  # (B, H) the answer readout, added to every answer token's state
    answer_weights: torch.Tensor | None = None  # (B, heads, N) the answer readout's attention over vision tokens
    answer_copy: torch.Tensor | None = None  # (B, vocab) the first head's vote on label tokens (answer_copy_labels)
    row_clip: torch.Tensor | None = None  # packed: (R,) the clip of each text row; pos, ori, logits are per row
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


class Loc3rForSpatialQA(PreTrainedModel):
    config_class = Loc3rConfig
    base_model_prefix = "loc3r"
    main_input_name = "input_ids"
    _supports_sdpa = True

    def __init__(self, config: Loc3rConfig) -> None:
        super().__init__(config)
        hidden = config.text_config.hidden_size
        self.vision_tower = build_vision_tower(config.vision_config)
        self.projector = mlp(config.vision_config.hidden_size * config.vision_merge ** 2, hidden, hidden)
        self.prior_encoder = mlp(PRIOR_FEATURES, hidden, hidden)
        self.no_prior = nn.Parameter(torch.zeros(hidden))  # the learned "no odometry" camera token
        self.geometry_encoder = mlp(3, hidden, hidden) if config.use_geometry_input else None
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.bev_head = nn.Linear(hidden, 4)  # METHOD.md: a single linear layer
        self.semantic_head = nn.Linear(hidden, config.num_patch_classes)
        # s^2 sub-patch points and labels per vision token, for the map (map_subdivision)
        self.map_head = nn.Linear(hidden, config.map_subdivision ** 2 * (4 + config.num_patch_classes)) \
            if config.map_subdivision > 1 else None
        self.pos_head = mlp(hidden, hidden, 4)
        self.ori_head = mlp(hidden, hidden, config.num_yaw_bins)
        self.ego_head = mlp(hidden, hidden, 4 + config.num_yaw_bins)
        # training only: the runtime never reads it (answer_geometry_weight)
        self.answer_geometry_head = mlp(hidden, hidden, 4) if config.answer_geometry_weight > 0 else None
        self.pointer = SituationPointer(hidden, config.pointer_dim, config.pointer_places, config.relative_offset,
                                        config.object_front_weight > 0, config.front_rule_weight > 0,
                                        config.front_offset) \
            if config.situation_readout == "pointer" else None
        # offset from each token's BEV point to its object's centre (object_centre_weight)
        self.centre_head = nn.Linear(hidden, 4) if self.pointer is not None and config.object_centre_weight > 0 \
            else None
        # the way each token's object faces, in the clip's axes (object_front_weight)
        self.front_head = nn.Linear(hidden, 2) if self.pointer is not None and config.object_front_weight > 0 \
            else None
        self.answer_readout = AnswerReadout(hidden, config.pointer_dim, config.answer_readout_heads,
                                            config.num_patch_classes, config.answer_sector_features,
                                            config.answer_spread_reads,
                                            config.label_token_ids if config.answer_copy_labels else None,
                                            config.text_config.vocab_size) \
            if config.answer_readout_heads else None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self:
            nn.init.normal_(self.no_prior, std=0.02)
        if module is self.centre_head:  # every centre starts at the token's own point
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        if isinstance(module, AnswerReadout):  # the LM's answers are untouched until training says otherwise
            for layer in (module.gate, module.out[-1], *([module.copy_gate] if module.copy_gate is not None else [])):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        if isinstance(module, SituationPointer):
            nn.init.ones_(module.log_kappa)
            if module.relative is not None:  # no relative offset until the <Pos> state asks for one
                nn.init.zeros_(module.relative[-1].weight)
                nn.init.zeros_(module.relative[-1].bias)
            if module.front_gain is not None:  # no bump until the <Ori> state asks for one
                nn.init.zeros_(module.front_gain.weight)
                nn.init.zeros_(module.front_gain.bias)
                if module.gated:  # gated: "towards a place", the rule of most sentences, at first
                    nn.init.constant_(module.front_gain.bias[:1], 2.0)

    # --- the pieces the streaming runtime calls separately -------------------------------

    def encode_frames(
        self,
        images: torch.Tensor | None,
        prior: torch.Tensor | None = None,
        prior_valid: torch.Tensor | None = None,
        geometry: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frames -> their LM input tokens [camera, vision x P].

        images (N, 3, S, S) in [0, 1], or the tower's features of them (N, tower patches, C);
        prior (N, 4) prior features, used where prior_valid (N,) is true and the config uses a
        prior; geometry (N, P, 3) BEV-frame points (NaN where unknown), only for the
        geometric-input baseline. Returns (N, 1 + P, H).
        """
        tokens = self.vision_tokens(images, geometry, features)
        camera = self.camera_tokens(prior, prior_valid, tokens.shape[0], tokens.dtype)
        return torch.cat([camera[:, None], tokens], dim=1)

    def tower_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) in [0, 1] -> (N, tower patches, C): the vision tower's last hidden states."""
        return self.vision_tower(pixel_values=images * 2.0 - 1.0).last_hidden_state  # SigLIP expects [-1, 1]

    def vision_tokens(self, images: torch.Tensor | None, geometry: torch.Tensor | None = None,
                      features: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, S, S) in [0, 1] (or their tower features) -> (N, P, H): what the runtime caches
        once per keyframe."""
        features = self.tower_features(images) if features is None else features
        tokens = self.projector(merge_patches(features, self.config.vision_merge))
        if self.geometry_encoder is not None:
            if geometry is None:
                raise ValueError("this model takes per-patch 3D points as input (use_geometry_input)")
            known = ~torch.isnan(geometry).any(dim=-1, keepdim=True)
            tokens = tokens + self.geometry_encoder(torch.nan_to_num(geometry).float()) * known
        return tokens

    def camera_tokens(self, prior: torch.Tensor | None, prior_valid: torch.Tensor | None, count: int,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(N, H) camera-prior tokens: the encoded prior where valid, else the learned "no prior" token."""
        camera = self.no_prior.to(dtype).expand(count, -1)
        if self.config.use_camera_prior and prior is not None:
            use = prior_valid if prior_valid is not None else torch.ones_like(camera[:, 0], dtype=torch.bool)
            camera = torch.where(use[:, None], self.prior_encoder(prior.to(dtype)), camera)
        return camera

    def embed(self, input_ids: torch.Tensor, frame_tokens: torch.Tensor) -> torch.Tensor:
        """Text embeddings with the <frame>/<image> placeholders replaced, in order, by frame_tokens."""
        embeddings = self.language_model.get_input_embeddings()(input_ids)
        placeholders = (input_ids == self.config.frame_token_id) | (input_ids == self.config.image_token_id)
        expected = frame_tokens.shape[0] * frame_tokens.shape[1]
        if int(placeholders.sum()) != expected:
            raise ValueError(f"{int(placeholders.sum())} frame/image placeholders for {expected} frame tokens")
        return embeddings.masked_scatter(placeholders[..., None], frame_tokens.to(embeddings.dtype))

    def read_heads(self, input_ids: torch.Tensor, hidden: torch.Tensor, frames: int,
                   rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Spatial readouts from last-layer hidden states (B, L, H).

        rows (packed training): (row_ids (R, L'), row_hidden (R, L', H), row_clip (R,)), text rows
        that continue clip row_clip[r]'s sequence; the situation readouts then come from them.
        """
        batch, patches = input_ids.shape[0], self.config.patches_per_frame
        vision = hidden[input_ids == self.config.image_token_id].view(batch, frames, patches, -1)
        camera = hidden[input_ids == self.config.frame_token_id].view(batch, frames, -1)
        heads = {
            "bev": self.bev_head(vision),
            "semantic_logits": self.semantic_head(vision),
            "ego": self.ego_head(camera),
        }
        if self.map_head is not None:
            heads["map_bev"], heads["map_semantic_logits"] = split_map_head(self.map_head(vision),
                                                                               self.config.map_subdivision ** 2)
        if self.front_head is not None:
            heads["object_front"] = self.front_head(vision)
        if self.config.bev_frame == "camera":
            poses = frame_poses(heads["ego"])
            heads["bev"] = camera_to_clip(heads["bev"], poses)
            if "map_bev" in heads:
                heads["map_bev"] = camera_to_clip(heads["map_bev"], poses)
            if "object_front" in heads:  # fronts, like points, in their frame's camera axes
                heads["object_front"] = turn_to_clip(heads["object_front"], poses)
        if self.centre_head is not None:
            heads["object_centre"] = object_centre(heads["bev"], self.centre_head(vision))
        row_ids, row_hidden, row_clip = rows if rows is not None else (input_ids, hidden, None)

        def on_rows(clip_value: torch.Tensor) -> torch.Tensor:
            return clip_value if row_clip is None else clip_value[row_clip]

        pos_state = first_token_state(row_ids, row_hidden, self.config.pos_token_id)
        ori_state = first_token_state(row_ids, row_hidden, self.config.ori_token_id)
        heads["pos"], heads["ori_logits"] = self.pos_head(pos_state), self.ori_head(ori_state)
        if self.pointer is not None:
            pointed = on_rows(heads["object_centre" if "object_centre" in heads else "bev"][..., :2])
            keys = self.pointer.keys(on_rows(vision).flatten(1, 2))
            weights = self.pointer.attention(self.pointer.queries(pos_state, ori_state), keys)
            places, spread = self.pointer.point(weights, pointed.flatten(1, 2))
            at, faced = places[:, :-1].mean(dim=1), places[:, -1]
            fronts = pointed_fronts(weights, on_rows(heads["object_front"]).flatten(1, 2)) \
                if "object_front" in heads else None
            offset = self.pointer.relative_offset(pos_state)
            if offset is not None:
                viewer = viewer_place(on_rows(heads["ego"]))
                front = fronts[:, 1] if self.pointer.front_offset else None
                at = at + relative_place(offset.float(), at.detach(), faced.detach(), viewer, front)
            heads["pos"], heads["ori_logits"] = self.pointer.combine(heads["pos"], heads["ori_logits"], at, faced)
            if fronts is not None:
                bump = self.pointer.front_bump(ori_state, fronts, heads["ori_logits"].shape[-1])
                if self.pointer.gated:
                    heads["facing_rule_logits"] = self.pointer.front_gain(ori_state)
                heads["ori_logits"] = heads["ori_logits"] + bump.to(heads["ori_logits"].dtype)
            heads["pointer_weights"], heads["pointer_spread"] = weights, spread[:, :-1].mean(dim=1)
            heads["pointer_faced"] = faced
            if self.answer_readout is not None and has_every_row(row_ids, self.config.answer_token_id):
                probs = torch.softmax(on_rows(heads["semantic_logits"]).detach().float(), dim=-1).flatten(1, 2)
                weights, ego = self.answer_readout.attend(
                    first_token_state(row_ids, row_hidden, self.config.answer_token_id), keys, pointed.flatten(1, 2),
                    heads["pos"][:, :2].detach(), soft_argmax_yaw(heads["ori_logits"]).detach())
                reads = self.answer_readout.read(weights, ego, probs)
                heads["answer_context"] = self.answer_readout.out(reads.to(row_hidden.dtype))
                heads["answer_weights"] = weights
                if self.answer_readout.copy_gate is not None:
                    heads["answer_copy"] = self.answer_readout.copy_logits(reads)
        if self.answer_geometry_head is not None and has_every_row(row_ids, self.config.answer_token_id):
            heads["answer_geometry"] = self.answer_geometry_head(
                first_token_state(row_ids, row_hidden, self.config.answer_token_id))
        return heads

    def language_forward(self, inputs_embeds: torch.Tensor, **kwargs: object) -> tuple[torch.Tensor, object]:
        """Last-layer hidden states (after the final norm) and the LM's output object."""
        outputs = self.language_model.get_decoder()(inputs_embeds=inputs_embeds, **kwargs)
        return outputs.last_hidden_state, outputs

    # --- training / evaluation forward -------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        images: torch.Tensor | None = None,
        prior: torch.Tensor | None = None,
        prior_valid: torch.Tensor | None = None,
        geometry: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        targets: dict[str, torch.Tensor] | None = None,
        class_weights: dict[str, torch.Tensor] | None = None,
        row_ids: torch.Tensor | None = None,
        row_clip: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
    ) -> Loc3rOutput:
        """images (B, F, 3, S, S), or vision_features (B, F, tower patches, C) the frozen tower gave
        for them (training's feature cache); prior (B, F, 4); prior_valid (B,); geometry (B, F, P, 3).

        With labels (B, L; IGNORE_INDEX off the answer) and targets (see `spatial_losses`),
        the output carries the weighted total loss and each term; class_weights ("semantic",
        "map_semantic": (classes,)) weight the label losses' classes (training's class_balance).

        Packed (training): input_ids (B, L) hold each clip's video only, and row_ids (R, L') the
        text rows that continue clip row_clip (R,): the clip is encoded once and each row reads
        its cached keys and values, so rows never see each other. logits and labels are then the
        rows', and the situation readouts are per row.
        """
        if (images is None) == (vision_features is None):
            raise ValueError("give the frames as images or as vision_features, not both or neither")
        batch, frames = (images if vision_features is None else vision_features).shape[:2]
        frame_tokens = self.encode_frames(
            None if images is None else images.flatten(0, 1),
            None if prior is None else prior.flatten(0, 1),
            None if prior_valid is None else prior_valid[:, None].expand(batch, frames).flatten(),
            None if geometry is None else geometry.flatten(0, 1),
            None if vision_features is None else vision_features.flatten(0, 1),
        )
        embeddings = self.embed(input_ids, frame_tokens.view(batch, -1, frame_tokens.shape[-1]))
        if row_ids is None:
            hidden, _ = self.language_forward(embeddings)
            text_hidden, rows = hidden, None
        else:
            hidden, outputs = self.language_forward(embeddings, use_cache=True)
            cache = outputs.past_key_values
            cache.batch_select_indices(row_clip)  # each row gets its clip's keys and values
            text_hidden, _ = self.language_forward(self.language_model.get_input_embeddings()(row_ids),
                                                   past_key_values=cache, use_cache=False)
            rows = (row_ids, text_hidden, row_clip)
        heads = self.read_heads(input_ids, hidden, frames, rows)
        if "answer_context" in heads:  # from the <answer> token on, each state the LM head reads gains it
            text_ids = input_ids if row_ids is None else row_ids
            answering = (text_ids == self.config.answer_token_id).cumsum(dim=1) > 0
            text_hidden = text_hidden + answering[..., None] * heads["answer_context"][:, None]
        logits = self.language_model.get_output_embeddings()(text_hidden)
        if "answer_copy" in heads:  # ... and its label tokens the first head's vote
            vote = self.answer_readout.vote(text_hidden, heads["answer_copy"][:, None])
            logits = logits + answering[..., None] * vote
        output = Loc3rOutput(logits=logits, row_clip=row_clip, **heads)
        if labels is not None:
            output.losses = self.spatial_losses(output, labels, targets or {}, class_weights or {})
            weights = self.loss_weights()
            output.loss = sum(weights[name] * value for name, value in output.losses.items())
        return output

    def loss_weights(self) -> dict[str, float]:
        c = self.config
        return {
            "ce": c.ce_weight, "bev": c.bev_weight, "pos": c.situation_weight,
            "ori": c.situation_weight * c.ori_factor, "ego_pos": c.ego_weight,
            "ego_yaw": c.ego_weight * c.ori_factor, "semantic": c.semantic_weight,
            "grounding": c.grounding_weight if self.pointer is not None else 0.0,
            "faced_place": c.faced_place_weight if self.pointer is not None else 0.0,
            "answer_geometry": c.answer_geometry_weight,
            "answer_grounding": c.answer_grounding_weight if self.answer_readout is not None else 0.0,
            "object_centre": c.object_centre_weight if self.centre_head is not None else 0.0,
            "object_front": c.object_front_weight if self.front_head is not None else 0.0,
            "facing_rule": c.front_rule_weight if self.front_head is not None else 0.0,
            "map_bev": c.bev_weight if self.map_head is not None else 0.0,
            "map_semantic": c.semantic_weight if self.map_head is not None else 0.0,
        }

    def spatial_losses(self, out: Loc3rOutput, labels: torch.Tensor, targets: dict[str, torch.Tensor],
                       class_weights: dict[str, torch.Tensor] | None = None) -> dict:
        """Each loss term whose weight is not zero (unweighted).

        targets: bev_target (B, F, P, 2), bev_valid (B, F, P), patch_label (B, F, P; -1 unknown),
        ego_pose (B, F, 3), situation_position (B, 2), situation_yaw (B,), has_situation (B,),
        faced_xy (B, 2) the centre of the object the situation faces.
        """
        weights, class_weights = self.loss_weights(), class_weights or {}
        sigma = torch.deg2rad(torch.tensor(self.config.yaw_sigma_deg)).item()
        losses = {"ce": F.cross_entropy(out.logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                        ignore_index=IGNORE_INDEX)}
        if weights["bev"]:
            losses["bev"] = gaussian_nll(out.bev.float(), targets["bev_target"].float(), targets["bev_valid"])
        if weights["semantic"]:
            losses["semantic"] = focal_cross_entropy(out.semantic_logits, targets["patch_label"],
                                                     self.config.semantic_focal_gamma,
                                                     class_weights=class_weights.get("semantic"))
        if weights["ego_pos"]:
            ego = targets["ego_pose"].float()
            losses["ego_pos"] = gaussian_nll(out.ego[..., :4].float(), ego[..., :2])
            losses["ego_yaw"] = yaw_kl(out.ego[..., 4:], ego[..., 2], sigma)
        if weights["pos"]:
            placed = targets["has_situation"]  # the pseudo-situation has no place to learn
            losses["pos"] = gaussian_nll(out.pos.float(), targets["situation_position"].float(), placed)
            losses["ori"] = yaw_kl(out.ori_logits, targets["situation_yaw"], sigma, placed)
        if weights["answer_geometry"]:
            losses["answer_geometry"] = gaussian_nll(out.answer_geometry.float(), targets["answer_xy"].float(),
                                                     targets["answer_xy_valid"])
        if weights["map_bev"]:
            losses["map_bev"] = gaussian_nll(out.map_bev.float(), targets["map_target"].float(), targets["map_valid"])
            losses["map_semantic"] = focal_cross_entropy(out.map_semantic_logits, targets["map_label"],
                                                         self.config.semantic_focal_gamma,
                                                         class_weights=class_weights.get("map_semantic"))
        if weights["object_centre"]:
            losses["object_centre"] = gaussian_nll(out.object_centre.float(), targets["centre_target"].float(),
                                                   targets["bev_valid"])
        if weights["object_front"]:
            losses["object_front"] = front_loss(out.object_front, targets["front_target"], targets["front_valid"])
        if weights["facing_rule"]:
            losses["facing_rule"] = F.cross_entropy(out.facing_rule_logits.float(), targets["facing_rule"],
                                                    ignore_index=-1)
        if weights["grounding"] or weights["answer_grounding"]:
            patch_labels = targets["patch_label"].flatten(1)
            row_labels = patch_labels if out.row_clip is None else patch_labels[out.row_clip]  # each row's clip
        if weights["grounding"]:
            losses["grounding"] = grounding_loss(out.pointer_weights, row_labels, targets["grounding_classes"])
        if weights["faced_place"]:
            losses["faced_place"] = place_loss(out.pointer_faced, targets["faced_xy"], targets["has_situation"])
        if weights["answer_grounding"] and out.answer_weights is not None:
            asked = targets["asked_class"][:, None]
            if self.config.answer_grounding_counts:  # count questions: the counted class
                asked = torch.where(asked >= 0, asked, targets["counted_class"][:, None])
            masks = ((row_labels == asked) & (asked >= 0))[:, None]  # (B, 1, N): the first head only
            losses["answer_grounding"] = attention_mass_loss(out.answer_weights[:, :1], masks)
        return losses


class SituationPointer(nn.Module):
    """Reads the asker's place as an attention-weighted mean of the model's own BEV points.

    The <Pos> state queries every vision token (once, or twice with `places=2`: the asker then
    stands at the midpoint of the two pointed places); that place plus the MLP head's offset
    (and, with `relative=True`, offsets along the directions from the place to the faced place
    and to the middle of the camera path: relative_place) is the position, trained with the
    MLP's sigma; readouts widen that sigma by the spread of the points it weighs, how sure the
    pointer is. The <Ori> state points at a second place (what the asker faces) and the yaw
    logits gain kappa * cos(bin - heading from the position to it), a von Mises bump. Keys and
    points are detached, so the readout cannot bend the map. Keys (N, d), queries (d) and the
    relative offsets (4) are plain functions of one hidden state, so the runtime computes them
    in its heads graph and points itself, in numpy (loc3r_core.readout.pointer_attention,
    relative_offsets, facing_bump, widened_log_sigma).
    """

    def __init__(self, hidden: int, dim: int, places: int = 1, relative: bool = False, fronts: bool = False,
                 gated: bool = False, front_offset: bool = False) -> None:
        super().__init__()
        self.key = nn.Linear(hidden, dim)
        self.query = nn.Linear(hidden, dim)
        self.second_query = nn.Linear(hidden, dim) if places == 2 else None  # <Pos>'s second place
        # (along, left) towards faced, viewer, and with front_offset along <Pos>'s pointed front
        self.front_offset = relative and fronts and front_offset
        self.relative = mlp(hidden, hidden, 6 if self.front_offset else 4) if relative else None
        self.log_kappa = nn.Parameter(torch.ones(1))  # kappa e: a bump of about 40 degrees at first
        # strengths (<Ori>'s pointed fronts, <Pos>'s) of the yaw bumps towards the fronts they weigh;
        # gated: front_gain names the facing rule (FACING_RULES) and the strengths are its
        # probabilities times learned gains (rows: against, along; columns: <Ori>'s, <Pos>'s fronts)
        self.gated = fronts and gated
        self.front_gain = nn.Linear(hidden, 3 if self.gated else 2) if fronts else None
        self.rule_gains = nn.Parameter(torch.tensor([[-2.0, -2.0], [0.0, 2.0]])) if self.gated else None

    def keys(self, vision_states: torch.Tensor) -> torch.Tensor:
        return self.key(vision_states.detach())

    def queries(self, pos_state: torch.Tensor, ori_state: torch.Tensor) -> torch.Tensor:
        """(B, places + 1, d): <Pos>'s queries, then <Ori>'s."""
        second = [] if self.second_query is None else [self.second_query(pos_state)]
        return torch.stack([self.query(pos_state), *second, self.query(ori_state)], dim=1)

    def relative_offset(self, pos_state: torch.Tensor) -> torch.Tensor | None:
        return None if self.relative is None else self.relative(pos_state)

    def attention(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """(B, Q, d) queries over (B, N, d) keys -> (B, Q, N) weights."""
        return torch.softmax(torch.einsum("bqd,bnd->bqn", queries, keys).float() * keys.shape[-1] ** -0.5, dim=-1)

    def point(self, weights: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Q, N) weights on (B, N, 2) points (detached) -> (B, Q, 2) pointed places and the
        (B, Q, 2) per-axis variance of the points around them."""
        points = points.detach().float()
        places = torch.einsum("bqn,bnc->bqc", weights, points)
        spread = torch.einsum("bqn,bqnc->bqc", weights, (points[:, None] - places[:, :, None]) ** 2)
        return places, spread

    def combine(self, pos: torch.Tensor, ori_logits: torch.Tensor, at: torch.Tensor, faced: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """at, faced (B, 2): the pointed place and the faced place."""
        pos = pos + F.pad(at.to(pos.dtype), (0, 2))
        toward = faced - pos[:, :2].detach().float()
        heading = torch.atan2(toward[:, 1], toward[:, 0])
        centres = bin_centres(ori_logits.shape[-1], ori_logits.device)
        bump = self.log_kappa.exp() * torch.cos(centres[None] - heading[:, None])
        return pos, ori_logits + bump.to(ori_logits.dtype)

    def front_bump(self, ori_state: torch.Tensor, fronts: torch.Tensor, bins: int) -> torch.Tensor:
        """(B, bins) yaw-logit bumps gain_o |f_o| cos(bin - angle of f_o) + gain_p (the same for f_p):
        fronts (B, 2, 2) the pointed fronts f_o of <Ori> and f_p of <Pos> (pointed_fronts). A gain
        can be negative: "in front of the shelf, looking at it" faces against the shelf's front."""
        centres = bin_centres(bins, fronts.device)
        directions = torch.stack([torch.cos(centres), torch.sin(centres)], dim=-1)  # (bins, 2)
        bumps = torch.einsum("bkc,mc->bkm", fronts, directions)
        return (self.front_strengths(ori_state)[..., None] * bumps).sum(dim=1)

    def front_strengths(self, ori_state: torch.Tensor) -> torch.Tensor:
        """(B, 2) signed strengths of the bumps along <Ori>'s and <Pos>'s pointed fronts. Gated, the
        rule's probabilities are detached: only the rule's loss teaches which sentences get a bump."""
        out = self.front_gain(ori_state).float()
        if not self.gated:
            return out
        return torch.softmax(out, dim=-1).detach()[:, 1:] @ self.rule_gains.float()


class AnswerReadout(nn.Module):
    """Gives the answer the asker's view of the map (config.answer_readout_heads).

    Each head's query (from the <answer> state) scores every vision token by the pointer's key
    (what the token shows) plus a learned weighting of the token's egocentric features (where it
    lies as the asker, placed by the model's own <Pos>/<Ori> readout, sees it: ahead, left,
    distance, bearing). A head thus finds "the chair" or "the nearest thing on my left" and
    reads its egocentric features and class probabilities; `out` turns every head's read into a
    vector added to the answer tokens' states before the LM head. Pose, points and labels are
    detached: answers cannot bend the map or the placement. The runtime computes the queries
    and gates in its heads graph, the reads in numpy (loc3r_core.readout.answer_reads), and
    `out` in its answer graph. With a copy path (answer_copy_labels) the first head's class read
    also votes on the label tokens (copy_logits, in the answer graph) with a gate of each answer
    token's state (vote; copy_gate in the heads graph).
    """

    def __init__(self, hidden: int, dim: int, heads: int, classes: int, sectors: bool = False,
                 spread: bool = False, copy_tokens: list[int] | None = None, vocab: int = 0) -> None:
        super().__init__()
        self.heads, self.dim, self.sectors, self.spread = heads, dim, sectors, spread
        self.features, self.classes = ego_feature_count(sectors), classes
        self.query = nn.Linear(hidden, heads * dim)
        self.gate = nn.Linear(hidden, heads * self.features)
        self.out = mlp(heads * answer_read_width(self.features, classes, spread), hidden, hidden)
        # the copy path (Loc3rConfig.answer_copy_labels): a gate per answer token, and the first
        # token of each object label (the classes after the structure classes)
        self.copy_gate = nn.Linear(hidden, 1) if copy_tokens is not None else None
        if copy_tokens is not None and not 0 < len(copy_tokens) <= classes:
            raise ValueError(f"the copy path needs the first token of each object class, not {copy_tokens} "
                             "(label_token_ids: filled in from the tokenizer when training builds the model)")
        # a plain list, not a buffer: from_pretrained leaves buffers that no checkpoint holds uninitialised
        self.copy_tokens, self.vocab = list(copy_tokens or ()), vocab

    def copy_logits(self, reads: torch.Tensor) -> torch.Tensor:
        """(B, heads * width) reads -> (B, vocab): on each object label's first token, the log of the
        first head's read probability of that class (renormalised over object classes, floored at
        COPY_FLOOR), less their mean, so the vote moves labels against each other only. The vote's
        gradient also trains the first head's attention (with the reads detached, P28, what_direction
        fell back: results/experiments.md, session 19)."""
        width = answer_read_width(self.features, self.classes, self.spread)
        first = reads.float().view(reads.shape[0], self.heads, width)[:, 0, self.features:self.features + self.classes]
        objects = first[:, self.classes - len(self.copy_tokens):]
        log_q = torch.log(objects / objects.sum(dim=-1, keepdim=True).clamp(min=1e-6) + COPY_FLOOR)
        votes = log_q - log_q.mean(dim=-1, keepdim=True)
        label_tokens = F.one_hot(torch.tensor(self.copy_tokens, device=reads.device), self.vocab).float()
        return votes @ label_tokens  # (objects, vocab): each object label's first token, one-hot

    def vote(self, states: torch.Tensor, copy: torch.Tensor) -> torch.Tensor:
        """(..., H) answer-token states and their (..., vocab) copy logits -> what their LM logits gain."""
        return (self.copy_gate(states).float() * copy).to(states.dtype)

    def reads(self, answer_state: torch.Tensor, keys: torch.Tensor, points: torch.Tensor, class_probs: torch.Tensor,
              position: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
        """answer_state (B, H); keys (B, N, d); points (B, N, 2); class_probs (B, N, C); the asker's
        position (B, 2) and yaw (B,) -> (B, heads * answer_read_width(features, C, spread)) reads."""
        weights, ego = self.attend(answer_state, keys, points, position, yaw)
        return self.read(weights, ego, class_probs)

    def attend(self, answer_state: torch.Tensor, keys: torch.Tensor, points: torch.Tensor, position: torch.Tensor,
               yaw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> each head's (B, heads, N) attention weights and the tokens' (B, N, features)."""
        ego = egocentric_features(points.float(), position.float(), yaw.float(), self.sectors)
        queries = self.query(answer_state).view(-1, self.heads, self.dim).float()
        gates = self.gate(answer_state).view(-1, self.heads, self.features).float()
        scores = torch.einsum("bhd,bnd->bhn", queries, keys.float()) * self.dim ** -0.5 \
            + torch.einsum("bhe,bne->bhn", gates, ego)
        return torch.softmax(scores, dim=-1), ego

    def read(self, weights: torch.Tensor, ego: torch.Tensor, class_probs: torch.Tensor) -> torch.Tensor:
        """(B, heads, N) weights -> (B, heads * width) reads: the weighted mean of each token's
        features and class probabilities; with `spread`, also how far (RMS, metres) the weighed
        places lie from their mean (one object, or several apart: what a mean cannot say)."""
        values = torch.cat([ego, class_probs.float()], dim=-1)
        reads = torch.einsum("bhn,bnv->bhv", weights, values)
        if self.spread:
            offsets = ego[:, None, :, :2] - reads[..., None, :2]  # (B, heads, N, 2): ahead, left
            rms = torch.sqrt(torch.einsum("bhn,bhn->bh", weights, (offsets ** 2).sum(-1)) + 1e-6)
            reads = torch.cat([reads, rms[..., None]], dim=-1)
        return reads.flatten(1)


def egocentric_features(points: torch.Tensor, position: torch.Tensor, yaw: torch.Tensor, sectors: bool = False
                        ) -> torch.Tensor:
    """(B, N, 2) points -> (B, N, ego_feature_count(sectors)) as seen from the asker at position
    (B, 2) facing yaw (B,): the torch twin of loc3r_core.readout.egocentric_features."""
    delta = points - position[:, None]
    cos, sin = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    ahead, left = cos * delta[..., 0] + sin * delta[..., 1], -sin * delta[..., 0] + cos * delta[..., 1]
    distance = torch.sqrt(ahead ** 2 + left ** 2 + 1e-6)
    columns = [ahead, left, distance, ahead / distance, left / distance]
    if sectors:
        columns += [torch.sigmoid(SECTOR_SHARPNESS * (c - math.sqrt(0.5)))
                    for c in (ahead / distance, left / distance, -ahead / distance, -left / distance)]
    return torch.stack(columns, dim=-1)


def split_map_head(raw: torch.Tensor, subpatches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., s^2 * (4 + C)) map-head output -> (..., s^2, 4) sub-patch points and (..., s^2, C) label
    logits, sub-patches row-major within the token (as data.targets.subdivide orders them; the
    runtime's numpy twin is readout.split_map_head)."""
    per_sub = raw.unflatten(-1, (subpatches, -1))
    return per_sub[..., :4], per_sub[..., 4:]


def object_centre(bev: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """(..., 4) BEV points and centre-head outputs -> (..., 4) object centres (x, y, log sigmas):
    the point (detached: the centre loss cannot bend the map) moved by the head's offset."""
    return torch.cat([bev[..., :2].detach() + offset[..., :2], offset[..., 2:]], dim=-1)


def frame_poses(ego: torch.Tensor) -> torch.Tensor:
    """(B, F, 4 + bins) ego head -> (B, F, 3) each frame's estimated (x, y, yaw) in the clip (detached:
    the map cannot bend the ego pose), frame 0 at the origin by definition (as in the runtime)."""
    ego = ego.detach().float()
    poses = torch.cat([ego[..., :2], soft_argmax_yaw(ego[..., 4:])[..., None]], dim=-1)
    return torch.cat([torch.zeros_like(poses[:, :1]), poses[:, 1:]], dim=1)


def camera_to_clip(raw: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
    """(B, F, ..., 4) points in their frame's camera axes (x, y, log sigmas) and (B, F, 3) frame poses
    -> the points in the clip's axes, log sigmas unchanged (bev_frame "camera"; the runtime's numpy
    twin is Session._fuse, which places a keyframe's points by its map pose)."""
    placed = turn_to_clip(raw[..., :2], poses) + poses.view(*poses.shape[:2], *([1] * (raw.dim() - 3)), 3)[..., :2]
    return torch.cat([placed.to(raw.dtype), raw[..., 2:]], dim=-1)


def turn_to_clip(vectors: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
    """(B, F, ..., 2) vectors in their frame's camera axes, turned by the (B, F, 3) frame poses' yaws
    into the clip's axes (no shift: directions, or points before camera_to_clip adds the position)."""
    yaw = poses[..., 2].view(*poses.shape[:2], *([1] * (vectors.dim() - 3))).to(vectors.dtype)
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    x, y = vectors[..., 0], vectors[..., 1]
    return torch.stack([cos * x - sin * y, sin * x + cos * y], dim=-1)


def viewer_place(ego: torch.Tensor) -> torch.Tensor:
    """(B, F, 4 + bins) ego head -> (B, 2) the mean of the frames' estimated positions (detached),
    frame 0 at the origin by definition (as the runtime's map frame puts it)."""
    return ego[:, 1:, :2].detach().float().sum(dim=1) / ego.shape[1]


def relative_place(offset: torch.Tensor, at: torch.Tensor, faced: torch.Tensor, viewer: torch.Tensor,
                   front: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 4) offsets (along, left) towards the faced place, then towards the viewer, and (B, 6) with
    a front (B, 2) also along it -> (B, 2) in the clip's axes; the torch twin of
    loc3r_core.readout.relative_offsets."""
    total = rotate_towards(offset[:, :2], faced - at) + rotate_towards(offset[:, 2:4], viewer - at)
    return total if front is None else total + rotate_towards(offset[:, 4:6], front)


def pointed_fronts(weights: torch.Tensor, fronts: torch.Tensor) -> torch.Tensor:
    """(B, 2, 2) the mean unit front of the tokens <Ori> points at, then of those <Pos> points at
    (its places averaged), from pointer weights (B, Q, N) and fronts (B, N, 2), detached: the
    readout cannot bend the front head (numpy twin: loc3r_core.readout.pointed_fronts)."""
    unit = F.normalize(fronts.detach().float(), dim=-1)
    pointed = torch.einsum("bqn,bnc->bqc", weights, unit)
    return torch.stack([pointed[:, -1], pointed[:, :-1].mean(dim=1)], dim=1)


def rotate_towards(offset: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """(B, 2) offsets given as (along, left of) a direction (B, 2) -> offsets in the clip's axes.

    A zero direction (both pointers on one place) leaves the offset along the clip's x axis.
    """
    heading = torch.atan2(direction[:, 1], direction[:, 0])
    cos, sin = torch.cos(heading), torch.sin(heading)
    return torch.stack([cos * offset[:, 0] - sin * offset[:, 1], sin * offset[:, 0] + cos * offset[:, 1]], dim=1)


def grounding_loss(weights: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Mean -log of the attention mass each pointer puts on the tokens of its named objects.

    weights (B, Q, N): <Pos>'s one or two queries then <Ori>'s, over vision tokens; labels (B, N)
    patch classes; classes (B, 3): what places the situation (two slots, -1 unused) and what it
    faces (-1: no situation). One <Pos> query points at either placing object; two point one at
    each (both at the one object of a one-object relation). Pointers whose objects no token
    shows are left out.
    """
    placing, faced = classes[:, :2, None], classes[:, 2:3]
    if weights.shape[1] == 2:
        pos_masks = [((labels[:, None, :] == placing) & (placing >= 0)).any(dim=1)]
    else:
        second = torch.where(classes[:, 1:2] >= 0, classes[:, 1:2], classes[:, 0:1])
        pos_masks = [(labels == classes[:, 0:1]) & (classes[:, 0:1] >= 0), (labels == second) & (second >= 0)]
    return attention_mass_loss(weights, torch.stack([*pos_masks, (labels == faced) & (faced >= 0)], dim=1))


def front_loss(front: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean 1 - cos(angle) between the (B, F, P, 2) predicted fronts and their unit targets, over
    the (B, F, P) tokens whose object has a front (none: 0, still a graph for the step)."""
    if not bool(valid.any()):
        return front.sum() * 0.0
    cosine = (F.normalize(front.float(), dim=-1) * target.float()).sum(dim=-1)
    return (1.0 - cosine[valid]).mean()


def attention_mass_loss(weights: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean -log of the attention mass (B, Q, N) weights put on their (B, Q, N) masks' tokens; queries
    whose mask holds no token are left out."""
    mass = (weights * masks).sum(dim=-1)
    used = masks.any(dim=-1)
    if not bool(used.any()):
        return weights.sum() * 0.0
    return -(mass[used].clamp(min=1e-6).log()).mean()


def merge_patches(features: torch.Tensor, merge: int) -> torch.Tensor:
    """(N, side^2, C) row-major patch features -> (N, (side / merge)^2, merge^2 * C): each merge x merge
    block concatenated (rows first), the blocks in row-major order like every per-token target."""
    if merge == 1:
        return features
    count, patches, channels = features.shape
    side = math.isqrt(patches)
    blocks = features.view(count, side // merge, merge, side // merge, merge, channels).permute(0, 1, 3, 2, 4, 5)
    return blocks.reshape(count, (side // merge) ** 2, merge * merge * channels)


def has_every_row(input_ids: torch.Tensor, token_id: int) -> bool:
    """Whether every row holds token_id (the answer readouts need the <answer> token)."""
    return bool((input_ids == token_id).any(dim=1).all())


def first_token_state(input_ids: torch.Tensor, hidden: torch.Tensor, token_id: int) -> torch.Tensor:
    """(B, H) hidden state at each row's first occurrence of token_id."""
    is_token = input_ids == token_id
    if not bool(is_token.any(dim=1).all()):
        raise ValueError("every sequence needs the <Pos> and <Ori> tokens")
    index = is_token.int().argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def build_model(config: Loc3rConfig) -> Loc3rForSpatialQA:
    """A fresh model; pretrained backbones are loaded from the config's local paths if given."""
    model = Loc3rForSpatialQA(config)
    if config.vision_tower_path:
        model.vision_tower = load_vision_tower(config.vision_tower_path, config.vision_config)
    if config.language_model_path:
        model.language_model = AutoModelForCausalLM.from_pretrained(config.language_model_path,
                                                                    config=config.text_config)
    return apply_freezing(model)


def apply_freezing(model: Loc3rForSpatialQA) -> Loc3rForSpatialQA:
    """Freeze what the config says is frozen: at build time, and again when a run is resumed."""
    if model.config.freeze_vision_tower:
        model.vision_tower.requires_grad_(False)
    return model
