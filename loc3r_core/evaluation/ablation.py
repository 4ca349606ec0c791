"""The evidence table: does training with spatial objectives beat feeding geometry as input?

Every variant trains from the same base config (backbone, data, steps, seed); only the
switches below differ. Each is then evaluated on the same test splits.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loc3r_core.atomic import atomic_path
from loc3r_core.errors import UsageError
from loc3r_core.training.config import TrainConfig, train_folders

# Every term a spatial truth supervises (the layout, the situation, the ego pose, the labels, and
# which tokens show the named objects): a variant without spatial objectives sets them all to 0.
NO_SPATIAL_LOSSES = {"bev_weight": 0.0, "situation_weight": 0.0, "ego_weight": 0.0, "semantic_weight": 0.0,
                     "grounding_weight": 0.0, "answer_grounding_weight": 0.0, "faced_place_weight": 0.0,
                     "object_centre_weight": 0.0, "object_front_weight": 0.0, "front_rule_weight": 0.0,
                     "answer_geometry_weight": 0.0}
# The paper's readout: <Pos>/<Ori> read by an MLP on their hidden states. The pointer and the answer
# readout read the model's own BEV points, which only the layout objective trains, so the variants
# without it use this one, and c_loc3r_mlp gives Loc3R with the same readout for the comparison.
PAPER_READOUT = {"situation_readout": "mlp", "pointer_places": 1, "relative_offset": False,
                 "answer_readout_heads": 0, "grounding_weight": 0.0, "answer_grounding_weight": 0.0,
                 "faced_place_weight": 0.0, "object_front_weight": 0.0, "front_rule_weight": 0.0,
                 "front_offset": False}


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    model: dict  # Loc3rConfig overrides
    eval_prior: str  # camera prior at evaluation: odometry or none


VARIANTS = (
    Variant("a_qa_only", "fine-tuning on QA only (CE), no camera prior, the paper's MLP readout",
            {**PAPER_READOUT, **NO_SPATIAL_LOSSES, "use_camera_prior": False}, "none"),
    Variant("b_geometry_input", "per-patch 3D points (depth + pose) added to vision tokens; QA + situation losses, "
            "no layout objective, no camera prior, the paper's MLP readout",
            {**PAPER_READOUT, **NO_SPATIAL_LOSSES, "situation_weight": 0.075, "use_geometry_input": True,
             "use_camera_prior": False}, "none"),
    Variant("c_loc3r_mlp", "Loc3R (camera prior + layout + situation objectives) with the paper's MLP readout, "
            "no geometric input", dict(PAPER_READOUT), "odometry"),
    Variant("c_loc3r", "Loc3R: camera prior + layout + situation objectives (+ ego and semantic heads), "
            "no geometric input, the base config's readout", {}, "odometry"),
    Variant("d_loc3r_no_prior", "Loc3R without the camera prior, the base config's readout",
            {"use_camera_prior": False}, "none"),
)
TABLE_METRICS = ("loc_acc_0_5m", "loc_acc_1_0m", "ori_acc_15deg", "ori_acc_30deg", "qa_em", "decoder_qa_em",
                 "bev_median_error_m", "ego_position_median_error_m", "ego_yaw_median_error_deg",
                 "sigma_error_spearman")


def variant_config(base: TrainConfig, variant: Variant, runs: Path, seed: int | None = None) -> TrainConfig:
    seed = base.seed if seed is None else seed
    return replace(base, model={**base.model, **variant.model}, seed=seed,
                   output_dir=str(runs / variant.name / f"seed{seed}"))


def run_ablation(base: TrainConfig, data_root: Path, splits: list[str], out: Path, runs: Path,
                 eval_samples: int | None, variants: list[str] | None = None, command: str = "",
                 seeds: list[int] | None = None, store: Path | None = None) -> dict:
    """Train (or resume, or reuse) each variant once per seed, evaluate each run on each split,
    and write the table (mean and range over the seeds) and its PNG. Every evaluation is kept in
    `store` (default out/EVALUATIONS_FILE), where later calls read it back instead of evaluating again."""
    from loc3r_core.evaluation.evaluate import evaluate, evaluation_dataset
    from loc3r_core.model.checkpoint import load_model

    chosen = [v for v in VARIANTS if variants is None or v.name in variants]
    if variants and len(chosen) != len(set(variants)):
        raise UsageError(f"unknown variant; choose from {', '.join(v.name for v in VARIANTS)}")
    seeds = list(dict.fromkeys(seeds or [base.seed]))
    out.mkdir(parents=True, exist_ok=True)
    missing = [s for s in splits if not (data_root / s).is_dir()]
    if missing:
        raise UsageError(f"no split folder {', '.join(str(data_root / s) for s in missing)} "
                         "(make them with `loc3r data generate --split NAME`)")
    store = out / EVALUATIONS_FILE if store is None else store
    store.parent.mkdir(parents=True, exist_ok=True)
    runs_by_seed: dict[str, dict[str, dict[int, dict]]] = {}
    for variant in chosen:
        runs_by_seed[variant.name] = {split: {} for split in splits}
        for seed in seeds:
            config = variant_config(base, variant, runs, seed)
            run = {"variant": variant.name, "seed": seed, "run_config_sha256": run_fingerprint(config)}
            keys = {split: evaluation_key(data_root / split, eval_samples, variant.eval_prior, base.num_frames)
                    for split in splits}
            model = tokenizer = None  # trained (or resumed) and loaded only if some split has no saved evaluation
            for split in splits:
                metrics = saved_metrics(store, run, keys[split])
                if metrics is None:
                    if model is None:
                        model, tokenizer = load_model(trained_model(config))
                    dataset = evaluation_dataset(data_root / split, model, base.num_frames)
                    metrics = evaluate(model, tokenizer, dataset, eval_samples, prior=variant.eval_prior).metrics
                    save_metrics(store, run, keys[split], metrics)
                runs_by_seed[variant.name][split][seed] = metrics
                print(f"{variant.name} (seed {seed}) on {split}: "
                      + ", ".join(f"{k} {metrics[k]}" for k in TABLE_METRICS[:6]))
    results = {name: {split: summarise(per_seed) for split, per_seed in by_split.items()}
               for name, by_split in runs_by_seed.items()}
    with atomic_path(out / "ablation.json") as tmp:
        tmp.write_text(json.dumps({"command": command, "seeds": seeds, "results": results}, indent=2))
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text(markdown_table(results, chosen, base, eval_samples, command, seeds))
    plot_ablation(results, out / "ablation.png")
    return results


# What a run stopped before its first checkpoint leaves behind: nothing a resume could continue.
STOPPED_RUN_LEFTOVERS = {"init", "metrics.jsonl", "curves.png", "checkpoints"}


def trained_model(config: TrainConfig) -> Path:
    """The run's final model folder: reused when present, else the run resumed from its last
    checkpoint, else trained from the start (clearing what a run stopped before its first
    checkpoint left, so an interrupted `loc3r ablate` simply restarts)."""
    from loc3r_core.training.loop import train
    from loc3r_core.training.run_folder import checkpoints

    run = Path(config.output_dir)
    if (run / "model").is_dir():
        return run / "model"
    saved = checkpoints(run)
    if not saved and run.is_dir():
        foreign = sorted({p.name for p in run.iterdir()} - STOPPED_RUN_LEFTOVERS)
        if foreign:
            raise UsageError(f"{run} holds neither a model nor a checkpoint but has {', '.join(foreign)}; "
                             "move that folder away to retrain this variant")
        shutil.rmtree(run)
    return train(config, resume=bool(saved))


# Every evaluation is kept beside the table (results/ in the repository), so re-drawing it (after
# adding a seed or a split, or on a new machine, where runs/ is gone) trains and evaluates only
# what is new. A run is named by its variant, seed and config; a split by its name and manifest.
EVALUATIONS_FILE = "ablation_evaluations.json"


def run_fingerprint(config: TrainConfig) -> str:
    """What a run's weights depend on: the config fields it sets away from TrainConfig's defaults,
    but where it is written (sha256). Defaults are left out so that a field added later, whose
    default keeps the old behaviour, leaves the runs drawn before it valid."""
    defaults = TrainConfig().to_dict()
    settings = {k: v for k, v in config.to_dict().items() if k != "output_dir" and v != defaults[k]}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def evaluation_key(split_dir: Path, samples: int | None, prior: str, frames: int) -> dict:
    """What an evaluation's metrics depend on besides the model. The split is identified by its
    folder's name and its manifest's hash (generation is deterministic: the same split regenerated
    on another machine has the same manifest; one generated with other settings does not)."""
    manifest = split_dir / "manifest.json"
    return {"split": split_dir.name, "samples": samples, "prior": prior, "frames": frames,
            "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None}


def _evaluations(store: Path) -> list[dict]:
    return json.loads(store.read_text()) if store.is_file() else []


def saved_metrics(store: Path, run: dict, key: dict) -> dict | None:
    return next((entry["metrics"] for entry in _evaluations(store)
                 if entry["run"] == run and entry["key"] == key), None)


def save_metrics(store: Path, run: dict, key: dict, metrics: dict) -> None:
    entries = [*_evaluations(store), {"run": run, "key": key, "metrics": metrics}]
    with atomic_path(store) as tmp:
        tmp.write_text(json.dumps(entries, indent=1))


def summarise(per_seed: dict[int, dict]) -> dict:
    """One variant on one split: each table metric's mean, min and max over the seeds, and every
    seed's own metrics (so the spread across draws is read beside the difference between variants)."""
    summary: dict = {"seeds": {str(seed): metrics for seed, metrics in per_seed.items()}}
    for key in TABLE_METRICS:
        finite = [m[key] for m in per_seed.values() if _finite(m[key])]
        summary[key] = _mean(finite)
        summary[f"{key}_range"] = [min(finite), max(finite)] if finite else None
    types = next(iter(per_seed.values()))["qa_em_by_type"]
    summary["qa_em_by_type"] = {t: _mean([m["qa_em_by_type"].get(t) for m in per_seed.values()]) for t in types}
    return summary


