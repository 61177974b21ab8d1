"""The training loop (accelerate) and window-level prediction, plus run directories.

A run directory holds everything one training produced::

    runs/NAME/
      config.json         recipe, checkpoint, hyperparameters, competition, data sizes
      metrics.json        per-epoch loss and dev EM/F1, best epoch, timings
      train.log           the same as text lines
      model/              best model + tokenizer (save_pretrained)
      logits/dev.npz      dev window logits of the best epoch (see artifacts.py)
      logits/test.npz     written by `harness predict`

Speed matters (search multiplies it): windows are grouped by length into batches padded only to
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

from harness.artifacts import atomic_write_text, save_logits
from harness.data.example import Example
from harness.errors import HarnessError
from harness.qa.windows import Windows, make_windows
from harness.recipes import Recipe

PAD_MULTIPLE = 8


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best: dict = field(default_factory=dict)  # dev scores of the best epoch ({"em", "f1"})
    dev_logits: tuple | None = None  # (windows, start, end) of the best epoch
    loss_curve: list[float] = field(default_factory=list)  # training loss of every batch


# ---- batching ---------------------------------------------------------------------------------

def length_batches(lengths: np.ndarray, batch_size: int, shuffle: bool, rng: np.random.Generator | None,
                   pool: int = 50) -> list[np.ndarray]:
    """Index batches of similar length: shuffle, sort within pools of ``pool`` batches, shuffle batches."""
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    batches = []
    span = batch_size * pool
    for s in range(0, len(order), span):
        chunk = order[s:s + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(windows: Windows, rows: np.ndarray, labels: bool) -> dict[str, torch.Tensor]:
    """Tensors for ``rows``, padded to the batch's longest window rounded up to ``PAD_MULTIPLE``."""
    width = int(windows.lengths[rows].max())
    width = min(windows.input_ids.shape[1], -(-width // PAD_MULTIPLE) * PAD_MULTIPLE)
    batch = {
        "input_ids": torch.from_numpy(windows.input_ids[rows, :width].astype(np.int64)),
        "attention_mask": torch.from_numpy(
            (np.arange(width)[None, :] < windows.lengths[rows, None]).astype(np.int64)),
    }
    if windows.token_type_ids is not None:
        batch["token_type_ids"] = torch.from_numpy(windows.token_type_ids[rows, :width].astype(np.int64))
    if labels:
        batch["start_positions"] = torch.from_numpy(windows.start_positions[rows].astype(np.int64))
        batch["end_positions"] = torch.from_numpy(windows.end_positions[rows].astype(np.int64))
    return batch


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


def input_names(model) -> frozenset[str]:
    """The inputs a model's forward takes (e.g. no token_type_ids for DistilBERT).

    Read from the plain model: a ``torch.compile``d module's forward is ``(*args, **kwargs)``.
    """
    import inspect

    model = getattr(model, "_orig_mod", model)
    return frozenset(inspect.signature(model.forward).parameters)


def to_device(batch: dict, names: frozenset[str], device) -> dict:
    """Keep the inputs the model takes and move them (pinned, so asynchronously, on CUDA)."""
    if device.type == "cuda":
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items() if k in names}
    return {k: v.to(device) for k, v in batch.items() if k in names}


# ---- prediction -----------------------------------------------------------------------------

@torch.no_grad()
def predict_windows(model, windows: Windows, batch_size: int = 64, accelerator=None,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Start/end logits [n_windows, L] (float32); positions past a window's length are -1e4."""
    from tqdm.auto import tqdm

    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    model.eval()
    names = input_names(model)
    n, width = windows.input_ids.shape
    start = np.full((n, width), -1e4, dtype=np.float32)
    end = np.full((n, width), -1e4, dtype=np.float32)
    pending = []
    for rows in tqdm(length_batches(windows.lengths, batch_size, False, None), desc="predict", leave=False,
                     disable=not progress, mininterval=1.0):
        batch = to_device(collate(windows, rows, False), names, device)
        with (accelerator.autocast() if accelerator is not None else torch.autocast(device.type, enabled=False)):
            out = model(**batch)
        pending.append((rows, out.start_logits.float(), out.end_logits.float()))
        if len(pending) >= 16:  # copy back in groups: fewer host syncs
            _flush(pending, start, end)
    _flush(pending, start, end)
    beyond = np.arange(width)[None, :] >= windows.lengths[:, None]
    start[beyond] = -1e4
    end[beyond] = -1e4
    return start, end


def _flush(pending, start, end):
    for rows, s, e in pending:
        w = s.shape[1]
        start[rows, :w] = s.cpu().numpy()
        end[rows, :w] = e.cpu().numpy()
    pending.clear()


# ---- the loop -------------------------------------------------------------------------------

def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def qa_windows(tokenizer, examples: Sequence[Example], params: dict, train: bool, lang: str) -> Windows:
    split_chars = params.get("split_chars")
    if split_chars is None:
        split_chars = lang == "zh"
    return make_windows(
        tokenizer, examples, max_length=int(params["max_length"]), doc_stride=int(params["doc_stride"]),
        max_query_length=int(params["max_query_length"]), with_labels=train,
        max_offset=params.get("max_offset") if train else None, seed=int(params["seed"]), split_chars=split_chars,
    )


def evaluate_logits(windows, start, end, examples, params) -> dict:
    """Decode window logits into answers and score them against the examples' references."""
    from harness.qa.decode import decode_windows
    from harness.qa.metrics import qa_scores

    preds = decode_windows(start, end, windows, examples, max_answer_length=int(params["max_answer_length"]),
                           n_best=int(params["n_best"]), null_threshold=params.get("null_threshold"))
    answers = preds.to_dict()
    scores = qa_scores(answers, {ex.id: list(ex.answers) for ex in examples})
    return {"em": scores["em"], "f1": scores["f1"], "answers": answers}


def train_qa(recipe: Recipe, params: dict, train_examples: Sequence[Example], run_dir: str | Path,
             dev_examples: Sequence[Example] | None = None, lang: str = "zh",
             on_epoch: Callable[[int, dict], None] | None = None, progress: bool = True,
             tokenizer_texts: Sequence[str] | None = None, extra_config: dict | None = None,
             save_model: bool = True) -> RunResult:
    """Train ``recipe`` with ``params`` and keep the best epoch (by dev ``metric``) in ``run_dir``.

    ``on_epoch(epoch, scores)`` is called after each evaluated epoch (Optuna reports and prunes
    through it by raising) before the epoch's model is saved; ``save_model=False`` keeps no model
    (k-fold members only need their logits). On CUDA out-of-memory the run restarts once per halving with half
    the batch and twice the gradient accumulation (same effective batch).
    """
    params = dict(params)
    while True:
        try:
            return _train_once(recipe, params, train_examples, Path(run_dir), dev_examples, lang, on_epoch,
                               progress, tokenizer_texts, extra_config or {}, save_model)
        except torch.cuda.OutOfMemoryError:
            if int(params["batch_size"]) <= 1:
                raise HarnessError("CUDA out of memory even with batch size 1",
                                   hint="lower max_length, use a smaller recipe, or free the GPU") from None
            params["batch_size"] = int(params["batch_size"]) // 2
            params["grad_accum"] = int(params.get("grad_accum", 1)) * 2
            print(f"CUDA out of memory: retrying with batch_size={params['batch_size']} "
                  f"grad_accum={params['grad_accum']} (same effective batch)")
            torch.cuda.empty_cache()


def _train_once(recipe, params, train_examples, run_dir, dev_examples, lang, on_epoch, progress,
                tokenizer_texts, extra_config, save_model) -> RunResult:
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from harness.models import build_model, load_tokenizer, quiet_transformers

    quiet_transformers()
    t_start = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    model_dir = run_dir / "model"
    set_seed(int(params["seed"]))
    texts = tokenizer_texts
    if texts is None and recipe.tokenizer == "train-wordpiece":
        texts = _unique_texts(train_examples)
    tokenizer = load_tokenizer(recipe, params, texts=texts, out_dir=model_dir)
    config = {"recipe": recipe.name, "checkpoint": recipe.checkpoint, "task": "qa", "lang": lang,
              "params": params, "n_train": len(train_examples), "n_dev": len(dev_examples or []), **extra_config}
    atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2, ensure_ascii=False, default=str))

    train_w = qa_windows(tokenizer, train_examples, params, train=True, lang=lang)
    dev_w = qa_windows(tokenizer, dev_examples, params, train=False, lang=lang) if dev_examples else None
    if len(train_w) == 0:
        raise HarnessError("no training windows: the training set has no answered questions")

    accelerator = make_accelerator(params)
    set_seed(int(params["seed"]))
    model = build_model(recipe, params, tokenizer, task="qa")
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
    names = input_names(accelerator.unwrap_model(model)) | {"start_positions", "end_positions"}
    if params.get("compile") is True:
        model = torch.compile(model, dynamic=True)

    result = RunResult(run_dir=run_dir)
    rng = np.random.default_rng(int(params["seed"]))
    step, bad_epochs, best_key = 0, 0, None
    metric = params.get("metric", "em")
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
                                    win_s=f"{seen / max(time.time() - t0, 1e-9):.0f}")
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
                start, end = predict_windows(accelerator.unwrap_model(model), dev_w,
                                             int(params.get("eval_batch_size", 64)), accelerator)
                scores = evaluate_logits(dev_w, start, end, dev_examples, params)
                entry.update(em=round(scores["em"], 4), f1=round(scores["f1"], 4), eval_s=round(time.time() - t1, 2))
                key = (scores[metric], scores["f1"])
                improved = best_key is None or key > best_key
                if improved:
                    best_key = key
                    result.best_epoch, result.best = epoch, {"em": scores["em"], "f1": scores["f1"]}
                    result.dev_logits = (dev_w, start, end)
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
        w, s, e = result.dev_logits
        save_logits(run_dir / "logits" / "dev.npz", w, s, e, {"split": "dev", "run": run_dir.name,
                                                            "epoch": result.best_epoch})
    metrics = {"best_epoch": result.best_epoch, "best": result.best, "history": result.history,
               "train_windows": len(train_w), "total_s": round(time.time() - t_start, 2),
               "loss_curve": result.loss_curve}
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    _free(model, optimizer, accelerator)
    return result


