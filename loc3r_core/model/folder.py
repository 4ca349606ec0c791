"""Model folders without the model: where the shipped one lives and whether a folder holds one.

Kept free of torch and transformers so that a CLI can refuse a wrong path in a fraction of a
second, before it pays for importing the model code.
"""

from __future__ import annotations

from pathlib import Path

from loc3r_core.errors import Loc3rError

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "checkpoints" / "loc3r-tiny"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class CheckpointError(Loc3rError):
    """A model folder that is missing, incomplete or damaged."""


def model_folder(folder: str | Path | None) -> Path:
    """The folder a command names (the shipped model when None), checked to hold a saved model."""
    path = SHIPPED_MODEL if folder is None else Path(folder)
    if not path.is_dir():
        raise CheckpointError(f"no model folder at {path}")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"{path} is not a loc3r model folder: missing {', '.join(missing)}")
    return path