def _finite(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _mean(values: list[float | None]) -> float:
    finite = [v for v in values if _finite(v)]
    return round(sum(finite) / len(finite), 4) if finite else math.nan


def markdown_table(results: dict, variants: list[Variant], base: TrainConfig, eval_samples: int | None,
                   command: str, seeds: list[int]) -> str:
    data = ", ".join(train_folders(base.train_data))
    lines = [
        "# Ablation: spatial objectives vs geometric input",
        "",
        f"Command: `{command}`" if command else "",
        "",
        f"Same backbone, data ({data}), seeds ({', '.join(map(str, seeds))}) and budget ({base.max_steps} steps "
        f"of {base.batch_size} clips of {base.num_frames} frames) for every variant; evaluated on "
        f"{'all' if eval_samples is None else eval_samples} questions per split (evenly spread).",
        "Accuracies in %, errors in metres or degrees; `sigma_error_spearman` is the rank correlation "
        "between predicted position sigma and actual error."
        + (f" Each cell is the mean over the {len(seeds)} seeds, their range in brackets." if len(seeds) > 1 else ""),
        "",
    ]
    lines += [f"- **{v.name}**: {v.description} (evaluated with prior: {v.eval_prior})" for v in variants]
    lines += ["", "| variant | split | " + " | ".join(TABLE_METRICS) + " | qa by type |",
              "|---|---|" + "---|" * (len(TABLE_METRICS) + 1)]
    for name, by_split in results.items():
        for split, summary in by_split.items():
            by_type = ", ".join(f"{t} {_cell(v)}" for t, v in summary["qa_em_by_type"].items())
            cells = [_cell(summary[k], summary[f"{k}_range"] if len(seeds) > 1 else None) for k in TABLE_METRICS]
            lines.append(f"| {name} | {split} | " + " | ".join(cells) + f" | {by_type} |")
    return "\n".join(lines) + "\n"


def _cell(value: float, spread: list[float] | None = None) -> str:
    if not _finite(value):
        return "n/a"
    return f"{value:.4g}" + (f" ({spread[0]:.4g}-{spread[1]:.4g})" if spread else "")


def plot_ablation(results: dict, out: Path) -> Path:
    names = list(results)
    splits = list(next(iter(results.values())))
    shown = ("loc_acc_1_0m", "ori_acc_30deg", "qa_em", "loc_acc_0_5m")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 4.2))
    width = 0.8 / len(names)
    for ax, metric in zip(axes, shown, strict=True):
        for i, name in enumerate(names):
            values = [results[name][s][metric] for s in splits]
            ranges = [results[name][s][f"{metric}_range"] or [v, v] for s, v in zip(splits, values, strict=True)]
            whiskers = [[v - lo for v, (lo, _) in zip(values, ranges, strict=True)],
                        [hi - v for v, (_, hi) in zip(values, ranges, strict=True)]]
            spread = any(w > 0 for side in whiskers for w in side)  # one seed: no whiskers
            ax.bar([j + i * width for j in range(len(splits))], values, width, label=name,
                   yerr=whiskers if spread else None, capsize=3)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(splits))], splits, fontsize=8)
        ax.set(title=metric, ylim=(0, 100))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
