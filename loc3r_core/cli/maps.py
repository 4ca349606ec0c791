"""`loc3r eval-map` and `loc3r eval-runtime`: each walk streamed through the robot's runtime; its
final map, and its placements and answers, scored against the scene's truth."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from loc3r_core.cli.runtime import add_backend_arguments
from loc3r_core.cli.train import check_prior_arguments, map_answer_types_argument, parse_overrides
from loc3r_core.data.targets import PATCH_TARGETS
from loc3r_core.errors import UsageError
from loc3r_core.evaluation.map_quality import BOX_METRICS, CELL_METRICS, OBJECT_METRICS
from loc3r_core.runtime.floor_scale import CAMERA_MOUNTS
from loc3r_core.runtime.keyframes import EVICTIONS

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
    add_prior_arguments(ev)
    add_backend_arguments(ev)
    ev.set_defaults(handler=_eval_map)

    rt = commands.add_parser("eval-runtime", help="stream each scene of a split through the runtime, then place "
                             "every situation and answer every question from its memory")
    rt.add_argument("--data", type=Path, required=True, help="split folder of scene_NNNNN (loc3r data generate)")
    rt.add_argument("--max-scenes", type=int, help="score an evenly spread subset of this many scenes")
    rt.add_argument("--keyframes", type=int, metavar="N",
                    help="keyframes the runtime's memory holds (default: the node's, SessionConfig)")
    rt.add_argument("--eviction", choices=EVICTIONS,
                    help="which keyframes a full memory drops (default: the node's, SessionConfig)")
    rt.add_argument("--map-answers", nargs="+", metavar="TYPE",
                    help="question types answered from the map, or none (default: the node's, SessionConfig)")
    rt.add_argument("--map-tiebreaks", nargs="+", metavar="TYPE",
                    help="question types where the map breaks the model's near-ties, or none (default: the node's)")
    rt.add_argument("--json", action="store_true", help="print one JSON object (else a readable table)")
    rt.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_prior_arguments(rt)
    add_backend_arguments(rt)
    rt.set_defaults(handler=_eval_runtime)


def add_prior_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prior", choices=["odometry", "visual", "none"], default="odometry",
                        help="pose prior of the streamed frames: the walk's perfect odometry, the visual odometry "
                             "network's (what the node does without odometry), or none (default odometry)")
    parser.add_argument("--motion", type=Path, help="visual odometry network folder for --prior visual "
                        "(default: the shipped one)")
    parser.add_argument("--camera-mount", choices=CAMERA_MOUNTS, default="none",
                        help="scene: stream with each walk's camera height and pitch, as a node takes them from a "
                             "robot's /tf_static (or camera.height_m and camera.pitch_deg; each keyframe's floor then "
                             "sets its map points' scale); none: the model's own scale, a robot that publishes no "
                             "mount (default none)")


def _eval_map(args: argparse.Namespace) -> int:
    from loc3r_core.evaluation.map_run import evaluate_maps, split_scenes
    from loc3r_core.runtime.open import open_backend

    config = _session_config(parse_overrides(args.grid, "--grid"), args.keyframes)
    check_prior_arguments(args)
    split_scenes(args.data, args.max_scenes)  # a missing or empty folder fails before a model loads
    backend = open_backend(args.backend, args.checkpoint, args.onnx, args.provider)
    report = evaluate_maps(backend, args.data, args.max_scenes, args.figures, progress=not args.no_progress,
                           config=config, oracle_targets=args.oracle_targets, prior=args.prior, motion=args.motion,
                           mount=args.camera_mount)
    if args.json:
        print(json.dumps(_json_safe(report)))
        return 0
    model, oracle = report["model"], report["oracle_fusion"]
    print(f"{report['num_scenes']} scenes of {args.data} ({backend.name} backend, "
          f"{model['seconds_per_scene']:.2f} s per scene streamed)")
    if args.grid:
        print("grid: " + ", ".join(args.grid))
    print(f"memory: {report['max_keyframes']} keyframes; pose prior: {report['prior']}; camera mount: "
          f"{report['camera_mount']}")
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


def _eval_runtime(args: argparse.Namespace) -> int:
    from loc3r_core.evaluation.map_run import split_scenes
    from loc3r_core.evaluation.runtime_run import evaluate_runtime
    from loc3r_core.runtime.open import open_backend

    changes = {} if args.eviction is None else {"eviction": args.eviction}
    if args.map_answers is not None:
        changes["map_answer_types"] = map_answer_types_argument(args.map_answers)
    if args.map_tiebreaks is not None:
        changes["map_tiebreak_types"] = map_answer_types_argument(args.map_tiebreaks, "--map-tiebreaks")
    config = _session_config({}, args.keyframes, **changes)
    check_prior_arguments(args)
    split_scenes(args.data, args.max_scenes)  # a missing or empty folder fails before a model loads
    backend = open_backend(args.backend, args.checkpoint, args.onnx, args.provider)
    report = evaluate_runtime(backend, args.data, args.max_scenes, progress=not args.no_progress, config=config,
                              prior=args.prior, motion=args.motion, mount=args.camera_mount)
    if args.json:
        print(json.dumps(_json_safe(report)))
        return 0
    print(f"{report['num_scenes']} scenes of {args.data} ({backend.name} backend, {report['max_keyframes']} keyframes "
          f"in memory, eviction {report['eviction']}, {report['keyframes_per_scene']:.1f} keyframes a walk, "
          f"pose prior {report['prior']})")
    for key, value in report.items():
        if key not in ("num_scenes", "max_keyframes", "eviction", "keyframes_per_scene", "prior", "camera_mount"):
            print(f"{key:32s} {value}")
    return 0


def _session_config(grid_overrides: dict, keyframes: int | None, **changes: object) -> SessionConfig:
    """The node's defaults, with the fusion's fields, the memory's length and other fields changed as asked."""
    from loc3r_core.runtime.mapping import GridConfig
    from loc3r_core.runtime.session import SessionConfig

    try:
        grid = GridConfig().overridden(grid_overrides)
    except ValueError as exc:
        raise UsageError(f"--grid: {exc}") from None
    if keyframes is not None:
        changes["max_keyframes"] = keyframes
    config = SessionConfig(grid=grid, **changes)
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
