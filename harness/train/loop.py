"""The training loop (accelerate) and window-level prediction, plus run directories.

A run directory holds everything one training produced::

    runs/NAME/
      config.json         recipe, checkpoint, hyperparameters, competition, data sizes
      metrics.json        per-epoch loss and dev scores (the task's metrics), best epoch, timings
      train.log           the same as text lines
      model/              best model + tokenizer (save_pretrained)
      logits/dev.npz      dev logits of the best epoch (see artifacts.py)
      logits/test.npz     written by `harness predict`

The loop is the same for every task kind (``harness.tasks.base``): the task encodes examples into
rows, names the training targets, predicts logits and scores them.

Speed matters (search multiplies it): rows (QA windows, texts) are grouped by length into batches padded only to
the longest window of the batch (rounded up to a multiple of 8), mixed precision is bf16 where
the GPU supports it, AdamW is fused, batches are pinned on CUDA, and the loop never synchronises with the host
except to log the loss every ``log_every`` steps.
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

from harness.runs import atomic_write_text
from harness.train.batching import PAD_MULTIPLE, collate, input_names, length_batches, to_device  # noqa: F401
from harness.common.errors import HarnessError
from harness.tasks.qa.task import evaluate_logits, predict_windows, qa_windows  # noqa: F401  (QA helpers, re-exported)
from harness.recipes import Recipe
from harness.tasks.base import get_task


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best: dict = field(default_factory=dict)  # dev scores of the best epoch (the task's metrics)
    dev_logits: object | None = None  # LogitSet / ClassLogits of the best epoch
    loss_curve: list[float] = field(default_factory=list)  # training loss of every batch


# ---- devices and precision ------------------------------------------------------------------

def resolve_precision(setting: str) -> str:
    if setting not in ("auto", None):
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def make_accelerator(params: dict):
    from accelerate import Accelerator

    return Accelerator(mixed_precision=resolve_precision(params.get("mixed_precision", "auto")),
                       gradient_accumulation_steps=int(params.get("grad_accum", 1)))


# ---- the loop -------------------------------------------------------------------------------

def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_model(recipe: Recipe, params: dict, train_examples: Sequence, run_dir: str | Path,
                dev_examples: Sequence | None = None, lang: str = "zh",
                on_epoch: Callable[[int, dict], None] | None = None, progress: bool = True,
                tokenizer_texts: Sequence[str] | None = None, extra_config: dict | None = None,
                save_model: bool = True, task: str = "qa", label_info: dict | None = None) -> RunResult:
    """Train ``recipe`` with ``params`` on a ``task`` and keep the best epoch (by dev ``metric``) in ``run_dir``.

    ``on_epoch(epoch, scores)`` is called after each evaluated epoch (Optuna reports and prunes
    through it by raising) before the epoch's model is saved; ``save_model=False`` keeps no model
    (k-fold members only need their logits). ``label_info`` fixes the label set (k-fold members
    share the whole set's, so their logits columns agree); by default it is read from
    ``train_examples``. On CUDA out-of-memory the run restarts once per halving with half
    the batch and twice the gradient accumulation (same effective batch).
    """
    params = dict(params)
    kind = get_task(task)
    while True:
        try:
            return _train_once(kind, recipe, params, train_examples, Path(run_dir), dev_examples, lang, on_epoch,
                               progress, tokenizer_texts, extra_config or {}, save_model, label_info)
        except torch.cuda.OutOfMemoryError:
            if int(params["batch_size"]) <= 1:
                raise HarnessError("CUDA out of memory even with batch size 1",
                                   hint="lower max_length, use a smaller recipe, or free the GPU") from None
            params["batch_size"] = int(params["batch_size"]) // 2
            params["grad_accum"] = int(params.get("grad_accum", 1)) * 2
            print(f"CUDA out of memory: retrying with batch_size={params['batch_size']} "
                  f"grad_accum={params['grad_accum']} (same effective batch)")
            torch.cuda.empty_cache()


train_qa = train_model  # the QA spelling (task="qa" is the default)


def _train_once(task, recipe, params, train_examples, run_dir, dev_examples, lang, on_epoch, progress,
                tokenizer_texts, extra_config, save_model, label_info) -> RunResult:
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from harness.train.models import build_model, load_tokenizer, quiet_transformers

    quiet_transformers()
    t_start = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    model_dir = run_dir / "model"
    set_seed(int(params["seed"]))
    info = label_info if label_info is not None else task.label_info(train_examples, params)
    texts = tokenizer_texts
    if texts is None and recipe.tokenizer == "train-wordpiece":
        texts = task.tokenizer_texts(train_examples)
    tokenizer = load_tokenizer(recipe, params, texts=texts, out_dir=model_dir)
    config = {"recipe": recipe.name, "checkpoint": recipe.checkpoint, "task": task.kind, "lang": lang,
              "params": params, "label_info": info, "n_train": len(train_examples),
              "n_dev": len(dev_examples or []), **extra_config}
    atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2, ensure_ascii=False, default=str))

    train_w = task.encode(tokenizer, train_examples, params, True, lang, info)
    dev_w = task.encode(tokenizer, dev_examples, params, False, lang, info) if dev_examples else None

    accelerator = make_accelerator(params)
    set_seed(int(params["seed"]))
    model = build_model(recipe, params, tokenizer, task=task.kind, num_labels=task.num_labels(info),
                        labels=info.get("labels"))
    bs, accum = int(params["batch_size"]), int(params.get("grad_accum", 1))
    steps_per_epoch = math.ceil(math.ceil(len(train_w) / bs) / accum)
    total_steps = steps_per_epoch * int(params["epochs"])
    if params.get("max_steps"):
        total_steps = min(total_steps, int(params["max_steps"]))
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": float(params["weight_decay"])},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=float(params["lr"]), fused=True)  # fused on CPU too (torch >= 2.4)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(float(params["warmup_ratio"]) * total_steps),
                                                total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    names = input_names(accelerator.unwrap_model(model)) | set(train_w.label_arrays())
    if params.get("compile") is True:
        model = torch.compile(model, dynamic=True)

    result = RunResult(run_dir=run_dir)
    rng = np.random.default_rng(int(params["seed"]))
    step, bad_epochs, best_key = 0, 0, None
    metric_names = task.metrics(info)
    metric = params.get("metric") or metric_names[0]
    if metric not in metric_names:
        raise HarnessError(f"metric '{metric}' is not one of this task's metrics",
                           hint=f"use one of {', '.join(metric_names)} (competition.toml `metric`, or --metric)")
    ranking = (metric, *[m for m in metric_names if m != metric])
    log = open(run_dir / "train.log", "a", encoding="utf-8")
    try:
        for epoch in range(1, int(params["epochs"]) + 1):
            model.train()
            t0, seen = time.time(), 0
            step_losses = []  # detached tensors; read back once per epoch (no per-step host sync)
            batches = length_batches(train_w.lengths, bs, True, rng)
            bar = tqdm(batches, desc=f"epoch {epoch}/{params['epochs']}", disable=not progress, leave=False,
                       mininterval=1.0)
            for i, rows in enumerate(bar):
                batch = to_device(collate(train_w, rows, True), names, accelerator.device)
                with accelerator.accumulate(model):
                    with accelerator.autocast():
                        loss = model(**batch).loss
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), float(params["max_grad_norm"]))
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                step_losses.append(loss.detach())
                seen += len(rows)
                if accelerator.sync_gradients:
                    step += 1
                if progress and (i % 20 == 0 or i == len(batches) - 1):
                    bar.set_postfix(loss=f"{torch.stack(step_losses[-20:]).mean().item():.3f}",
                                    rows_s=f"{seen / max(time.time() - t0, 1e-9):.0f}")
                if params.get("max_steps") and step >= int(params["max_steps"]):
                    break
            train_time = time.time() - t0
            losses = torch.stack(step_losses).float().cpu().numpy() if step_losses else np.zeros(0)
            result.loss_curve += [round(float(x), 5) for x in losses]
            entry = {"epoch": epoch, "loss": float(losses.mean()) if len(losses) else 0.0,
                     "train_s": round(train_time, 2),
                     "windows_per_s": round(seen / max(train_time, 1e-9), 1), "step": step}
            improved = True
            if dev_w is not None:
                t1 = time.time()
                logits = task.predict(accelerator.unwrap_model(model), dev_w, info,
                                      int(params.get("eval_batch_size", 64)), accelerator)
                scores = task.evaluate(logits, dev_examples, params, info)
                entry.update({m: round(scores[m], 4) for m in metric_names}, eval_s=round(time.time() - t1, 2))
                key = tuple(scores[m] for m in ranking)
                improved = best_key is None or key > best_key
                if improved:
                    best_key = key
                    result.best_epoch, result.best = epoch, {m: scores[m] for m in metric_names}
                    result.dev_logits = logits
            result.history.append(entry)
            log.write(json.dumps(entry) + "\n")
            log.flush()
            if progress:
                shown = ", ".join(f"{k} {v}" for k, v in entry.items() if k != "epoch")
                print(f"epoch {epoch}: {shown}")
            if on_epoch is not None and dev_w is not None:
                on_epoch(epoch, entry)  # may raise (a pruned trial): nothing saved for this epoch
            if improved:
                if save_model:
                    _save_model(accelerator, model, tokenizer, model_dir)
                bad_epochs = 0
            else:
                bad_epochs += 1
            if int(params.get("patience") or 0) and bad_epochs >= int(params["patience"]):
                break
            if params.get("max_steps") and step >= int(params["max_steps"]):
                break
    except BaseException:
        _free(model, optimizer, accelerator)  # a pruned or failed run gives its memory back at once
        raise
    finally:
        log.close()
    if result.best_epoch is None:
        result.best_epoch = result.history[-1]["epoch"] if result.history else None
    if result.dev_logits is not None:
        task.save_logits(run_dir / "logits" / "dev.npz", result.dev_logits,
                         {"split": "dev", "run": run_dir.name, "epoch": result.best_epoch})
    metrics = {"best_epoch": result.best_epoch, "best": result.best, "history": result.history,
               "train_rows": len(train_w), "total_s": round(time.time() - t_start, 2),
               "loss_curve": result.loss_curve}
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
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


def load_run_model(run_dir: str | Path):
    """(model, tokenizer, config) of a finished run."""
    import transformers
    from transformers import AutoTokenizer

    from harness.train.models import quiet_transformers

    quiet_transformers()
    run_dir = Path(run_dir)
    if not (run_dir / "model").exists():
        raise HarnessError(f"run {run_dir} has no saved model", hint="train it first with `harness train`")
    config = json.loads((run_dir / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(run_dir / "model"))
    model_class = getattr(transformers, get_task(config.get("task", "qa")).model_class)
    model = model_class.from_pretrained(str(run_dir / "model"))
    return model, tok, config


def predict_run(run_dir: str | Path, examples: Sequence, split: str, batch_size: int | None = None,
                progress: bool = True) -> Path:
    """Predict the logits of ``examples`` with a finished run; saves ``logits/<split>.npz``."""
    run_dir = Path(run_dir)
    model, tokenizer, config = load_run_model(run_dir)
    params = config["params"]
    task = get_task(config.get("task", "qa"))
    info = config.get("label_info") or {}
    rows = task.encode(tokenizer, examples, params, False, config.get("lang", "zh"), info)
    accelerator = make_accelerator(params)
    model = accelerator.prepare(model)
    logits = task.predict(accelerator.unwrap_model(model), rows, info,
                          batch_size or int(params.get("eval_batch_size", 64)), accelerator, progress)
    return task.save_logits(run_dir / "logits" / f"{split}.npz", logits, {"split": split, "run": run_dir.name})
