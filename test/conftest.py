"""Shared fixtures: small generated worlds, the CLI, and ROS isolation.

ROS tests talk over real DDS on loopback; every test session gets its own domain id so
parallel runs on one machine never hear each other.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ["ROS_DOMAIN_ID"] = os.environ.get("LOC3R_TEST_DOMAIN_ID", str(random.randint(1, 100)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

from loc3r_core.world.generate import generate_dataset  # noqa: E402
from loc3r_core.world.knobs import SPLITS, WorldKnobs  # noqa: E402

SMALL = replace(WorldKnobs(), frames=12, image_size=96)


def run_cli(*args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
    """Run the `loc3r` command the way a user does, capturing its output."""
    result = subprocess.run([sys.executable, "-m", "loc3r_core.cli.main", *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"loc3r {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def world_by_kind(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small scenes per trajectory kind, plus two bigger, fuller rooms (test-complex knobs)."""
    root = tmp_path_factory.mktemp("worlds")
    worlds = {}
    for kind in ("walk", "turn", "loop"):
        generate_dataset(root / kind, 2, 13, replace(SMALL, trajectory=kind), progress=False)
        worlds[kind] = root / kind
    complex_knobs = replace(SPLITS["test-complex"].knobs, frames=12, image_size=96)
    generate_dataset(root / "complex", 2, 13, complex_knobs, progress=False)
    worlds["complex"] = root / "complex"
    return worlds


@pytest.fixture(scope="session")
def scene_dirs(world_by_kind: dict[str, Path]) -> list[Path]:
    return sorted(p for world in world_by_kind.values() for p in world.glob("scene_*"))


def require_ros() -> None:
    """Skip ROS tests where rclpy or the built interfaces are missing, unless told to require them
    (make test sets LOC3R_REQUIRE_ROS=1, so CI fails instead of skipping)."""
    try:
        import rclpy  # noqa: F401

        from loc3r.srv import SpatialQuery  # noqa: F401
    except ImportError as exc:
        if os.environ.get("LOC3R_REQUIRE_ROS"):
            pytest.fail(f"ROS 2 is required here but not importable ({exc}); run `make test` or `. tools/env.sh`")
        pytest.skip(f"rclpy or the loc3r interfaces are not importable ({exc}); `. tools/env.sh` first")


# A model small enough to train a few steps in a test (4x4 patches of 8 px at 32 px).
TINY_MODEL = {
    "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                      "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
                      "vision_use_head": False},
    "text_config": {"model_type": "qwen2", "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
                    "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 512,
                    "tie_word_embeddings": True},
}


def tiny_train_config(train_data: Path, output_dir: Path, **overrides: object) -> dict:
    """TrainConfig fields of a seconds-long run on a small world."""
    return {"train_data": str(train_data), "output_dir": str(output_dir), "model": TINY_MODEL,
            "num_frames": 4, "batch_size": 4, "max_steps": 12, "warmup_steps": 2, "num_workers": 0,
            "tokenizer_vocab_size": 300, "log_every": 2, "checkpoint_every": 4, "learning_rate": 3e-3,
            **overrides}


def overfit_one_batch(model: object, batch: dict, steps: int, lr: float = 3e-3) -> list[dict[str, float]]:
    """Train model in place on one batch with AdamW; every step's unweighted loss terms."""
    import torch

    from loc3r_core.training.batch import model_inputs

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        out = model(**model_inputs(batch), labels=batch["labels"], targets=batch["targets"])
        history.append({k: v.item() for k, v in out.losses.items()})
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    return history
