"""`loc3r eval-map`: the robot's final map of each walk, scored against the scene's truth."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from loc3r_core.cli.runtime import add_backend_arguments
from loc3r_core.cli.train import parse_overrides
from loc3r_core.data.targets import PATCH_TARGETS
from loc3r_core.errors import UsageError
from loc3r_core.evaluation.map_quality import BOX_METRICS, CELL_METRICS, OBJECT_METRICS

if TYPE_CHECKING:
    from loc3r_core.runtime.session import SessionConfig

ROWS = (*CELL_METRICS, *OBJECT_METRICS, *BOX_METRICS)


def register(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser("eval-map", help="stream each scene of a split through the runtime and score its map")
    ev.add_argument("--data", type=Path, required=True, help="split folder of scene_NNNNN (loc3r data generate)")
    ev.add_argument("--max-scenes", type=int, help="score an evenly spread subset of this many scenes")
    ev.add_argument("--figures", type=Path, help="folder for one PNG per scene: model and oracle maps over the truth")
    ev.add_argument("--oracle-targets", choices=PATCH_TARGETS, default="majority",
                    help="per-patch truth the oracle grid is fed (default majority; objects_first keeps small objects)")
    ev.add_argument("--grid", action="append", default=[], metavar="FIELD=VALUE",
                    help="score the fusion with a GridConfig field changed (model and oracle alike), "
                         "e.g. --grid free_weight=0.4; repeatable")
    ev.add_argument("--keyframes", type=int, metavar="N",
                    help="keyframes the runtime's memory holds while it maps (default: the node's, SessionConfig)")
    ev.add_argument("--json", action="store_true", help="print one JSON object (else a readable table)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend_arguments(ev)
    ev.set_defaults(handler=_eval_map)


def _eval_map(args: argparse.Namespace) -> int:
    from loc3r_core.evaluation.map_run import evaluate_maps, split_scenes
    from loc3r_core.runtime.open import open_backend

    config = _session_config(parse_overrides(args.grid, "--grid"), args.keyframes)
    split_scenes(args.data, args.max_scenes)  # a missing or empty folder fails before a model loads
    backend = open_backend(args.backend, args.checkpoint, args.onnx, args.provider)
    report = evaluate_maps(backend, args.data, args.max_scenes, args.figures, progress=not args.no_progress,
                           config=config, oracle_targets=args.oracle_targets)
    if args.json:
        print(json.dumps(_json_safe(report)))
        return 0
    model, oracle = report["model"], report["oracle_fusion"]
    print(f"{report['num_scenes']} scenes of {args.data} ({backend.name} backend, "
          f"{model['seconds_per_scene']:.2f} s per scene streamed)")
    if args.grid:
        print("grid: " + ", ".join(args.grid))
    print(f"memory: {report['max_keyframes']} keyframes")
    print(f"{'mean over scenes':<22}{'model':>8}{'oracle':>8}   (oracle: {args.oracle_targets} patch truth)")
    for key in ROWS:
        print(f"{key:<22}{model[key]:>8.3f}{oracle[key]:>8.3f}")
    print(f"objects: {model['objects_matched']}/{model['objects_true']} found by the model "
          f"({model['objects_map']} on its maps), {oracle['objects_matched']}/{oracle['objects_true']} by the oracle")
    calibration = model["confidence_calibration"]
    print(f"\nmodel object confidence (calibration error {calibration['error']:.3f}):")
    for row in calibration["bins"]:
        print(f"  {row['low']:.1f}-{row['high']:.1f}: {row['objects']:>4} objects, mean confidence "
              f"{row['mean_confidence']:.2f}, right {row['share_right']:.2f}")
    print("\nmodel confusion (true label: map labels of the objects matched by position)")
    for true, row in model["confusion"].items():
        print(f"  {true:<10} " + ", ".join(f"{label} {n}" for label, n in sorted(row.items(), key=lambda x: -x[1])))
    if args.figures:
        print(f"wrote {report['num_scenes']} figures to {args.figures}")
    return 0


def _session_config(grid_overrides: dict, keyframes: int | None) -> SessionConfig:
    """The node's defaults, with the fusion's fields and the memory's length changed as asked."""
    from loc3r_core.runtime.mapping import GridConfig
    from loc3r_core.runtime.session import SessionConfig

    try:
        grid = GridConfig().overridden(grid_overrides)
    except ValueError as exc:
        raise UsageError(f"--grid: {exc}") from None
    config = SessionConfig(grid=grid) if keyframes is None else SessionConfig(max_keyframes=keyframes, grid=grid)
    try:
        config.validate()
    except ValueError as exc:
        raise UsageError(f"--keyframes: {exc}") from None
    return config


def _json_safe(value: object) -> object:
    """NaN (nothing to count) as null: strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
