"""Model folders: save_pretrained layout (config.json, model.safetensors, tokenizer files).

Loading checks the folder first so that a missing or damaged checkpoint is one readable
error, not a traceback from deep inside transformers.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from loc3r_core.atomic import atomic_path
from loc3r_core.model.configuration_loc3r import Loc3rConfig
from loc3r_core.model.folder import CheckpointError, model_folder
from loc3r_core.model.modeling_loc3r import Loc3rForSpatialQA


def save_model(model: Loc3rForSpatialQA, tokenizer: PreTrainedTokenizerFast, folder: Path) -> Path:
    """Write the model and its tokenizer to folder, atomically (readers never see half a model)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return folder


def load_model(folder: str | Path | None = None) -> tuple[Loc3rForSpatialQA, PreTrainedTokenizerFast]:
    """The model in eval mode and its tokenizer; the shipped model when folder is None."""
    folder = model_folder(folder)
    hf_logging.disable_progress_bar()  # a bar per load of a few-MB model is noise in CLI output
    try:
        config = Loc3rConfig.from_pretrained(folder)
    except Exception as exc:  # transformers raises several types for an unreadable config
        raise CheckpointError(f"{folder}/config.json is not a loc3r config: {first_line(exc)}") from None
    try:
        model, info = Loc3rForSpatialQA.from_pretrained(folder, config=config, output_loading_info=True)
    except Exception as exc:  # safetensors and transformers raise many types for a damaged file
        raise CheckpointError(f"{folder}/model.safetensors cannot be loaded: {first_line(exc)}") from None
    absent = [k for k in info.get("missing_keys", []) if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if absent or info.get("mismatched_keys"):
        raise CheckpointError(f"{folder}/model.safetensors does not match its config.json "
                              f"({len(absent)} missing, {len(info.get('mismatched_keys', []))} mismatched tensors)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:
        raise CheckpointError(f"{folder}: tokenizer cannot be loaded: {first_line(exc)}") from None
    if len(tokenizer) > model.language_model.get_input_embeddings().num_embeddings:
        raise CheckpointError(f"{folder}: tokenizer has {len(tokenizer)} tokens, more than the model's embeddings")
    return model.eval(), tokenizer


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
