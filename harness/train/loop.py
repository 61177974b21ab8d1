"""The training loop: one :func:`fit` for every run, search trial, fold and refit, and the step
function :func:`train_epoch` that the speed benchmark clocks.

What a run writes into its (partial) folder, see :mod:`harness.runs`: ``config.json`` first, then
one ``train.log`` line per epoch, the best epoch's ``model/`` (save_pretrained), ``logits/dev.npz``
and ``metrics.json``; the caller's :class:`~harness.runs.RunBuilder` makes it visible.

The loop is the same for every task kind (:mod:`harness.tasks.base`): the task encodes examples
into rows, names the training targets, predicts logits and scores them. Rows are grouped by length
into batches padded only to the longest row of the batch (rounded up to a multiple of 8), mixed
precision is bf16 where the GPU supports it, AdamW is fused, batches are pinned on CUDA, and the
loop reads the loss back to the host only every ``CHECK_EVERY`` steps (to stop a diverged run) and
once per epoch. Under ``accelerate launch --num_processes N`` each process trains on its own share of
every epoch's batches (:func:`shard`), gradients are synchronised by accelerate, and only the main
process writes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from harness.common.errors import HarnessError
from harness.common.io import atomic_write_json
from harness.runs import CONFIG, METRICS, MODEL
from harness.train.batching import collate, input_names, length_batches, to_device

CHECK_EVERY = 32  # steps between the host reads of the loss that catch a diverged run


class TrainingDiverged(HarnessError):
    """The training loss became NaN or infinite: the run stops and is not saved."""


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best: dict = field(default_factory=dict)  # dev scores of the best epoch (the task's metrics)
    dev_logits: object | None = None  # the task's logits object of the best epoch
    loss_curve: list[float] = field(default_factory=list)  # training loss of every batch
    train_rows: int = 0


# ---- devices, precision, seeds, optimiser ----------------------------------------------------

def resolve_precision(setting: str) -> str:
    if setting not in ("auto", None):
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def make_accelerator(t):
    from accelerate import Accelerator

    return Accelerator(mixed_precision=resolve_precision(t.mixed_precision), gradient_accumulation_steps=t.grad_accum)


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def make_optimizer(model, t, total_steps: int):
    """Fused AdamW (no weight decay on biases and norms) + linear warm-up and decay over ``total_steps``."""
    from transformers import get_linear_schedule_with_warmup

    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not n.endswith(NO_DECAY)], "weight_decay": t.weight_decay},
              {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=t.lr, fused=True)  # fused on CPU too (torch >= 2.4)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(t.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler


def shard(batches: list, accelerator) -> list:
    """This process's share of an epoch's batches under data parallelism: every process gets the same
    number of batches (the last ``len % N`` are dropped, as a distributed sampler with drop_last does),
    disjoint, in the same length-bucketed order. One process: all of them."""
    n, rank = accelerator.num_processes, accelerator.process_index
    if n == 1:
        return batches
    per = len(batches) // n
    return batches[rank * per:(rank + 1) * per]


# ---- one epoch --------------------------------------------------------------------------------

def train_epoch(model, rows, batches: list, optimizer, scheduler, accelerator, names: frozenset, t,
                step: int = 0, bar=None) -> tuple[np.ndarray, int, int]:
    """Train one pass over ``batches`` (index arrays into ``rows``); returns (per-batch losses,
    rows seen, optimiser steps so far). Stops early at ``t.max_steps``; raises
    :class:`TrainingDiverged` on a non-finite loss."""
    model.train()
    losses, seen = [], 0
    for i, index in enumerate(batches):
        batch = to_device(collate(rows, index, True), names, accelerator.device)
        with accelerator.accumulate(model):
            with accelerator.autocast():
                loss = model(**batch).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients and t.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        seen += len(index)
        step += int(accelerator.sync_gradients)
        if (i + 1) % CHECK_EVERY == 0 or i == len(batches) - 1:
            recent = torch.stack(losses[-CHECK_EVERY:])
            if not bool(torch.isfinite(recent).all()):
                raise TrainingDiverged(f"the training loss became {float(recent[~torch.isfinite(recent)][0])} at "
                                       f"step {step} (lr {t.lr:g}): the run is stopped and not saved",
                                       hint="lower lr (or raise warmup_ratio / max_grad_norm clipping)")
            if bar is not None:
                bar.update(i + 1 - bar.n)
                bar.set_postfix(loss=f"{recent.float().mean().item():.3f}")
        if t.max_steps and step >= t.max_steps:
            break
    return torch.stack(losses).float().cpu().numpy() if losses else np.zeros(0), seen, step


# ---- a whole run -------------------------------------------------------------------------------

def fit(task, recipe, cfg, train_examples: Sequence, out_dir: str | Path, *, dev_examples: Sequence | None = None,
        info: dict | None = None, on_epoch: Callable[[int, dict], None] | None = None, save_model: bool = True,
        progress: bool = True, echo: Callable[[str], None] | None = print, cache_dir=None,
        tokenizer_texts: Sequence[str] | None = None, extra: dict | None = None) -> RunResult:
    """Train ``recipe`` with ``cfg`` on ``task`` into ``out_dir``, keeping the best epoch (by dev ``cfg.metric``).

    ``on_epoch(epoch, entry)`` is called after each evaluated epoch (a search reports and prunes
    through it by raising) before the epoch's model is saved; ``save_model=False`` keeps no model
    (k-fold members only need their logits). ``info`` fixes the label set (k-fold members share the
    whole set's); by default it comes from ``train_examples``. ``echo`` gets one line per epoch.
    On CUDA out-of-memory the run restarts once per halving with half the batch and twice the
    gradient accumulation (same effective batch).
    """
    from dataclasses import replace

    while True:
        try:
            return _fit(task, recipe, cfg, train_examples, Path(out_dir), dev_examples, info, on_epoch, save_model,
                        progress, echo, cache_dir, tokenizer_texts, extra or {})
        except torch.cuda.OutOfMemoryError:
            t = cfg.training
            if t.batch_size <= 1:
                raise HarnessError("CUDA out of memory even with batch size 1",
                                   hint="lower max_length, use a smaller recipe, or free the GPU") from None
            cfg = replace(cfg, training=replace(t, batch_size=t.batch_size // 2, grad_accum=t.grad_accum * 2))
            if echo:
                echo(f"CUDA out of memory: retrying with batch_size={cfg.training.batch_size} "
                     f"grad_accum={cfg.training.grad_accum} (same effective batch)")
            torch.cuda.empty_cache()


def _fit(task, recipe, cfg, train_examples, out_dir, dev_examples, info, on_epoch, save_model, progress, echo,
         cache_dir, tokenizer_texts, extra) -> RunResult:
    from tqdm.auto import tqdm

    from harness.train.models import build_model, load_tokenizer, quiet_transformers

    quiet_transformers()
    out_dir.mkdir(parents=True, exist_ok=True)
    t, t_start = cfg.training, time.time()
    set_seed(t.seed)
    info = dict(info) if info is not None else task.label_info(train_examples)
    metric_names = task.metrics(info)
    if cfg.metric not in metric_names:
        raise HarnessError(f"metric '{cfg.metric}' is not one of this task's metrics",
                           hint=f"use one of {', '.join(metric_names)} (competition.toml `metric`, or --metric)")
    ranking = (cfg.metric, *[m for m in metric_names if m != cfg.metric])
    texts = tokenizer_texts if tokenizer_texts is not None else task.texts(train_examples)
    tokenizer = load_tokenizer(recipe, cfg, texts, out_dir / MODEL, cache_dir)
    accelerator = make_accelerator(t)
    main = accelerator.is_main_process
    if main:
        atomic_write_json(out_dir / CONFIG, {**cfg.to_dict(), "label_info": info, "n_train": len(train_examples),
                                             "n_dev": len(dev_examples or []), **extra})
    train_rows = task.encode(tokenizer, train_examples, cfg, True, info, cache_dir)
    dev_rows = task.encode(tokenizer, dev_examples, cfg, False, info, cache_dir) if dev_examples else None
    set_seed(t.seed)
    model = build_model(recipe, cfg, tokenizer, task, info)
    batches_per_epoch = len(train_rows) // t.batch_size + bool(len(train_rows) % t.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch // accelerator.num_processes / t.grad_accum)
    total_steps = max(1, min(steps_per_epoch * t.epochs, t.max_steps or steps_per_epoch * t.epochs))
    optimizer, scheduler = make_optimizer(model, t, total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    names = input_names(accelerator.unwrap_model(model)) | set(train_rows.label_arrays())
    if t.compile:
        model = torch.compile(model, dynamic=True)
    result = RunResult(run_dir=out_dir, train_rows=len(train_rows))
    rng = np.random.default_rng(t.seed)
    step, bad_epochs, best_key = 0, 0, None
    log = open(out_dir / "train.log", "a", encoding="utf-8") if main else None
    try:
        for epoch in range(1, t.epochs + 1):
            t0 = time.time()
            batches = shard(length_batches(train_rows.lengths, t.batch_size, True, rng), accelerator)
            with tqdm(total=len(batches), desc=f"epoch {epoch}/{t.epochs}", disable=not (progress and main),
                      leave=False, mininterval=1.0) as bar:
                losses, seen, step = train_epoch(model, train_rows, batches, optimizer, scheduler, accelerator,
                                                 names, t, step, bar)
            train_time = time.time() - t0
            result.loss_curve += [round(float(x), 5) for x in losses]
            entry = {"epoch": epoch, "loss": float(losses.mean()) if len(losses) else 0.0,
                     "train_s": round(train_time, 2), "windows_per_s": round(seen / max(train_time, 1e-9), 1),
                     "step": step}
            improved = True
            if dev_rows is not None:
                t1 = time.time()
                logits = task.predict(accelerator.unwrap_model(model), dev_rows, info, t.eval_batch_size, accelerator)
                scores = task.evaluate(logits, dev_examples, cfg, info)
                entry.update({m: round(scores[m], 4) for m in metric_names}, eval_s=round(time.time() - t1, 2))
                key = tuple(scores[m] for m in ranking)
                improved = best_key is None or key > best_key
                if improved:
                    best_key, result.best_epoch, result.dev_logits = key, epoch, logits
                    result.best = {m: scores[m] for m in metric_names}
            result.history.append(entry)
            if log is not None:
                log.write(json.dumps(entry) + "\n")
                log.flush()
            if echo and main:
                echo(f"epoch {epoch}: " + ", ".join(f"{k} {v}" for k, v in entry.items() if k != "epoch"))
            if on_epoch is not None and dev_rows is not None:
                on_epoch(epoch, entry)  # may raise (a pruned trial): nothing saved for this epoch
            if improved:
                if save_model and main:
                    _save_model(accelerator, model, tokenizer, out_dir / MODEL)
                bad_epochs = 0
            else:
                bad_epochs += 1
            if (t.patience and bad_epochs >= t.patience) or (t.max_steps and step >= t.max_steps):
                break
    except BaseException:
        _free(model, optimizer, accelerator)  # a pruned or failed run gives its memory back at once
        raise
    finally:
        if log is not None:
            log.close()
    if result.best_epoch is None:
        result.best_epoch = result.history[-1]["epoch"] if result.history else None
    if main:
        if result.dev_logits is not None:
            task.save_logits(out_dir / "logits" / "dev.npz", result.dev_logits,
                             {"split": "dev", "run": out_dir.name, "epoch": result.best_epoch})
        atomic_write_json(out_dir / METRICS, {
            "best_epoch": result.best_epoch, "best": result.best, "history": result.history,
            "train_rows": len(train_rows), "total_s": round(time.time() - t_start, 2),
            "loss_curve": result.loss_curve})
    accelerator.wait_for_everyone()
    _free(model, optimizer, accelerator)
    return result


def _save_model(accelerator, model, tokenizer, model_dir: Path) -> None:
    unwrapped = accelerator.unwrap_model(model)
    unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)
    unwrapped.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))


def _free(model, optimizer, accelerator) -> None:
    """Release GPU memory between runs (a search trains many models in one process)."""
    import gc

    accelerator.free_memory()
    del model, optimizer
    if torch.cuda.is_available():  # gc costs ~0.5 s; only worth it where memory is scarce
        gc.collect()
        torch.cuda.empty_cache()
