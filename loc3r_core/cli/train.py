"""`loc3r train`, `pretrain-vision`, `pretrain-motion`, `eval`, `ablate`: fit models from configs, measure, compare."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

from loc3r_core.errors import UsageError
from loc3r_core.model.folder import model_folder
from loc3r_core.runtime.keyframes import MEMORY_KEYFRAMES

EVAL_FRAMES = 8  # the clip length every measured table in README.md and results/ uses

REFERENCE_CHOICES = ("path-centre", "majority", "anchor", "oracle", "all")  # evaluation.references, kept light


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model from a YAML config (resumable)")
    train.add_argument("--config", type=Path, required=True, help="YAML file of TrainConfig fields")
    train.add_argument("--resume", action="store_true", help="continue the run in the config's output_dir")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override a config field (YAML value), e.g. --set max_steps=100; repeatable")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

    _stage_parser(commands, "pretrain-vision", "pretrain the vision tower on single frames (stage 1 of the "
                  "shipped recipe)", "VisionPretrainConfig", _pretrain_vision)
    _stage_parser(commands, "pretrain-motion", "train the visual odometry network on frame pairs (the prior "
                  "without odometry)", "MotionPretrainConfig", _pretrain_motion)

    ev = commands.add_parser("eval", help="evaluate a model on a dataset split")
    ev.add_argument("--checkpoint", type=Path, help="model folder (default: the shipped model)")
    ev.add_argument("--data", type=Path, required=True, help="dataset folder (loc3r data generate)")
    ev.add_argument("--max-samples", type=int, help="evaluate an evenly spread subset of this many questions")
    ev.add_argument("--prior", choices=["odometry", "none", "visual"], default="odometry",
                    help="camera prior: clean relative poses (odometry), none, or the visual odometry network's "
                         "steps chained along each walk (visual; see --motion) (default odometry)")
    ev.add_argument("--motion", type=Path,
                    help="visual odometry network folder for --prior visual (default: the shipped one)")
    ev.add_argument("--frames", type=int, default=EVAL_FRAMES,
                    help=f"frames per clip, uniformly spread over the scene's walk (default {EVAL_FRAMES}, the "
                    f"protocol of every table; the runtime's memory holds {MEMORY_KEYFRAMES} by default)")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--figure", type=Path, help="PNG of predicted vs true layout and poses (default: none; "
                    "with --json, DATA/../eval_<split>.png is not written unless named)")
    ev.add_argument("--json", action="store_true", help="print one JSON object (else a readable table)")
    ev.add_argument("--reference", nargs="+", choices=REFERENCE_CHOICES, metavar="NAME",
                    help="score non-learned references instead of a model, on the same questions: "
                         f"{', '.join(REFERENCE_CHOICES)} (all of them)")
    ev.add_argument("--train-data", type=Path, nargs="+",
                    help="training folder(s) the majority reference counts answers in (default DATA/../train)")
    ev.add_argument("--map-answers", nargs="+", metavar="TYPE",
                    help="question types answered by rules from the clip's fused map where it holds a candidate, "
                         "as the runtime answers them, or none (default: the runtime's, "
                         "session.MAP_ANSWER_TYPES); decoder_qa_em scores the decoder alone either way")
    ev.add_argument("--map-tiebreaks", nargs="+", metavar="TYPE",
                    help="question types where the map's answer replaces the decoder's when the decoder finds it "
                         "at least half as likely as its own, or none (default: the runtime's, "
                         "session.MAP_TIEBREAK_TYPES)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(handler=_eval)

    ablate = commands.add_parser("ablate", help="train the ablation variants and write the evidence table")
    ablate.add_argument("--config", type=Path, default=Path("configs/ablation.yaml"),
                        help="base TrainConfig YAML every variant shares (default configs/ablation.yaml)")
    ablate.add_argument("--data-root", type=Path, default=Path("data"),
                        help="folder holding the split folders (default data)")
    ablate.add_argument("--splits", nargs="+", default=["test", "test-novel-view", "test-complex"])
    ablate.add_argument("--variants", nargs="+", help="only these variants (default all)")
    ablate.add_argument("--seeds", nargs="+", type=int,
                        help="train each variant once per seed; the table gives mean and range "
                             "(default: the config's seed)")
    ablate.add_argument("--eval-samples", type=int, default=600, help="questions per split (default 600)")
    ablate.add_argument("--out", type=Path, default=Path("results"), help="where ablation.md/.json/.png go")
    ablate.add_argument("--store", type=Path,
                        help="file of saved evaluations, read back instead of evaluating again (default "
                             "OUT/ablation_evaluations.json): a partial run drawn into a scratch --out can "
                             "still keep its evaluations in results/")
    ablate.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a base config field, e.g. --set max_steps=50; repeatable")
    ablate.set_defaults(handler=_ablate)


def _stage_parser(commands: argparse._SubParsersAction, name: str, help_text: str, config_class: str,
                  handler: Callable[[argparse.Namespace], int]) -> None:
    """A pretraining stage's command: a config file, field overrides, no resume (it takes minutes)."""
    stage = commands.add_parser(name, help=help_text)
    stage.add_argument("--config", type=Path, required=True, help=f"YAML file of {config_class} fields")
    stage.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override a config field (YAML value); repeatable")
    stage.add_argument("--no-progress", action="store_true", help="no progress bar")
    stage.set_defaults(handler=handler)


