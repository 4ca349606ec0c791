"""Configuration of the Loc3R model (a Hugging Face PreTrainedConfig).

The vision tower and the language model are ordinary transformers configs, so a real
backbone is a config change: name a SigLIP-family vision config and a Qwen2-family text
config, or point `vision_tower_path` / `language_model_path` at local pretrained folders.
"""

from __future__ import annotations

from typing import ClassVar

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from loc3r_core.world.vocabulary import PATCH_CLASSES

SITUATION_READOUTS = ("mlp", "pointer")
BEV_FRAMES = ("clip", "camera")


@strict
class Loc3rConfig(PreTrainedConfig):
    """Defaults describe the shipped tiny model; loss weights default to the paper's.

    Loss: CE + bev_weight * L_BEV + situation_weight * (L_pos + ori_factor * L_ori)
          + ego_weight * (L_ego_pos + ori_factor * L_ego_yaw) + semantic_weight * L_sem.
    """

    model_type = "loc3r"

    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="siglip_vision_model",
            init_kwargs={"hidden_size": 96, "intermediate_size": 256, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "image_size": 64, "patch_size": 16, "vision_use_head": False},
        ),
        "text_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="qwen2",
            init_kwargs={"vocab_size": 512, "hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 4,
                         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
                         "tie_word_embeddings": True},
        ),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    # Local folders of pretrained backbones (save_pretrained layout); used only when a model
    # is first built with `build_model`; afterwards the weights live in model.safetensors.
    vision_tower_path: str | None = None
    language_model_path: str | None = None
    freeze_vision_tower: bool = False  # the paper freezes a pretrained SigLIP
    # Special token ids, filled in from the tokenizer when the model is built.
    image_token_id: int = 0
    frame_token_id: int = 0
    pos_token_id: int = 0
    ori_token_id: int = 0
    answer_token_id: int = 0
    # Camera prior: one token per frame from its planar pose relative to the first frame.
    use_camera_prior: bool = True
    # Baseline (b) of the ablation: per-patch 3D points encoded and added to vision tokens.
    use_geometry_input: bool = False
    num_yaw_bins: int = 36
    # How <Pos>/<Ori> are read: "mlp" (the paper: an MLP on one hidden state) or "pointer"
    # (that MLP plus an attention-weighted mean of the model's own per-token BEV points; the
    # yaw leans towards the direction from the position to a second pointer, the faced thing).
    situation_readout: str = "mlp"
    pointer_dim: int = 64
    # Pointer models only. pointer_places: how many places <Pos> points at; with 2 the asker
    # stands at their midpoint ("between the bed and the desk"), and grounding sends one to each
    # placing object (both to the one object of a one-object relation).
    pointer_places: int = 1
    # relative_offset: the position also moves by offsets the <Pos> state gives in two frames the
    # clip's axes cannot express: along the direction from the pointed place to the faced one
    # ("next to the bed, facing the desk" stands on the bed's desk side), and along the direction
    # from it to the middle of the camera path ("in front of the shelf": fronts face the room).
    relative_offset: bool = False
    # Pointer models only: weight of a Gaussian NLL on a per-token head (offset from the token's
    # BEV point, log sigmas) to the centre of the object the token shows (its own point for
    # structure); the pointer then averages these centres, not surface points (0: no head).
    object_centre_weight: float = 0.0
    # Pointer models only: weight of a cosine loss on a per-token head to the way the token's
    # object faces (fronted objects: wall pieces face the room, chairs their table). The yaw
    # logits then gain, with strengths the <Ori> state sets, bumps towards the mean front of the
    # tokens <Ori> points at and of those <Pos> points at: "in front of the shelf, looking at
    # it" faces against the shelf's front, whatever the lever arm from the asker to it (0: no head).
    object_front_weight: float = 0.0
    # With object fronts only: weight of a cross-entropy on a head of the <Ori> state that names
    # the situation's facing rule (world.situations.FACING_RULES: towards a place, against the
    # named object's front, along the seat's front; from its relations, training only). The front
    # bumps' strengths then come from that head's (detached) probabilities times learned gains,
    # so a sentence whose rule is "towards a place" gets no bump (0: the <Ori> state sets them freely).
    front_rule_weight: float = 0.0
    # With relative_offset and object fronts: a third offset of the position, along the mean front
    # of the tokens <Pos> points at. "In front of the shelf" stands ahead of the shelf's front face
    # whichever way the camera path lies, a direction the other two offsets cannot name (faced is
    # the shelf itself; the path is only roughly in front of it).
    front_offset: bool = False
    # Pointer models only: weight of -log(attention mass on the tokens of the objects the
    # situation names), <Pos> on what places it, <Ori> on what it faces (training only).
    grounding_weight: float = 0.0
    # Pointer models only: weight of a Huber loss (0.5 m) on the distance from the place <Ori>
    # points at to the centre of the object the situation faces. The asker's facing is read off
    # that place (the ori head alone sits near chance), so this trains the pointer to land on the
    # object's centre, not only among its tokens (training only).
    faced_place_weight: float = 0.0
    # Weight of an auxiliary Gaussian NLL on the <answer> token's hidden state: where the object
    # a question asks about stands in the asker's own frame (metres ahead, to the left), so the
    # state the answer is decoded from holds the egocentric geometry it depends on (training only;
    # questions about one object: direction, distance, nearest, what_direction).
    answer_geometry_weight: float = 0.0
    # Pointer models only: how many heads of the answer readout (0: none). The <answer> state
    # attends over the vision tokens (the pointer's keys, plus a learned preference over each
    # token's place as the asker sees it: ahead, left, distance, bearing from the predicted
    # <Pos>/<Ori> pose) and reads those egocentric features and the tokens' class probabilities;
    # an MLP of the reads is added to the hidden state of every answer token before the LM head.
    # It gives the answer the geometry the LM does not compute from its own placement.
    answer_readout_heads: int = 0
    # Answer-readout models only: weight of -log(the attention mass the readout's first head puts
    # on the tokens of the class of the one object a direction / distance / nearest /
    # what_direction question is about), so that head learns to find the asked object (training only).
    answer_grounding_weight: float = 0.0
    # ... and on count questions the same head is taught to look at the counted class (the
    # tokens whose places say how many there are, and which lie ahead).
    answer_grounding_counts: bool = False
    # Answer-readout models only: the egocentric features also say how far inside each of the
    # four 90-degree sectors (front, left, behind, right) a token lies (readout.SECTOR_FEATURES),
    # so a head can prefer "well inside my left, and near" (what_direction) with two gate weights.
    answer_sector_features: bool = False
    # Answer-readout models only: each head also reads how far (RMS, metres) the places it weighs
    # lie from their mean, which a mean cannot say: one object, or several apart (count).
    answer_spread_reads: bool = False
    # Answer-readout models only: the class probabilities the first head reads also vote on the
    # answer's label tokens directly (a copy path, as pointer-generator models copy): each answer
    # token's logits gain g * (log q - mean log q) on the first token of every object label, q the
    # read's probabilities over object classes and g a gate of that token's state (0 at first),
    # so the LM need not relay through its state what the readout already found.
    answer_copy_labels: bool = False
    # The first token of each object label (PATCH_CLASSES after the structure classes), filled in
    # from the tokenizer when the model is built; the copy path's vocabulary.
    label_token_ids: list[int] | None = None
    # Map readout: each vision token also gives s x s sub-patch BEV points and labels (s =
    # map_subdivision; 1: none), trained like the BEV and semantic heads on a finer patch grid,
    # so the runtime's map gets s^2 points per token instead of one (the other heads unchanged).
    map_subdivision: int = 1
    # Where the BEV heads (per token and sub-patch) put their points: "clip" (METHOD.md: a linear
    # layer gives clip-frame coordinates) or "camera" (the layer gives the point in the axes of
    # its own frame's camera, placed in the clip by that frame's estimated ego pose, detached).
    # A clip-frame layer cannot reach coordinates it never saw (bigger rooms); a camera-frame
    # point depends on what the image shows, not on where the clip began. Sigmas stay per clip axis.
    bev_frame: str = "clip"
    # Each m x m block of the tower's patch tokens becomes one LM token (concatenated, then the
    # projector), as Qwen2-VL merges 2 x 2 patches: the tower sees m times the resolution in
    # patches of the same size while the LM's cost and every per-token target stay those of the
    # coarser grid (1: no merge).
    vision_merge: int = 1
    yaw_sigma_deg: float = 10.0  # width of the wrapped-Gaussian yaw target
    num_patch_classes: int = len(PATCH_CLASSES)
    ce_weight: float = 1.0
    bev_weight: float = 0.05
    situation_weight: float = 0.075
    ori_factor: float = 3.5
    ego_weight: float = 0.075
    semantic_weight: float = 0.05
    semantic_focal_gamma: float = 0.0  # 0: plain CE on patch labels; > 0: focal loss (hard, rare classes)
    tie_word_embeddings: bool = True

    def validate_architecture(self) -> None:
        super().validate_architecture()
        if self.situation_readout not in SITUATION_READOUTS:
            raise ValueError(f"situation_readout must be one of {SITUATION_READOUTS}, not {self.situation_readout!r}")
        if self.pointer_places not in (1, 2):
            raise ValueError(f"pointer_places must be 1 or 2, not {self.pointer_places}")
        if self.object_front_weight and self.situation_readout != "pointer":
            raise ValueError("object_front_weight needs situation_readout: pointer (it reads fronts where it points)")
        if self.front_rule_weight and not self.object_front_weight:
            raise ValueError("front_rule_weight needs object_front_weight (it gates the front bumps)")
        if self.front_offset and not (self.relative_offset and self.object_front_weight):
            raise ValueError("front_offset needs relative_offset and object_front_weight (it offsets along the fronts)")
        if self.faced_place_weight and self.situation_readout != "pointer":
            raise ValueError("faced_place_weight needs situation_readout: pointer (it trains where <Ori> points)")
        if self.answer_readout_heads < 0:
            raise ValueError(f"answer_readout_heads must be 0 or more, not {self.answer_readout_heads}")
        if self.answer_readout_heads and self.situation_readout != "pointer":
            raise ValueError("answer_readout_heads needs situation_readout: pointer (it reads the pointer's keys)")
        if self.answer_grounding_counts and not self.answer_grounding_weight:
            raise ValueError("answer_grounding_counts needs answer_grounding_weight (it extends that term)")
        if self.answer_sector_features and not self.answer_readout_heads:
            raise ValueError("answer_sector_features needs answer_readout_heads (they are its heads' features)")
        if self.answer_spread_reads and not self.answer_readout_heads:
            raise ValueError("answer_spread_reads needs answer_readout_heads (they are its heads' reads)")
        if self.answer_copy_labels and not self.answer_readout_heads:
            raise ValueError("answer_copy_labels needs answer_readout_heads (it copies the first head's read)")
        if self.bev_frame not in BEV_FRAMES:
            raise ValueError(f"bev_frame must be one of {BEV_FRAMES}, not {self.bev_frame!r}")
        if not 1 <= self.map_subdivision <= 8:
            raise ValueError(f"map_subdivision must lie in [1, 8], not {self.map_subdivision}")
        side = self.vision_config.image_size // self.vision_config.patch_size
        if self.vision_merge < 1 or side % self.vision_merge:
            raise ValueError(f"vision_merge must divide the tower's {side} x {side} patches, not {self.vision_merge}")

    @property
    def patches_per_frame(self) -> int:
        """LM vision tokens per frame (after vision_merge)."""
        rows, cols = self.patch_grid
        return rows * cols

    @property
    def patch_grid(self) -> tuple[int, int]:
        """The LM's vision-token grid, on which every per-token target lies."""
        side = self.vision_config.image_size // self.vision_config.patch_size // self.vision_merge
        return side, side


def config_kwargs(overrides: dict) -> dict:
    """Loc3rConfig keyword arguments where a partial vision_config / text_config dict changes only
    the fields it names of the shipped tiny backbone (a bare dict would otherwise start from the
    transformers defaults: a 768-wide, 12-layer SigLIP)."""
    kwargs = dict(overrides)
    for name, spec in Loc3rConfig.sub_configs_defaults.items():
        given = kwargs.get(name)
        if isinstance(given, dict):
            kwargs[name] = {"model_type": spec.model_type, **spec.init_kwargs, **given}
    return kwargs


AutoConfig.register("loc3r", Loc3rConfig)
