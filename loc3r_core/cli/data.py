"""`loc3r data ...`: generate synthetic datasets, draw a scene, measure generation speed."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path

from loc3r_core.errors import UsageError
from loc3r_core.world.knobs import SPLITS, WorldKnobs, split_named

# Range knobs: flag -> (type of one value, help). Each flag's dest is its WorldKnobs field.
_RANGE_FLAGS = {
    "--room-size": (float, "side lengths of the room's bounding box, metres"),
    "--objects": (int, "objects per room"),
    "--camera-height": (float, "camera height above the floor, metres"),
    "--camera-pitch": (float, "camera pitch, degrees (negative looks down)"),
}


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="synthetic world: generate, show, benchmark")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND",
                              parser_class=type(data))

    defaults = WorldKnobs()
    gen = sub.add_parser("generate", help="generate a dataset of scene folders (resumable)")
    gen.add_argument("--out", type=Path, required=True, help="dataset folder (created; resumed if it exists)")
    gen.add_argument("--scenes", type=int, help="number of scenes (default: the split's size, else 10)")
    gen.add_argument("--seed", type=int, help="dataset seed (default: the split's seed, else 0)")
    gen.add_argument("--split", choices=list(SPLITS), help="a standard split: its knobs, seed and size as defaults")
    for flag, (kind, text) in _RANGE_FLAGS.items():
        gen.add_argument(flag, type=kind, nargs=2, metavar=("MIN", "MAX"), help=f"MIN MAX {text}")
    gen.add_argument("--trajectory", choices=["walk", "turn", "loop", "mixed"],
                     help=f"camera path kind (default {defaults.trajectory})")
    gen.add_argument("--frames", type=int, help=f"frames per scene (default {defaults.frames})")
    gen.add_argument("--image-size", type=int, help=f"square image side, pixels (default {defaults.image_size})")
    gen.add_argument("--fov", type=float, help=f"camera field of view, degrees (default {defaults.fov})")
    gen.add_argument("--manifest", type=Path, help="regenerate the dataset a manifest.json describes (its seed, "
                     "scenes, split and knobs; no other settings flags then)")
    gen.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_generate)

    show = sub.add_parser("show", help="draw a scene's contact sheet: frames beside its bird's-eye map")
    show.add_argument("scene", type=Path, help="a scene folder (DATASET/scene_NNNNN)")
    show.add_argument("--out", type=Path, required=True, help="PNG to write")
    show.set_defaults(handler=_show)

    bench = sub.add_parser("bench", help="measure generation throughput")
    bench.add_argument("--scenes", type=int, default=6, help="scenes per measurement (default 6)")
    bench.add_argument("--frames", type=int, default=32, help="frames per scene (default 32)")
    bench.add_argument("--image-size", type=int, default=128, help="image side, pixels (default 128)")
    bench.add_argument("--workers", type=int, default=2, help="workers for the parallel run (default 2)")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=_bench)


def knobs_from_args(args: argparse.Namespace, base: WorldKnobs) -> WorldKnobs:
    """The base knobs with every knob flag the user gave applied on top (flag dests = field names)."""
    given = {f.name: getattr(args, f.name) for f in fields(WorldKnobs) if getattr(args, f.name, None) is not None}
    return replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}).validate()


def _settings(args: argparse.Namespace) -> tuple[int, int, WorldKnobs, str | None]:
    """(scenes, seed, knobs, split) from a manifest, or from the split preset and the flags."""
    from loc3r_core.world.generate import load_manifest

    if args.manifest is not None:
        given = [name for name in ("scenes", "seed", "split", *(f.name for f in fields(WorldKnobs)))
                 if getattr(args, name) is not None]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UsageError(f"--manifest takes every setting from {args.manifest}; drop {flags}")
        manifest = load_manifest(args.manifest)
        return manifest["scenes"], manifest["seed"], WorldKnobs.from_dict(manifest["knobs"]), manifest.get("split")
    split = split_named(args.split) if args.split else None
    knobs = knobs_from_args(args, split.knobs if split else WorldKnobs())
    scenes = args.scenes if args.scenes is not None else (split.scenes if split else 10)
    seed = args.seed if args.seed is not None else (split.seed if split else 0)
    return scenes, seed, knobs, args.split


def _generate(args: argparse.Namespace) -> int:
    from loc3r_core.world.generate import generate_dataset

    scenes, seed, knobs, split = _settings(args)
    report = generate_dataset(args.out, scenes, seed, knobs, workers=args.workers, split=split,
                              progress=not args.no_progress)
    print(f"{args.out}: {report.generated} scenes generated, {report.skipped} already complete; "
          f"{report.frames} frames in {report.wall_s:.1f} s "
          f"({report.frames_per_s_per_worker:.1f} frames/s per worker)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from loc3r_core.world.scene_io import SceneFolder
    from loc3r_core.world.sheet import contact_sheet

    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a directory; name the PNG to write")
    out = contact_sheet(SceneFolder(args.scene), args.out)
    print(f"wrote {out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from loc3r_core.world.bench import benchmark_generation, format_report

    knobs = replace(WorldKnobs(), frames=args.frames, image_size=args.image_size).validate()
    result = benchmark_generation(knobs, scenes=args.scenes, workers=args.workers)
    print(json.dumps(result) if args.json else format_report(result))
    return 0
