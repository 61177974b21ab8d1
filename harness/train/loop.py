"""The training loop: one :func:`fit` for every run, search trial, fold and refit, and the step
function :func:`train_epoch` that the speed benchmark clocks.

What a run writes into its (partial) folder, see :mod:`harness.runs`: ``config.json`` first, then
one ``train.log`` line per epoch, the best epoch's ``model/`` (save_pretrained), ``logits/dev.npz``
and ``metrics.json``; the caller's :class:`~harness.runs.RunBuilder` makes it visible.

The loop is the same for every task kind (:mod:`harness.tasks.base`): the task encodes examples
into rows, names the training targets, predicts logits and scores them. Rows are grouped by length
into batches padded only to the longest row of the batch (rounded up to a multiple of 8), mixed
precision is bf16 where the GPU supports it (and on a CPU with AMX), AdamW is fused, batches are
pinned on CUDA, and the loop reads the loss back to the host only every ``CHECK_EVERY`` steps (to
stop a diverged run) and once per epoch.

Under ``accelerate launch --num_processes N`` (or ``torchrun --nproc_per_node N``) the same loop is
data-parallel: ``batch_size`` is per process, every epoch is cut into global length-bucketed batches
of ``N x batch_size`` rows and each process trains on its own disjoint part of every one of them
(:func:`shard`; the same number of steps everywhere), accelerate's DDP averages the gradients, the
logged loss is the mean over all processes, dev predictions are computed on disjoint shares of the
dev examples and gathered to the main process (:func:`harness.train.predict.predict_shared`), and
only the main process writes into the run folder, prints and shows progress bars.
:class:`Launch` is what the run folder owner (:class:`~harness.runs.RunBuilder`) and
:func:`harness.pipeline.train_run` use to agree on one run name and one commit. Setting
``HARNESS_DEBUG_SHARDS=DIR`` makes every process append the row indices of its batches, per epoch,
to ``DIR/rank{R}.jsonl``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from contextlib import nullcontext
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
DEBUG_SHARDS = "HARNESS_DEBUG_SHARDS"  # a folder: every process appends its batches' row indices there


class TrainingDiverged(HarnessError):
    """The training loss became NaN or infinite: the run stops and is not saved."""


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best: dict = field(default_factory=dict)  # dev scores of the best epoch (the task's metrics)
    dev_logits: object | None = None  # the task's logits object of the best epoch
    loss_curve: list[float] = field(default_factory=list)  # training loss of every step (mean over processes)
    train_rows: int = 0
    prepare_s: float = 0.0  # seconds spent on the tokenizer and the encodings (cache hits after the first run)
    is_main: bool = True  # False on the other processes of a launch (they wrote and print nothing)


# ---- devices, precision, seeds, optimiser ----------------------------------------------------

@functools.lru_cache(maxsize=None)
def cpu_has_amx() -> bool:
    """True where this CPU multiplies bf16 matrices on AMX tiles (Intel Sapphire Rapids and later) and
    the kernel lets this process use them. There bf16 autocast trains the minilm shape ~1.4x and
    predicts ~2.6x faster than fp32 with the same loss (``bench/train_speed.py --device cpu --bf16
    on`` against ``--bf16 off``); without AMX, CPU bf16 is emulated and slower, so it stays off."""
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(cpu._is_amx_tile_supported() and cpu._init_amx())
    except Exception:  # an older torch without these probes, or a kernel that refuses AMX
        return False


def resolve_precision(setting: str) -> str:
    """``auto``: bf16 on a GPU that has it (else fp16), bf16 on a CPU with AMX, else none."""
    if setting not in ("auto", None):
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_amx() else "no"


def launched() -> bool:
    """True in a process started by ``accelerate launch`` / ``torchrun`` with more than one process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _cpu_only() -> bool:
    """Several processes without CUDA: accelerate must be told so (``cpu=True``) to join them with gloo
    (without it every process would train alone)."""
    return launched() and not torch.cuda.is_available()


def make_accelerator(t):
    from accelerate import Accelerator

    precision = resolve_precision(t.mixed_precision)
    _start_precision_afresh(precision)
    return Accelerator(mixed_precision=precision, gradient_accumulation_steps=t.grad_accum, cpu=_cpu_only())


def _start_precision_afresh(precision: str) -> None:
    """accelerate keeps one state per process and refuses an Accelerator in another precision than
    the first one's ("restart your runtime"): in a single process (a notebook, a test session, a
    benchmark) a fit in another precision than the last one starts that state afresh. Processes of
    ``accelerate launch`` keep theirs (it holds the process group)."""
    if launched():
        return
    try:
        from accelerate.state import AcceleratorState

        live = AcceleratorState._shared_state.get("_mixed_precision")
    except (ImportError, AttributeError):  # private API moved: accelerate itself says what to do
        return
    if live is not None and str(live) != precision:
        reset_accelerate_state()