def _unique_texts(examples: Sequence[Example]) -> list[str]:
    seen, out = set(), []
    for ex in examples:
        for t in (ex.context, ex.question):
            if t not in seen:
                seen.add(t)
                out.append(t)
    return out


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
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from harness.models import quiet_transformers

    quiet_transformers()
    run_dir = Path(run_dir)
    if not (run_dir / "model").exists():
        raise HarnessError(f"run {run_dir} has no saved model", hint="train it first with `harness train`")
    config = json.loads((run_dir / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(run_dir / "model"))
    model = AutoModelForQuestionAnswering.from_pretrained(str(run_dir / "model"))
    return model, tok, config


def predict_run(run_dir: str | Path, examples: Sequence[Example], split: str, batch_size: int | None = None,
                progress: bool = True) -> Path:
    """Predict window logits of ``examples`` with a finished run; saves ``logits/<split>.npz``."""
    run_dir = Path(run_dir)
    model, tokenizer, config = load_run_model(run_dir)
    params = config["params"]
    windows = qa_windows(tokenizer, examples, params, train=False, lang=config.get("lang", "zh"))
    accelerator = make_accelerator(params)
    model = accelerator.prepare(model)
    start, end = predict_windows(accelerator.unwrap_model(model), windows,
                                 batch_size or int(params.get("eval_batch_size", 64)), accelerator, progress)
    return save_logits(run_dir / "logits" / f"{split}.npz", windows, start, end,
                       {"split": split, "run": run_dir.name})
