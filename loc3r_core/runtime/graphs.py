"""The model cut into the pieces the streaming runtime calls (torch modules).

The PyTorch backend runs them eagerly and `loc3r export` turns each into an ONNX graph, so
both backends do exactly the same work:
- vision:  images (N, 3, S, S) in [0, 1] -> vision tokens (N, P, H), cached once per keyframe;
- camera:  prior (N, 4) + valid (N,) -> camera-prior tokens (N, H);
- embed:   token ids (T,) -> text embeddings (T, H);
- decoder: embeddings (1, T, H) after a key/value cache of the memory -> hidden (1, T, H) and
           the cache extended by these T tokens (layers, 1, kv heads, L + T, head dim);
- heads:   hidden (T, H) -> every readout for those rows (LM logits, BEV, labels, ego, Pos, Ori,
           and for pointer-readout models each row's pointer key and query);
- answer:  (models with an answer readout) the reads of the map from the asker (R, features)
           -> the context added to each answer token's state before the LM head (R, H), and
           with a copy path (answer_copy_labels) the vote on label tokens (R, vocab) that the
           session adds to their logits, scaled by the heads graph's answer_copy_gate.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import DynamicCache

from loc3r_core.model.modeling_loc3r import Loc3rForSpatialQA


class Graph(nn.Module):
    """Float inputs and outputs are fp32 whatever the model's dtype (fp16 exports compute inside in fp16)."""

    def __init__(self, model: Loc3rForSpatialQA) -> None:
        super().__init__()
        self.model = model
        self.dtype = next(model.parameters()).dtype


class VisionGraph(Graph):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.vision_tokens(images.to(self.dtype)).float()


class CameraGraph(Graph):
    def forward(self, prior: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.model.camera_tokens(prior.to(self.dtype), valid, prior.shape[0], self.dtype).float()


class EmbedGraph(Graph):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.language_model.get_input_embeddings()(ids).float()


class DecoderGraph(Graph):
    """The LM's decoder over new tokens with the memory's keys/values as plain tensors.

    Stacking the cache into two tensors (instead of transformers' cache object) is what lets
    ONNX Runtime hold it as ordinary inputs and outputs with a dynamic length.
    """

    def forward(self, embeds: torch.Tensor, past_keys: torch.Tensor, past_values: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cache = DynamicCache(config=self.model.config.text_config)
        for layer in range(past_keys.shape[0]):
            cache.update(past_keys[layer].to(self.dtype), past_values[layer].to(self.dtype), layer)
        out = self.model.language_model.get_decoder()(inputs_embeds=embeds.to(self.dtype), past_key_values=cache,
                                                       use_cache=True)
        keys = torch.stack([layer.keys for layer in out.past_key_values.layers]).float()
        values = torch.stack([layer.values for layer in out.past_key_values.layers]).float()
        return out.last_hidden_state.float(), keys, values


class HeadsGraph(Graph):
    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m, hidden = self.model, hidden.to(self.dtype)
        outputs = (m.language_model.get_output_embeddings()(hidden), m.bev_head(hidden), m.semantic_head(hidden),
                   m.ego_head(hidden), m.pos_head(hidden), m.ori_head(hidden))
        if m.pointer is not None:  # the order of runtime.backend.head_names
            outputs += (m.pointer.key(hidden), m.pointer.query(hidden))
            if m.pointer.second_query is not None:
                outputs += (m.pointer.second_query(hidden),)
            if m.pointer.relative is not None:
                outputs += (m.pointer.relative(hidden),)
            if m.centre_head is not None:
                outputs += (m.centre_head(hidden),)
            if m.front_head is not None:
                outputs += (m.front_head(hidden), m.pointer.front_strengths(hidden))
        if m.map_head is not None:
            outputs += (m.map_head(hidden),)
        if m.answer_readout is not None:
            outputs += (m.answer_readout.query(hidden), m.answer_readout.gate(hidden))
            if m.answer_readout.copy_gate is not None:
                outputs += (m.answer_readout.copy_gate(hidden),)
        return tuple(output.float() for output in outputs)


class AnswerGraph(Graph):
    """The answer readout's reads (R, features), which the session computes in numpy, -> the context
    (R, H), and with a copy path the first head's vote on the label tokens (R, vocab)."""

    def forward(self, reads: torch.Tensor) -> tuple[torch.Tensor, ...]:
        readout = self.model.answer_readout  # the order of runtime.backend.answer_outputs
        context = readout.out(reads.to(self.dtype)).float()
        return (context,) if readout.copy_gate is None else (context, readout.copy_logits(reads))


def model_graphs(model: Loc3rForSpatialQA) -> dict[str, nn.Module]:
    graphs = {"vision": VisionGraph(model), "camera": CameraGraph(model), "embed": EmbedGraph(model),
              "decoder": DecoderGraph(model), "heads": HeadsGraph(model)}
    if model.answer_readout is not None:
        graphs["answer"] = AnswerGraph(model)
    return {name: graph.eval() for name, graph in graphs.items()}