def reset_accelerate_state() -> None:
    """Forget accelerate's per-process state, so that the next Accelerator starts clean (single
    process only; the speed benchmark calls it between Trainer's Accelerator and the harness's)."""
    try:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    except (ImportError, AttributeError):  # private API moved: harmless, accelerate explains a conflict
        pass


class Launch:
    """The processes of one training command: one, or N under ``accelerate launch`` / ``torchrun``.

    :meth:`decide` is how they agree: the main process does something (choose the run name, create
    or commit the run folder, write the metrics) and every process gets its result, or its error.
    """

    def __init__(self):
        from accelerate import PartialState

        self.state = PartialState(cpu=_cpu_only())
        self.n, self.rank = self.state.num_processes, self.state.process_index
        self.is_main = self.state.is_main_process

    def decide(self, fn: Callable, barrier: bool = True):
        """``fn()`` on the main process; its value on every process. With ``barrier`` the main process
        starts only once every process got here (so it never commits a run that another process
        failed). An error on the main process is raised on every process (the others raise a
        :class:`HarnessError` with its message)."""
        if self.n == 1:
            return fn()
        from accelerate.utils import broadcast_object_list

        if barrier:
            self.state.wait_for_everyone()
        box: list = [None]
        error = None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except BaseException as e:  # noqa: BLE001 -- shared, then raised again below
                error = e
                box[0] = ("error", getattr(e, "message", None) or f"{type(e).__name__}: {e}", getattr(e, "hint", None))
        broadcast_object_list(box)
        if error is not None:
            raise error
        if box[0][0] == "error":
            raise HarnessError(f"the main process stopped: {box[0][1]}", hint=box[0][2])
        return box[0][1]

    def share(self, value):
        """The main process's ``value`` on every process (no barrier)."""
        return self.decide(lambda: value, barrier=False)


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
    """This process's part of every global batch of an epoch under data parallelism.

    ``batches`` are the epoch's global, length-bucketed batches (``N x batch_size`` rows each, longest
    first, from :func:`~harness.train.batching.length_batches`); process ``r`` of ``N`` takes rows
    ``r, r + N, ...`` of each, so the parts are disjoint, cover the batch, have equal sizes (the epoch's
    last, short global batch: +-1, evened out by :func:`shard_weights`) and the same range of lengths,
    and global step ``s`` trains on exactly the rows a one-process run with ``N x batch_size`` would. A
    global batch with fewer than ``N`` rows (the epoch's remainder) is dropped, so every process takes
    the same number of steps. One process: all of them, unchanged."""
    n, rank = accelerator.num_processes, accelerator.process_index
    if n == 1:
        return batches
    return [b[rank::n] for b in batches if len(b) >= n]


def shard_weights(batches: list, accelerator) -> list[float] | None:
    """Loss weights of this process's parts (:func:`shard`) of the global ``batches``: a part of ``k`` of
    a global batch's ``m`` rows weighs ``k * N / m``, so the mean DDP takes over the processes is the
    mean over the global batch even where it was split unevenly (the epoch's last, short one). None
    when every part weighs 1 (always with one process)."""
    n, rank = accelerator.num_processes, accelerator.process_index
    if n == 1:
        return None
    weights = [len(b[rank::n]) * n / len(b) for b in batches if len(b) >= n]
    return weights if any(w != 1.0 for w in weights) else None


def epoch_steps(n_rows: int, batch_size: int, n_processes: int = 1, grad_accum: int = 1) -> int:
    """Optimiser steps in one epoch of ``n_rows`` (per-process ``batch_size``, as :func:`shard` cuts them)."""
    per = batch_size * n_processes
    batches = n_rows // per + (n_rows % per >= n_processes)
    return math.ceil(batches / grad_accum)


def _record_shards(epoch: int, rank: int, batches: list) -> None:
    """With ``HARNESS_DEBUG_SHARDS=DIR``: append this process's batches (row indices) to ``DIR/rank{R}.jsonl``."""
    folder = os.environ.get(DEBUG_SHARDS)
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / f"rank{rank}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"epoch": epoch, "rank": rank, "batches": [[int(i) for i in b] for b in batches]}) + "\n")


# ---- one epoch --------------------------------------------------------------------------------

