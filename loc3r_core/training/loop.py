"""The training loop: plain PyTorch driven by Accelerate (one CPU process or `accelerate launch`).

Run folder (config.output_dir):
  init/               config.json + tokenizer of the run (what a resume rebuilds the model from)
  checkpoints/step_N  accelerate state (model, optimiser, scheduler, RNG) + trainer_state.json, atomic
  metrics.jsonl       one line per log or validation event
  curves.png          the loss and validation curves
  model/              the final model (save_pretrained), written when the run completes
Everything random is a function of (seed, step), so a resumed run continues exactly.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerFast

from loc3r_core.atomic import TMP_PREFIX, atomic_path
from loc3r_core.data.dataset import PackedClipDataset, SceneClipDataset
from loc3r_core.errors import UsageError
from loc3r_core.evaluation.evaluate import evaluate, evaluation_dataset
from loc3r_core.model.checkpoint import save_model
from loc3r_core.model.configuration_loc3r import Loc3rConfig, config_kwargs
from loc3r_core.model.modeling_loc3r import Loc3rForSpatialQA, apply_freezing, build_model
from loc3r_core.model.spatial import balanced_class_weights
from loc3r_core.model.tokenizer import add_special_tokens, label_token_ids, special_ids, train_tokenizer
from loc3r_core.training.batch import collate, collate_packed, model_inputs
from loc3r_core.training.config import TrainConfig, VisionPretrainConfig
from loc3r_core.training.curves import plot_curves
from loc3r_core.training.feature_cache import TowerFeatureCache
from loc3r_core.training.run_folder import check_run_folder, checkpoints, pretrained_tower
from loc3r_core.world.vocabulary import PATCH_CLASSES, STRUCTURE_CLASSES

STATE_FILE = "trainer_state.json"


class EpochIndexed(Dataset):
    """Index k means item k % n in epoch k // n, so random frame sampling changes per epoch
    even inside persistent DataLoader workers (which keep their frame caches)."""

    def __init__(self, dataset: SceneClipDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k: int) -> dict:
        self.dataset.set_epoch(k // len(self.dataset))
        return self.dataset[k % len(self.dataset)]


class EpochShuffle(Sampler[int]):
    """An endless stream of per-epoch permutations, each a function of (seed, epoch) only."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed

    def __iter__(self) -> Iterator[int]:
        epoch = 0
        while True:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
            yield from (epoch * self.size + order).tolist()
            epoch += 1

    def __len__(self) -> int:
        return 2**62


def dataset_texts(dataset: SceneClipDataset) -> Iterator[str]:
    for folder in dataset.scenes:
        for situation in folder.situations:
            yield situation.text
            for question in situation.questions:
                yield question.question
                yield question.answer
    yield "I am standing in the room."


def create_model(config: TrainConfig, dataset: SceneClipDataset) -> tuple[Loc3rForSpatialQA, PreTrainedTokenizerFast]:
    """A fresh model and tokenizer: the LM's own tokenizer if a pretrained LM is named, else one
    trained on the dataset's text."""
    lm_path = config.model.get("language_model_path")
    if lm_path:
        tokenizer = AutoTokenizer.from_pretrained(lm_path)
        add_special_tokens(tokenizer)
    else:
        tokenizer = train_tokenizer(dataset_texts(dataset), config.tokenizer_vocab_size)
    kwargs = {**model_kwargs(config), **special_ids(tokenizer)}
    classes = kwargs.get("num_patch_classes", len(PATCH_CLASSES))
    kwargs["label_token_ids"] = label_token_ids(tokenizer, PATCH_CLASSES[len(STRUCTURE_CLASSES):classes])
    model_config = Loc3rConfig(**kwargs)
    if not lm_path:
        model_config.text_config.vocab_size = len(tokenizer)
    model_config.text_config.pad_token_id = tokenizer.pad_token_id
    model_config.text_config.eos_token_id = tokenizer.eos_token_id
    model = build_model(model_config)
    if lm_path and len(tokenizer) > model.language_model.get_input_embeddings().num_embeddings:
        model.language_model.resize_token_embeddings(len(tokenizer))
        model.config.text_config.vocab_size = len(tokenizer)
    return model, tokenizer


