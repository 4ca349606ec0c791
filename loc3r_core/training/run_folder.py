"""A training run's folder: whether a command may start in it, and what a resume restarts from.

Kept free of torch and transformers: the CLI asks these questions before it imports the training
code, so that a wrong output_dir or tower path is refused in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

from loc3r_core.errors import UsageError


def checkpoints(run: Path) -> list[Path]:
    """The run's saved checkpoints, oldest first."""
    return sorted((run / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))


def check_run_folder(run: Path, resume: bool | None) -> list[Path]:
    """Refuse to start over a run, or to resume one that saved nothing; the checkpoints to resume from.
    resume None: a command that cannot resume (the pretraining stages take minutes, not hours)."""
    if not resume and run.exists() and any(run.iterdir()):
        hint = "pass --resume to continue it or choose another output_dir" if resume is False \
            else "choose another output_dir"
        raise UsageError(f"{run} already holds a run; {hint}")
    saved = checkpoints(run) if resume else []
    if resume and not saved:
        raise UsageError(f"{run} has no checkpoint to resume from")
    return saved


def pretrained_tower(model: dict) -> Path | None:
    """The pretrained vision tower a model config takes its vision_config from (None: it has its own,
    or names none); refused where that folder holds no tower."""
    tower = model.get("vision_tower_path")
    if not tower or "vision_config" in model:
        return None
    if not (Path(tower) / "config.json").is_file():
        raise UsageError(f"no vision tower at {tower} (make it with `loc3r pretrain-vision`)")
    return Path(tower)