def train_epoch(model, rows, batches: list, optimizer, scheduler, accelerator, names: frozenset, t,
                step: int = 0, bar=None, weights: Sequence[float] | None = None) -> tuple[np.ndarray, int, int]:
    """Train one pass over ``batches`` (index arrays into ``rows``); returns (per-batch losses,
    rows seen, optimiser steps so far). Stops early at ``t.max_steps``; raises
    :class:`TrainingDiverged` on a non-finite loss. ``weights`` scale each batch's loss (see
    :func:`shard_weights`)."""
    model.train()
    losses, seen = [], 0
    for i, index in enumerate(batches):
        batch = to_device(collate(rows, index, True), names, accelerator.device)
        with accelerator.accumulate(model):
            with accelerator.autocast():
                loss = model(**batch).loss
            if weights is not None and weights[i] != 1.0:
                loss = loss * weights[i]
            accelerator.backward(loss)
            if accelerator.sync_gradients and t.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            optimizer.step()
            if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                scheduler.step()  # once per optimiser step, whatever the number of processes
            optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        seen += len(index)
        step += int(accelerator.sync_gradients)
        last = i == len(batches) - 1 or bool(t.max_steps and step >= t.max_steps)
        if (i + 1) % CHECK_EVERY == 0 or last:
            recent = torch.stack(losses[-CHECK_EVERY:])
            bad = ~torch.isfinite(recent)
            diverged = bool(bad.any())
            if accelerator.num_processes > 1:  # every process stops together, whichever saw it
                diverged = bool(accelerator.reduce(bad.any().float().reshape(1), "sum").item() > 0)
            if diverged:
                value = float(recent[bad][0]) if bool(bad.any()) else float("nan")
                raise TrainingDiverged(f"the training loss became {value} at "
                                       f"step {step} (lr {t.lr:g}): the run is stopped and not saved",
                                       hint="lower lr (or raise warmup_ratio / max_grad_norm clipping)")
            if bar is not None:
                bar.update(i + 1 - bar.n)
                bar.set_postfix(loss=f"{recent.float().mean().item():.3f}")
        if last:
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
    import tempfile

    from tqdm.auto import tqdm

    from harness.train.models import build_model, load_tokenizer, quiet_transformers
    from harness.train.predict import predict_shared, shard_examples

    quiet_transformers()
    t, t_start = cfg.training, time.time()
    set_seed(t.seed)
    info = dict(info) if info is not None else task.label_info(train_examples)
    metric_names = task.metrics(info)
    if cfg.metric not in metric_names:
        raise HarnessError(f"metric '{cfg.metric}' is not one of this task's metrics",
                           hint=f"use one of {', '.join(metric_names)} (competition.toml `metric`, or --metric)")
    ranking = (cfg.metric, *[m for m in metric_names if m != cfg.metric])
    texts = tokenizer_texts if tokenizer_texts is not None else task.texts(train_examples)
    accelerator = make_accelerator(t)
    launch = Launch()
    n, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    if n > 1 and on_epoch is not None:
        raise HarnessError("search trials are not trained under `accelerate launch`: each trial is one process",
                           hint="run `harness search` without accelerate launch (--n-jobs runs trials side by side)")
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    # the main process tokenizes first, so the others find the vocabulary and encodings in the cache
    with accelerator.main_process_first() if n > 1 and cache_dir is not None else nullcontext():
        if main:
            tokenizer = load_tokenizer(recipe, cfg, texts, out_dir / MODEL, cache_dir)
            atomic_write_json(out_dir / CONFIG, {**cfg.to_dict(), "label_info": info, "n_train": len(train_examples),
                                                 "n_dev": len(dev_examples or []), **extra,
                                                 # what mixed_precision=auto and the launcher resolved to
                                                 "resolved": {"mixed_precision": accelerator.mixed_precision,
                                                              "device": str(accelerator.device), "processes": n}})
        else:  # the same (deterministic) tokenizer, written nowhere near the run folder
            with tempfile.TemporaryDirectory(prefix=f"harness-rank{rank}-") as private:
                tokenizer = load_tokenizer(recipe, cfg, texts, Path(private) / MODEL, cache_dir)
        train_rows = task.encode(tokenizer, train_examples, cfg, True, info, cache_dir)
    dev_rows, dev_index = None, None
    if dev_examples:  # with N processes each one predicts its share of the dev examples
        dev_index = shard_examples(len(dev_examples), accelerator)
        mine = dev_examples if n == 1 else [dev_examples[i] for i in dev_index]
        dev_rows = task.encode(tokenizer, mine, cfg, False, info, cache_dir) if len(mine) else None
    prepare_s = time.time() - t_start  # tokenizer + encodings (from the workspace cache after the first run)
    set_seed(t.seed)
    model = build_model(recipe, cfg, tokenizer, task, info)
    full = epoch_steps(len(train_rows), t.batch_size, n, t.grad_accum) * t.epochs
    total_steps = max(1, min(full, t.max_steps or full))
    optimizer, scheduler = make_optimizer(model, t, total_steps)
    # the scheduler is not prepared: train_epoch steps it once per optimiser step (accelerate's wrapper
    # would step it N times, for loaders whose length it divided by N)
    model, optimizer = accelerator.prepare(model, optimizer)
    if rank > 0:  # dropout masks of their own (the weights are rank 0's: built from one seed, broadcast by DDP)
        torch.manual_seed(t.seed + rank)
    names = input_names(accelerator.unwrap_model(model)) | set(train_rows.label_arrays())
    if t.compile:
        model = torch.compile(model, dynamic=True)
    result = RunResult(run_dir=out_dir, train_rows=len(train_rows), prepare_s=prepare_s, is_main=main)
    rng = np.random.default_rng(t.seed)  # the same global batches on every process
    step, bad_epochs, best_key = 0, 0, None
    log = open(out_dir / "train.log", "a", encoding="utf-8") if main else None
    try:
        for epoch in range(1, t.epochs + 1):
            t0 = time.time()
            global_batches = length_batches(train_rows.lengths, t.batch_size * n, True, rng, t.length_pool)
            batches, weights = shard(global_batches, accelerator), shard_weights(global_batches, accelerator)
            _record_shards(epoch, rank, batches)
            with tqdm(total=len(batches), desc=f"epoch {epoch}/{t.epochs}", disable=not (progress and main),
                      leave=False, mininterval=1.0) as bar:
                losses, seen, step = train_epoch(model, train_rows, batches, optimizer, scheduler, accelerator,
                                                 names, t, step, bar, weights)
            if n > 1:
                losses, seen = _over_processes(accelerator, losses, seen)
            train_time = time.time() - t0
            result.loss_curve += [round(float(x), 5) for x in losses]
            entry = {"epoch": epoch, "loss": float(losses.mean()) if len(losses) else 0.0,
                     "train_s": round(train_time, 2), "windows_per_s": round(seen / max(train_time, 1e-9), 1),
                     "step": step}
            improved = True
            if dev_examples:
                t1 = time.time()
                logits = predict_shared(task, accelerator.unwrap_model(model), dev_rows, dev_index,
                                        [ex.id for ex in dev_examples], info, t.eval_batch_size, accelerator)
                # the main process decodes and scores; every process learns the scores (same early stopping)
                scores = launch.decide(lambda: _scores(task, logits, dev_examples, cfg, info, metric_names),
                                       barrier=False)
                entry.update({m: round(scores[m], 4) for m in metric_names}, eval_s=round(time.time() - t1, 2))
                key = tuple(scores[m] for m in ranking)
                improved = best_key is None or key > best_key
                if improved:
                    best_key, result.best_epoch, result.dev_logits = key, epoch, logits
                    result.best = dict(scores)
            result.history.append(entry)
            if log is not None:
                log.write(json.dumps(entry) + "\n")
                log.flush()
            if echo and main:
                echo(f"epoch {epoch}: " + ", ".join(f"{k} {v}" for k, v in entry.items() if k != "epoch"))
            if on_epoch is not None and dev_examples:
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

    def finish():
        if result.dev_logits is not None:
            task.save_logits(out_dir / "logits" / "dev.npz", result.dev_logits,
                             {"split": "dev", "run": out_dir.name, "epoch": result.best_epoch})
        atomic_write_json(out_dir / METRICS, {
            "best_epoch": result.best_epoch, "best": result.best, "history": result.history,
            "train_rows": len(train_rows), "prepare_s": round(prepare_s, 3),
            "total_s": round(time.time() - t_start, 2),
            "loss_curve": result.loss_curve})

    try:
        launch.decide(finish)  # the main process writes, once every process has finished training
    finally:
        _free(model, optimizer, accelerator)
    return result


def _scores(task, logits, examples, cfg, info, metric_names) -> dict:
    scores = task.evaluate(logits, examples, cfg, info)
    return {m: float(scores[m]) for m in metric_names}


def _over_processes(accelerator, losses: np.ndarray, seen: int) -> tuple[np.ndarray, int]:
    """Per-step loss averaged over the processes (every process took the same steps, each on its
    weighted part of the global batch, so this is the global batch's loss) and the rows all of them saw."""
    device = accelerator.device
    every = accelerator.gather(torch.as_tensor(losses, dtype=torch.float32, device=device))
    total = accelerator.reduce(torch.tensor([float(seen)], device=device), "sum")
    return every.reshape(accelerator.num_processes, -1).mean(0).cpu().numpy(), int(total.item())


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