def learning_rate_factor(step: int, config: TrainConfig | VisionPretrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train (or continue) the run in config.output_dir; returns the final model folder."""
    run = Path(config.output_dir)
    saved = check_run_folder(run, resume)
    # Without cpu=True, Accelerate ignores torchrun's ranks on a machine without a GPU and every
    # process would train alone into the same folder.
    accelerator = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum,
                              cpu=not torch.cuda.is_available(),
                              step_scheduler_with_optimizer=False)  # the schedule counts optimiser steps
    set_seed(config.seed)
    init_dir = run / "init"
    shapes = _model_config(config, init_dir if saved else None)
    dataset = training_dataset(config, shapes)
    if config.max_train_scenes:
        _keep_first_scenes(dataset, config.max_train_scenes)

    start_step = 0
    if saved:
        tokenizer = AutoTokenizer.from_pretrained(init_dir)
        model = apply_freezing(Loc3rForSpatialQA(Loc3rConfig.from_pretrained(init_dir)))
    else:
        model, tokenizer = create_model(config, dataset)
        if accelerator.is_main_process:
            with atomic_path(init_dir) as tmp:
                model.config.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
                (tmp / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(learning_rate_factor, config=config))
    collate_fn = collate_packed if config.questions_per_clip > 1 else collate
    loader = DataLoader(EpochIndexed(dataset), batch_size=config.batch_size,
                        sampler=EpochShuffle(len(dataset), config.seed),
                        collate_fn=partial(collate_fn, tokenizer=tokenizer, patches=model.config.patches_per_frame),
                        num_workers=config.num_workers, persistent_workers=config.num_workers > 0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    if saved:
        accelerator.load_state(str(saved[-1]))
        start_step = json.loads((saved[-1] / STATE_FILE).read_text())["step"]
        _truncate_log(run / "metrics.jsonl", start_step)
    loader = accelerator.prepare(loader)
    batches = iter(accelerator.skip_first_batches(loader, start_step * config.grad_accum) if start_step else loader)

    class_weights = None
    if config.class_balance:  # counted again on resume: the draw is a function of the seed
        class_weights = {name: balanced_class_weights(counts, config.class_balance)
                         for name, counts in dataset.class_counts(config.class_count_frames, config.seed).items()}
    validation = evaluation_dataset(config.val_data, model, config.num_frames) if config.val_data else None
    features = TowerFeatureCache.build(accelerator.unwrap_model(model), dataset,
                                       progress=progress and accelerator.is_main_process) \
        if config.cache_vision_features else None
    log_path = run / "metrics.jsonl"
    bar = tqdm(total=config.max_steps, initial=start_step, desc="train", unit="step",
               disable=not (progress and accelerator.is_main_process))
    window: dict[str, float] = {}
    window_steps, window_rows, window_start = 0, 0, time.perf_counter()
    for step in range(start_step, config.max_steps):
        for _ in range(config.grad_accum):
            batch = next(batches)
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step * 97 + accelerator.process_index)
            inputs = model_inputs(batch, generator, config.prior_dropout, config.prior_drift_per_m,
                                  config.prior_yaw_drift_deg, features=features)
            with accelerator.accumulate(model):
                output = model(**inputs, labels=batch["labels"], targets=batch["targets"],
                               class_weights=class_weights)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and config.grad_clip:
                    accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            for name, value in {"loss": output.loss, **output.losses}.items():
                window[name] = window.get(name, 0.0) + float(value.detach()) / config.grad_accum
            window_rows += batch["labels"].shape[0]
        window_steps += 1
        done = step + 1
        bar.update(1)
        if done % config.log_every == 0 or done == config.max_steps:
            elapsed = time.perf_counter() - window_start
            record = {"step": done, "split": "train", "lr": scheduler.get_last_lr()[0],
                      "samples_per_s": round(window_steps * config.batch_size * config.grad_accum
                                             * accelerator.num_processes / elapsed, 2),  # clips
                      # (situation, question) rows: the localization and QA targets a second
                      "rows_per_s": round(window_rows * accelerator.num_processes / elapsed, 2),
                      **{k: round(v / window_steps, 5) for k, v in window.items()}}
            bar.set_postfix(loss=f"{record['loss']:.3f}", ce=f"{record['ce']:.3f}")
            _log(accelerator, log_path, record)
            window, window_steps, window_rows, window_start = {}, 0, 0, time.perf_counter()
        validate = validation is not None and (done % config.eval_every == 0 or done == config.max_steps)
        if validate and accelerator.is_main_process:
            result = evaluate(accelerator.unwrap_model(model), tokenizer, validation, config.eval_samples,
                              progress=False)
            _log(accelerator, log_path, {"step": done, "split": "val", **result.metrics})
            bar.write(f"step {done}: val loc@1m {result.metrics['loc_acc_1_0m']} "
                      f"ori@30 {result.metrics['ori_acc_30deg']} qa {result.metrics['qa_em']} "
                      f"objects {result.metrics['object_recall']}")
        if done % config.checkpoint_every == 0 and done < config.max_steps:
            _save_checkpoint(accelerator, run, done, config.keep_checkpoints)
    bar.close()
    final = run / "model"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_model(accelerator.unwrap_model(model), tokenizer, final)
        plot_curves(log_path, run / "curves.png")
    return final


def training_dataset(config: TrainConfig, shapes: Loc3rConfig) -> SceneClipDataset:
    """The training split as the config asks: one clip per question, or packed clips."""
    kwargs = {"num_frames": config.num_frames, "patch_grid": shapes.patch_grid,
              "image_size": shapes.vision_config.image_size, "sampling": config.frame_sampling,
              "pseudo_situation_share": config.pseudo_situation_share, "seed": config.seed,
              "patch_target": config.patch_targets, "token_present_share": config.token_present_share,
              "map_subdivision": shapes.map_subdivision,
              "load_images": not config.cache_vision_features}  # the cache reads frames itself
    if config.questions_per_clip > 1:
        return PackedClipDataset(config.train_data, config.questions_per_clip, **kwargs)
    return SceneClipDataset(config.train_data, **kwargs)


def _model_config(config: TrainConfig, init_dir: Path | None) -> Loc3rConfig:
    """The model's config, for the shapes its targets need: patch grid, image size, map subdivision
    (from the saved run config on resume)."""
    return Loc3rConfig.from_pretrained(init_dir) if init_dir else Loc3rConfig(**model_kwargs(config))


def model_kwargs(config: TrainConfig) -> dict:
    """Loc3rConfig keyword arguments of a new run: the config's `model` over the tiny defaults; with a
    pretrained tower (`vision_tower_path`) and no vision_config of its own, the tower's config."""
    kwargs = dict(config.model)
    tower = pretrained_tower(kwargs)
    if tower:
        kwargs["vision_config"] = AutoConfig.from_pretrained(tower).to_dict()
    return config_kwargs(kwargs)


def _keep_first_scenes(dataset: SceneClipDataset, count: int) -> None:
    dataset.items = [item for item in dataset.items if item[0] < count]
    if not dataset.items:
        raise UsageError("max_train_scenes leaves no training items")


def _log(accelerator: Accelerator, path: Path, record: dict) -> None:
    if accelerator.is_main_process:
        with path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint a resumed run restarts from."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in lines))


def _save_checkpoint(accelerator: Accelerator, run: Path, step: int, keep: int) -> None:
    """Every process writes its part (its RNG state) into one hidden folder; the main process
    then renames it into place, so a checkpoint folder is complete or absent."""
    folder = run / "checkpoints" / f"step_{step:07d}"
    tmp = folder.with_name(f"{TMP_PREFIX}{folder.name}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps({"step": step}))
        tmp.replace(folder)
        for old in checkpoints(run)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