def parse_overrides(pairs: list[str], option: str = "--set") -> dict:
    """FIELD=VALUE pairs to {field: YAML value}."""
    import yaml

    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{option} takes FIELD=VALUE, not {pair!r}")
        overrides[name.strip()] = yaml.safe_load(value)
    return overrides


# The handlers check what they can before importing the training code (torch and transformers take
# about 8 s to import on a 2-core machine): a typo in a config or a path is refused at once.

def _train(args: argparse.Namespace) -> int:
    from loc3r_core.training.config import TrainConfig
    from loc3r_core.training.run_folder import check_run_folder, pretrained_tower

    config = TrainConfig.from_yaml(args.config, parse_overrides(args.set))
    if not check_run_folder(Path(config.output_dir), args.resume):
        pretrained_tower(config.model)  # a new run builds its model from it; a resumed one from its init/
    from loc3r_core.training.loop import train

    final = train(config, resume=args.resume, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun / accelerate launch, say it once
        print(f"model written to {final}")
    return 0


def _pretrain_vision(args: argparse.Namespace) -> int:
    from loc3r_core.training.config import VisionPretrainConfig
    from loc3r_core.training.run_folder import check_run_folder

    config = VisionPretrainConfig.from_yaml(args.config, parse_overrides(args.set))
    check_run_folder(Path(config.output_dir), resume=None)
    from loc3r_core.training.vision_pretrain import pretrain_vision

    _report_stage(pretrain_vision(config, progress=not args.no_progress), "vision tower")
    return 0


def _pretrain_motion(args: argparse.Namespace) -> int:
    from loc3r_core.training.config import MotionPretrainConfig
    from loc3r_core.training.run_folder import check_run_folder

    config = MotionPretrainConfig.from_yaml(args.config, parse_overrides(args.set))
    check_run_folder(Path(config.output_dir), resume=None)
    from loc3r_core.training.motion_pretrain import pretrain_motion

    _report_stage(pretrain_motion(config, progress=not args.no_progress), "motion network")
    return 0


def _report_stage(folder: Path, what: str) -> None:
    """A pretraining stage's last metrics record (one JSON line) and where its output went."""
    final = json.loads((folder.parent / "metrics.jsonl").read_text().splitlines()[-1])
    print(json.dumps({k: v for k, v in final.items() if k != "split"}))
    print(f"{what} written to {folder}")


def _eval(args: argparse.Namespace) -> int:
    if args.max_samples is not None and args.max_samples < 1:
        raise UsageError("--max-samples must be at least 1")
    if args.frames < 1:
        raise UsageError("--frames must be at least 1")
    if args.reference:
        return _eval_references(args)
    map_types = map_answer_types_argument(args.map_answers)
    tiebreak_types = map_answer_types_argument(args.map_tiebreaks, "--map-tiebreaks")
    check_prior_arguments(args)
    model_folder(args.checkpoint)
    from loc3r_core.evaluation.evaluate import evaluate, evaluation_dataset
    from loc3r_core.evaluation.figure import draw_examples
    from loc3r_core.model.checkpoint import load_model

    motion = None
    if args.prior == "visual":
        from loc3r_core.model.motion import load_motion

        motion = load_motion(args.motion)  # before the model: a missing network fails fast
    model, tokenizer = load_model(args.checkpoint)
    dataset = evaluation_dataset(args.data, model, args.frames)
    result = evaluate(model, tokenizer, dataset, args.max_samples, args.batch_size, args.prior,
                      progress=not args.no_progress, map_answer_types=map_types, map_tiebreak_types=tiebreak_types,
                      motion=motion)
    if args.figure:
        draw_examples(result.examples, args.figure, title=f"{args.data.name}: predicted vs true")
    if args.json:
        print(json.dumps(result.metrics))
    else:
        for key, value in result.metrics.items():
            print(f"{key:32s} {value}")
    return 0


def check_prior_arguments(args: argparse.Namespace) -> None:
    """--motion names the network that --prior visual reads (`eval`, `eval-map`, `eval-runtime`)."""
    if args.motion is not None and args.prior != "visual":
        raise UsageError("--motion is read only with --prior visual")


def map_answer_types_argument(names: list[str] | None, option: str = "--map-answers") -> tuple[str, ...]:
    """The question types of --map-answers or --map-tiebreaks (None: the runtime's default for it)."""
    from loc3r_core.runtime.session import MAP_ANSWER_TYPES, MAP_TIEBREAK_TYPES
    from loc3r_core.world.situations import QUESTION_TYPES

    if names is None:
        return MAP_ANSWER_TYPES if option == "--map-answers" else MAP_TIEBREAK_TYPES
    if names == ["none"]:
        return ()
    unknown = [name for name in names if name not in QUESTION_TYPES]
    if unknown:
        raise UsageError(f"{option} takes question types ({', '.join(QUESTION_TYPES)}) or none, "
                         f"not {unknown[0]!r}")
    return tuple(dict.fromkeys(names))


def _eval_references(args: argparse.Namespace) -> int:
    from loc3r_core.data.dataset import SceneClipDataset
    from loc3r_core.evaluation.metrics import pick_items
    from loc3r_core.evaluation.references import REFERENCES, evaluate_reference

    if args.checkpoint or args.figure or args.prior != "odometry":
        raise UsageError("--reference scores references, not a model: drop --checkpoint, --figure and --prior")
    names = REFERENCES if "all" in args.reference else tuple(dict.fromkeys(args.reference))
    dataset = SceneClipDataset(args.data, num_frames=args.frames, sampling="uniform")
    indices = pick_items(dataset, args.max_samples)
    train_data = args.train_data or args.data.parent / "train"
    results = {name: evaluate_reference(name, dataset, indices, train_data, progress=not args.no_progress)
               for name in names}
    if args.json:
        print(json.dumps(results))
    else:
        for name, metrics in results.items():
            print(name)
            for key, value in metrics.items():
                print(f"  {key:30s} {value}")
    return 0


def _ablate(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from loc3r_core.evaluation.ablation import run_ablation
    from loc3r_core.training.config import TrainConfig

    base = TrainConfig.from_yaml(args.config, parse_overrides(args.set))
    command = "loc3r " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run_ablation(base, args.data_root, args.splits, args.out, Path(base.output_dir), args.eval_samples,
                 args.variants, command, args.seeds, args.store)
    print(f"table written to {args.out / 'ablation.md'}")
    return 0
