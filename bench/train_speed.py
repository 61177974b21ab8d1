"""Benchmark: the harness training/prediction loop vs Hugging Face ``Trainer`` (same model, data, seed, steps).

    python bench/train_speed.py                          # GPU: base + large shapes, all DRCD dev windows
    python bench/train_speed.py --shape large --steps 200
    python bench/train_speed.py --device cpu --steps 4   # CPU (fp32, no compile): slow, a few steps
    python bench/train_speed.py --quick                  # CI size: 2-layer hidden-128 model, 200 windows of 128

Both sides train the same randomly initialised ``BertForQuestionAnswering`` (identical initial
weights) on the same windows (DRCD dev from ../shared/data via ``read_squad`` + ``make_windows``,
max_length 384, stride 128, one token per character; synthetic windows when the data is absent)
for the same number of steps with the same seed, learning rate (linear decay, no warm-up), weight
decay, gradient clipping and batch size:

* trainer: ``transformers.Trainer`` as ``run_qa.py`` uses it: features padded to max_length in a
  ``datasets.Dataset``, ``default_data_collator``, ``TrainingArguments(per_device_train_batch_size=32,
  bf16=<on GPU>)`` and otherwise default arguments (optimizer adamw_torch_fused, no compile).
* harness: the pieces of ``harness.train.loop``: ``length_batches`` (length-bucketed batches) +
  ``collate`` (padding to the batch's longest window, rounded up to 8) + ``make_accelerator``
  (bf16 autocast on GPU) + AdamW fused on CUDA + ``torch.compile(dynamic=True)`` on GPU
  (``--compile``), the same step as ``harness.train.loop._train_once``.

Training speed is measured over the steps after ``--warmup-steps`` (compilation, allocator and
cuBLAS warm-up excluded; the device is synchronised only at the two clock marks); prediction speed
over ``Trainer.predict`` vs ``harness.train.loop.predict_windows`` on all windows after a short warm-up
call. Model FLOP utilisation = 6 * N * tokens/s over a bf16 (fp32 on CPU) square-matmul throughput
measured in the same run, N = non-embedding parameters (attention-score FLOPs not counted); the
harness is credited with real tokens, the Trainer with the padded tokens it computes (and, in
brackets, the real ones).

Training quality: ``loss_curve`` compares the per-step training losses (moving averages; a step's
loss depends on its padded width, ~ln(width) at random init, so the harness curve is noisier and
sits lower by construction) and ``loss_fixed`` the loss of both trained models on the same fixed
windows, batched the same way, which is the fair "same training" check. ``predict_check`` is the
largest logit difference between the two predictors on the same weights. On CUDA ``h2d_check``
says whether a ``non_blocking`` copy of a pageable batch (what ``collate`` returns) waits for the
GPU. Each shape ends with two lines, e.g.::

    train_speed: harness 123.4 win/s, trainer 61.2 win/s, ratio 2.02x (base, cuda)
    predict_speed: harness 812.0 win/s, trainer 262.3 win/s, ratio 3.10x (base, cuda)

The harness side repeats the body of ``harness.train.loop._train_once`` (same batching, collate,
``to_device``, fused AdamW, autocast) with a clock around each step.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
DRCD = SHARED / "drcd" / "DRCD_dev.json"
VOCAB = SHARED / "vocab" / "bert-base-chinese-vocab.txt"
VOCAB_SIZE = 21128
FIXED_LOSS_WINDOWS = {"cuda": 256, "cpu": 64}  # the windows of the loss_fixed line

SHAPES = {  # BertConfig keyword arguments (defaults = bert-base-chinese)
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
    "base": dict(),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    p.add_argument("--shape", choices=["base", "large", "both"], default=None,
                   help="model shape (default: both on cuda, base on cpu; --quick: a 2-layer hidden-128 shape)")
    p.add_argument("--steps", type=int, default=None, help="training steps for each side (default 100 cuda, 4 cpu)")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="first steps left out of the training clock (default 10 cuda, 1 cpu)")
    p.add_argument("--windows", type=int, default=None, help="use a random subset of this many windows "
                   "(default: all on cuda, 256 on cpu)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=64, help="prediction batch size (both sides)")
    p.add_argument("--max-length", type=int, default=None, help="window length (default 384; --quick 128)")
    p.add_argument("--stride", type=int, default=None, help="window overlap (default 128; --quick 32)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                   help="torch.compile(dynamic=True) for the harness loop (auto: on for cuda, off for cpu)")
    p.add_argument("--repeats", type=int, default=1,
                   help="train each side this many times, alternating, and keep each side's fastest run "
                        "(steadier ratios on a shared CPU)")
    p.add_argument("--smooth", type=int, default=None, help="moving-average window of the loss curves")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; --quick: 1, far steadier on a shared 2-core machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic", action="store_true", help="synthetic windows even when ../shared/data exists")
    p.add_argument("--json", type=Path, default=None, help="also write all figures and loss curves here")
    p.add_argument("--quick", action="store_true",
                   help="CI size: 2-layer hidden-128 shape, ~200 windows of 128 tokens, a few steps, cpu")
    args = p.parse_args(argv)
    if args.quick:
        args.device = args.device or "cpu"
        args.shape = "tiny"
        args.max_length, args.stride = args.max_length or 128, args.stride or 32
        args.windows = args.windows or 200
        args.steps = args.steps or 4
        args.warmup_steps = 1 if args.warmup_steps is None else args.warmup_steps
        args.threads = args.threads or 1
    args.max_length, args.stride = args.max_length or 384, args.stride or 128
    return args


# ---- data -----------------------------------------------------------------------------------

def load_windows(args):
    """(Windows with labels, source description)."""
    import numpy as np

    rng = np.random.default_rng(args.seed)
    if DRCD.exists() and VOCAB.exists() and not args.synthetic:
        from transformers import BertTokenizerFast

        from harness.tasks.qa.readers import read_squad
        from harness.tasks.qa.windows import make_windows

        examples = read_squad(DRCD)
        tokenizer = BertTokenizerFast(str(VOCAB))  # v5: the vocab path must be positional
        # build from a prefix of the examples large enough for the subset (all windows: 13 s on 2 cores)
        k = len(examples) if args.windows is None else min(len(examples), args.windows // 2 + 16)
        while True:
            windows = make_windows(tokenizer, examples[:k], max_length=args.max_length, doc_stride=args.stride,
                                   with_labels=True, split_chars=True)
            if args.windows is None or len(windows) >= args.windows or k == len(examples):
                break
            k = min(len(examples), 2 * k)
        source = f"DRCD dev ({k} questions)"
    else:
        windows = synthetic_windows(args.windows or 2048, args.max_length, rng)
        source = "synthetic"
    if args.windows is not None and args.windows < len(windows):
        windows = windows.subset(np.sort(rng.choice(len(windows), args.windows, replace=False)))
    return windows, source


def synthetic_windows(n: int, max_length: int, rng):
    """Windows shaped like DRCD's: half full length, the rest 35-100 % of it, a 20-token question."""
    import numpy as np

    from harness.tasks.qa.windows import Windows

    full = rng.random(n) < 0.5
    lengths = np.where(full, max_length, rng.integers(int(0.35 * max_length), max_length + 1, n)).astype(np.int32)
    ids = np.zeros((n, max_length), np.int32)
    tt = np.zeros((n, max_length), np.int8)
    q = 20
    for i, k in enumerate(lengths):
        ids[i, :k] = rng.integers(670, VOCAB_SIZE, k)
        ids[i, 0], ids[i, q + 1], ids[i, k - 1] = 101, 102, 102
        tt[i, q + 2:k] = 1
    starts = np.array([rng.integers(q + 2, k - 1) for k in lengths], np.int32)
    ends = np.minimum(starts + rng.integers(0, 8, n), lengths - 2).astype(np.int32)
    no_answer = rng.random(n) < 0.3
    starts[no_answer] = ends[no_answer] = 0
    return Windows(input_ids=ids, token_type_ids=tt, lengths=lengths,
                   offsets=np.full((n, max_length, 2), -1, np.int32), example_index=np.arange(n, dtype=np.int32),
                   cls_index=np.zeros(n, np.int32), start_positions=starts, end_positions=ends,
                   example_ids=[str(i) for i in range(n)])


_FEATURES: dict = {}


def padded_features(windows, labels: bool):
    """run_qa.py's features: every column padded to max_length, as plain lists (built once per windows)."""
    key = (id(windows), labels)
    if key not in _FEATURES:
        _FEATURES[key] = _padded_features(windows, labels)
    return _FEATURES[key]


def _padded_features(windows, labels: bool):
    import numpy as np

    cols = {
        "input_ids": windows.input_ids.astype(np.int64).tolist(),
        "token_type_ids": windows.token_type_ids.astype(np.int64).tolist(),
        "attention_mask": windows.attention_mask.astype(np.int64).tolist(),
    }
    if labels:
        cols["start_positions"] = windows.start_positions.astype(np.int64).tolist()
        cols["end_positions"] = windows.end_positions.astype(np.int64).tolist()
    try:
        import datasets

        return datasets.Dataset.from_dict(cols)
    except ImportError:  # a simple torch Dataset of the same rows
        import torch

        class Features(torch.utils.data.Dataset):
            def __len__(self):
                return len(cols["input_ids"])

            def __getitem__(self, i):
                return {k: v[i] for k, v in cols.items()}

        return Features()


# ---- device helpers -------------------------------------------------------------------------

def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str, quick: bool) -> tuple[float, str]:
    """Measured FLOP/s of a square matmul loop (bf16 4096 on cuda, fp32 on cpu)."""
    import torch

    if device == "cuda":
        n, dtype, reps = 4096, torch.bfloat16, 50
    else:
        n, dtype, reps = (512 if quick else 1024), torch.float32, (10 if quick else 5)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 * reps / best, f"{'bf16' if dtype == torch.bfloat16 else 'fp32'} {n}x{n} matmul"


def flops(x: float) -> str:
    return f"{x / 1e12:.1f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:.2f} GFLOP/s"


def release(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def reset_accelerate_state() -> None:
    """Trainer and the harness each make an Accelerator; let the next one start clean."""
    try:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    except Exception:  # private API; harmless when it moves
        pass


@contextlib.contextmanager
def _eval_mode(model):
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def fixed_loss(model, windows, device: str, bf16: bool, batch_size: int = 64) -> float:
    """Mean loss on the first ``n`` windows, batched the same way for every model (dynamic padding)."""
    import numpy as np
    import torch

    from harness.train.batching import collate

    rows_all = np.arange(min(FIXED_LOSS_WINDOWS[device], len(windows)))
    total = 0.0
    with torch.no_grad(), _eval_mode(model):
        for s in range(0, len(rows_all), batch_size):
            rows = rows_all[s:s + batch_size]
            batch = {k: v.to(device) for k, v in collate(windows, rows, True).items()}
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                total += float(model(**batch).loss) * len(rows)
    return total / len(rows_all)


# ---- the two training loops -----------------------------------------------------------------

class StepClock:
    """Wall-clock marks at the end of step ``warmup`` and step ``steps`` (device synchronised there only)."""

    def __init__(self, device, warmup, steps):
        self.device, self.warmup, self.steps, self.marks, self.cpu_marks = device, warmup, steps, {}, {}
        self.t_begin = time.perf_counter()

    def step_end(self, step: int) -> None:
        if step in (self.warmup, self.steps):
            sync(self.device)
            self.marks[step] = time.perf_counter()
            self.cpu_marks[step] = time.process_time()

    def timed_seconds(self) -> float:
        return self.marks[self.steps] - self.marks[self.warmup]

    def timed_cpu_seconds(self) -> float:
        """Process CPU time over the timed steps: steadier than wall time on a shared CPU."""
        return self.cpu_marks[self.steps] - self.cpu_marks[self.warmup]

    def warmup_seconds(self) -> float:
        return self.marks[self.warmup] - self.t_begin


def trainer_train(model, windows, args, device, bf16):
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator
    from transformers.trainer_callback import PrinterCallback

    dataset = padded_features(windows, labels=True)
    clock_box = {}
    record = {"loss": [], "windows": [], "padded": [], "real": []}

    class RecordingTrainer(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            record["loss"].append(loss.detach())
            record["windows"].append(int(inputs["input_ids"].shape[0]))
            record["padded"].append(int(inputs["input_ids"].numel()))
            record["real"].append(inputs["attention_mask"].sum())  # tensor: read after the clock stops
            return loss

    class Clock(TrainerCallback):
        def on_train_begin(self, a, state, control, **kw):
            clock_box["clock"] = StepClock(device, args.warmup_steps, args.steps)

        def on_step_end(self, a, state, control, **kw):
            clock_box["clock"].step_end(state.global_step)

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, bf16=bf16, use_cpu=device == "cpu",
            learning_rate=args.lr, weight_decay=args.weight_decay, max_steps=args.steps, seed=args.seed,
            report_to=[], save_strategy="no", disable_tqdm=True, logging_steps=10**9,
        )
        trainer = RecordingTrainer(model=model, args=targs, train_dataset=dataset, data_collator=default_data_collator,
                                   callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # the end-of-training summary dict
        t0 = time.perf_counter()
        trainer.train()
        sync(device)
        total = time.perf_counter() - t0
        optim_name = str(targs.optim.value if hasattr(targs.optim, "value") else targs.optim)
    clock = clock_box["clock"]
    w = args.warmup_steps
    res = {
        "win_s": sum(record["windows"][w:]) / clock.timed_seconds(),
        "win_per_cpu_s": sum(record["windows"][w:]) / clock.timed_cpu_seconds(),
        "padded_tok_s": sum(record["padded"][w:]) / clock.timed_seconds(),
        "real_tok_s": float(torch.stack(record["real"][w:]).sum()) / clock.timed_seconds(),
        "warmup_s": clock.warmup_seconds(), "total_s": total,
        "loss": [float(x) for x in torch.stack(record["loss"]).float().cpu()],
        "optimizer": optim_name,
        "fixed_loss": fixed_loss(trainer.model, windows, device, bf16),
    }
    del trainer
    return res


def harness_train(model, windows, args, device, use_compile):
    """The shipped loop: ``harness.train.loop.make_optimizer`` + ``train_epoch`` (the step every run,
    trial and refit takes), over length-bucketed batches; clocked around the calls, never inside."""
    import numpy as np

    from harness.config import TrainingArgs
    from harness.train.batching import input_names, length_batches
    from harness.train.loop import make_accelerator, make_optimizer, set_seed, train_epoch

    set_seed(args.seed)
    t = TrainingArgs(lr=args.lr, weight_decay=args.weight_decay, warmup_ratio=0.0, batch_size=args.batch_size,
                     max_grad_norm=1.0, seed=args.seed, compile=use_compile)
    accelerator = make_accelerator(t)
    optimizer, scheduler = make_optimizer(model, t, args.steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    inner = model
    names = input_names(accelerator.unwrap_model(model)) | set(windows.label_arrays())
    if use_compile:
        import torch

        model = torch.compile(model, dynamic=True)
    rng = np.random.default_rng(args.seed)
    batches = []
    while len(batches) < args.steps:  # epochs of length-bucketed batches, as the loop draws them
        batches += length_batches(windows.lengths, args.batch_size, True, rng)
    batches = batches[:args.steps]
    w = args.warmup_steps
    t0 = time.perf_counter()
    warm_losses, _, step = train_epoch(model, windows, batches[:w], optimizer, scheduler, accelerator, names, t)
    sync(device)
    t1, c1 = time.perf_counter(), time.process_time()
    losses, seen, step = train_epoch(model, windows, batches[w:], optimizer, scheduler, accelerator, names, t, step)
    sync(device)
    t2, c2 = time.perf_counter(), time.process_time()
    timed = batches[w:]
    res = {
        "win_s": seen / (t2 - t1),
        "win_per_cpu_s": seen / max(c2 - c1, 1e-9),
        "real_tok_s": sum(int(windows.lengths[b].sum()) for b in timed) / (t2 - t1),
        "warmup_s": t1 - t0, "total_s": t2 - t0,
        "loss": [float(x) for x in np.concatenate([warm_losses, losses])],
        "optimizer": "torch AdamW (fused)",
        "precision": accelerator.mixed_precision,
        "fixed_loss": fixed_loss(accelerator.unwrap_model(inner), windows, device,
                                 accelerator.mixed_precision == "bf16"),
    }
    del model, inner, optimizer
    accelerator.free_memory()
    return res


# ---- prediction -----------------------------------------------------------------------------

def trainer_predict(model, windows, args, device, bf16):
    from transformers import Trainer, TrainingArguments, default_data_collator

    dataset = padded_features(windows, labels=False)
    warm = dataset.select(range(min(len(windows), args.eval_batch_size))) if hasattr(dataset, "select") else None
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, per_device_eval_batch_size=args.eval_batch_size, bf16=bf16,
                                  use_cpu=device == "cpu", report_to=[], disable_tqdm=True, seed=args.seed)
        trainer = Trainer(model=model, args=targs, data_collator=default_data_collator)
        if warm is not None:
            trainer.predict(warm)
        sync(device)
        t0 = time.perf_counter()
        out_pred = trainer.predict(dataset)
        seconds = time.perf_counter() - t0
    start, end = out_pred.predictions[:2]
    del trainer
    return {"win_s": len(windows) / seconds, "seconds": seconds}, start, end


def harness_predict(model, windows, args):
    import numpy as np

    from harness.config import TrainingArgs
    from harness.tasks.qa.task import predict_windows
    from harness.train.loop import make_accelerator

    accelerator = make_accelerator(TrainingArgs())
    model = accelerator.prepare(model)
    unwrapped = accelerator.unwrap_model(model)
    predict_windows(unwrapped, windows.subset(np.arange(min(len(windows), args.eval_batch_size))),
                    args.eval_batch_size, accelerator)
    device = accelerator.device.type
    sync(device)
    t0 = time.perf_counter()
    start, end = predict_windows(unwrapped, windows, args.eval_batch_size, accelerator)
    seconds = time.perf_counter() - t0
    del model, unwrapped
    accelerator.free_memory()
    return {"win_s": len(windows) / seconds, "seconds": seconds}, start, end


def h2d_check(batch_size: int, width: int) -> str:
    """Does ``.to(cuda, non_blocking=True)`` of a pageable batch (as collate makes) wait for queued GPU work?"""
    import torch

    x = torch.zeros(batch_size, width, dtype=torch.int64)
    sizes = f"{batch_size}x{width} int64 ({x.numel() * 8 // 1024} KiB)"
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    torch.cuda._sleep(100_000_000)
    torch.cuda.synchronize()
    queued = time.perf_counter() - t0
    took = {}
    for name, src in (("pageable", x), ("pinned", x.pin_memory())):
        for _ in range(2):  # the first call of each kind warms up
            torch.cuda.synchronize()
            torch.cuda._sleep(100_000_000)
            t0 = time.perf_counter()
            src.to("cuda", non_blocking=True)
            took[name] = time.perf_counter() - t0
        torch.cuda.synchronize()
    verdict = ("waits for the GPU: one host sync per tensor per batch" if took["pageable"] > 0.5 * queued
               else "does not wait for the GPU")
    return (f"h2d_check: non_blocking copy of a pageable {sizes} behind {queued * 1e3:.0f} ms of queued GPU work "
            f"returned after {took['pageable'] * 1e3:.1f} ms (pinned: {took['pinned'] * 1e3:.2f} ms): "
            f"pageable {verdict}")


# ---- host-side costs per batch ----------------------------------------------------------------

def host_costs(model, windows, args) -> dict:
    """Milliseconds per batch of the CPU work each loop does before the model runs."""
    import numpy as np
    import torch
    from transformers import default_data_collator

    from harness.train.batching import collate, input_names, length_batches, to_device

    rng = np.random.default_rng(args.seed)
    batches = length_batches(windows.lengths, args.batch_size, True, rng)[:20]
    t0 = time.perf_counter()
    made = [collate(windows, rows, True) for rows in batches]
    collate_ms = (time.perf_counter() - t0) / len(batches) * 1e3
    t0 = time.perf_counter()
    names = input_names(model)
    for b in made:
        to_device(b, names, torch.device("cpu"))
    inputs_ms = (time.perf_counter() - t0) / len(made) * 1e3
    t0 = time.perf_counter()
    rng2 = np.random.default_rng(args.seed)
    for _ in range(3):
        length_batches(windows.lengths, args.batch_size, True, rng2)
    batches_ms = (time.perf_counter() - t0) / 3 * 1e3

    dataset = padded_features(windows, labels=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                         collate_fn=default_data_collator,
                                         generator=torch.Generator().manual_seed(args.seed))
    it = iter(loader)
    n = min(20, len(loader))
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    trainer_ms = (time.perf_counter() - t0) / n * 1e3
    return {"harness_collate_ms": collate_ms, "harness_model_inputs_ms": inputs_ms,
            "harness_length_batches_epoch_ms": batches_ms, "trainer_fetch_collate_ms": trainer_ms}


# ---- one shape ------------------------------------------------------------------------------

def smooth(curve, k):
    import numpy as np

    c = np.asarray(curve, dtype=np.float64)
    if k <= 1 or len(c) < k:
        return c
    return np.convolve(c, np.ones(k) / k, mode="valid")


def run_shape(name, windows, args, device, peak) -> dict:
    import numpy as np
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    from harness.train.loop import set_seed

    config = BertConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=512, **SHAPES[name])
    set_seed(args.seed)
    master = BertForQuestionAnswering(config)  # random init; both sides start from these weights
    n_params = sum(p.numel() for p in master.parameters())
    n_body = sum(p.numel() for n, p in master.named_parameters() if ".embeddings." not in n)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    use_compile = {"on": True, "off": False, "auto": device == "cuda"}[args.compile]
    print(f"# {name}: {n_params / 1e6:.1f}M params ({n_body / 1e6:.1f}M non-embedding), "
          f"hidden {config.hidden_size}, {config.num_hidden_layers} layers; {args.steps} steps of "
          f"{args.batch_size}, clock after step {args.warmup_steps}; bf16 {bf16}, harness compile {use_compile}",
          flush=True)

    costs = host_costs(master, windows, args)
    if device == "cuda" and name == args.first_shape:
        print(h2d_check(args.batch_size, args.max_length), flush=True)

    start_model = copy.deepcopy(master).to(device)
    loss0 = fixed_loss(start_model, windows, device, bf16)
    del start_model
    release(device)
    tr_runs, ha_runs = [], []
    for _ in range(args.repeats):  # alternate the two sides; keep each side's fastest run
        reset_accelerate_state()
        set_seed(args.seed)
        tr = trainer_train(copy.deepcopy(master), windows, args, device, bf16)
        release(device)
        print(f"#   trainer train: {tr['win_s']:.1f} win/s, {tr['win_per_cpu_s']:.2f} win per CPU-second "
              f"({tr['warmup_s']:.1f} s to step {args.warmup_steps}, {tr['total_s']:.1f} s in all; {tr['optimizer']})",
              flush=True)
        reset_accelerate_state()
        ha = harness_train(copy.deepcopy(master), windows, args, device, use_compile)
        release(device)
        print(f"#   harness train: {ha['win_s']:.1f} win/s, {ha['win_per_cpu_s']:.2f} win per CPU-second "
              f"({ha['warmup_s']:.1f} s to step {args.warmup_steps}{' incl. compile' if use_compile else ''}, "
              f"{ha['total_s']:.1f} s in all; {ha['optimizer']}, {ha['precision']}"
              f"{', pinned batches' if device == 'cuda' else ''})", flush=True)
        tr_runs.append(tr)
        ha_runs.append(ha)
    tr = max(tr_runs, key=lambda r: r["win_s"])
    ha = max(ha_runs, key=lambda r: r["win_s"])

    reset_accelerate_state()
    tp, t_start, t_end = trainer_predict(copy.deepcopy(master), windows, args, device, bf16)
    release(device)
    reset_accelerate_state()
    hp, h_start, h_end = harness_predict(copy.deepcopy(master), windows, args)
    release(device)
    real = np.arange(windows.input_ids.shape[1])[None, :] < windows.lengths[:, None]
    logit_diff = float(max(np.abs(t_start - h_start)[real].max(), np.abs(t_end - h_end)[real].max()))

    # loss curves
    k = args.smooth or max(1, min(10, args.steps // 5))
    hs, ts = smooth(ha["loss"], k), smooth(tr["loss"], k)
    mad = float(np.mean(np.abs(hs - ts)))
    noise_h = float(np.std(np.asarray(ha["loss"][k - 1:]) - hs)) if k > 1 else None
    noise_t = float(np.std(np.asarray(tr["loss"][k - 1:]) - ts)) if k > 1 else None
    noise = (f"noise (std of raw around smoothed) harness {noise_h:.4f}, trainer {noise_t:.4f}" if k > 1
             else "noise n/a (too few steps to smooth)")

    flops_h = 6 * n_body * ha["real_tok_s"]
    flops_t = 6 * n_body * tr["padded_tok_s"]
    flops_t_real = 6 * n_body * tr["real_tok_s"]
    print(f"host_costs (ms/batch): harness collate {costs['harness_collate_ms']:.2f} + to_device "
          f"{costs['harness_model_inputs_ms']:.3f} (length_batches {costs['harness_length_batches_epoch_ms']:.1f} "
          f"per epoch); trainer dataset fetch + default_data_collator {costs['trainer_fetch_collate_ms']:.2f}")
    print(f"tokens: harness {ha['real_tok_s']:.0f} real tok/s; trainer {tr['padded_tok_s']:.0f} padded tok/s "
          f"({tr['real_tok_s']:.0f} real)")
    print(f"mfu: peak {flops(peak[0])} ({peak[1]}, measured); 6*N*tokens/s with N = {n_body / 1e6:.1f}M "
          f"non-embedding params: harness {flops(flops_h)} = {100 * flops_h / peak[0]:.1f}% (real tokens), "
          f"trainer {flops(flops_t)} = {100 * flops_t / peak[0]:.1f}% (padded tokens; "
          f"{100 * flops_t_real / peak[0]:.1f}% counting real tokens)")
    print(f"loss_curve: {args.steps} steps, moving average {k}: mean |harness - trainer| {mad:.4f}; "
          f"{noise}; "
          f"first->last smoothed harness {hs[0]:.3f}->{hs[-1]:.3f}, trainer {ts[0]:.3f}->{ts[-1]:.3f} "
          f"(a step's loss depends on its padded width: about ln(width) at random init, and the trainer's "
          f"width is always {args.max_length}; see loss_fixed)")
    print(f"loss_fixed: loss on the first {min(FIXED_LOSS_WINDOWS[device], len(windows))} windows, same batching "
          f"for both models: initial {loss0:.4f}, after {args.steps} steps harness {ha['fixed_loss']:.4f}, "
          f"trainer {tr['fixed_loss']:.4f}")
    print(f"predict_check: max |logit difference| on real tokens {logit_diff:.4g} "
          f"(same weights; {'bf16 noise expected' if bf16 else 'fp32'})")
    print(f"train_speed: harness {ha['win_s']:.1f} win/s, trainer {tr['win_s']:.1f} win/s, "
          f"ratio {ha['win_s'] / tr['win_s']:.2f}x ({name}, {device})")
    print(f"predict_speed: harness {hp['win_s']:.1f} win/s, trainer {tp['win_s']:.1f} win/s, "
          f"ratio {hp['win_s'] / tp['win_s']:.2f}x ({name}, {device})", flush=True)
    return {"shape": name, "device": device, "n_params": n_params, "n_non_embedding": n_body, "bf16": bf16,
            "compile": use_compile, "host_costs": costs, "trainer_train": tr, "harness_train": ha,
            "trainer_predict": tp, "harness_predict": hp, "predict_max_logit_diff": logit_diff,
            "loss_smoothing": k, "loss_mad": mad, "fixed_loss_initial": loss0,
            "peak_flops": peak[0], "peak_kind": peak[1],
            "mfu_harness_real": flops_h / peak[0], "mfu_trainer_padded": flops_t / peak[0],
            "mfu_trainer_real": flops_t_real / peak[0]}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch sees the GPU: Trainer and accelerate stay on cpu
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from harness.train.models import quiet_transformers

    quiet_transformers()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("train_speed: --device cuda but no CUDA device is visible")
    gpu = device == "cuda"
    args.shape = args.shape or ("both" if gpu else "base")
    args.steps = args.steps or (100 if gpu else 4)
    args.warmup_steps = (10 if gpu else 1) if args.warmup_steps is None else args.warmup_steps
    if args.windows is None and not gpu:
        args.windows = 256
    if not 0 < args.warmup_steps < args.steps:
        sys.exit("train_speed: need 0 < --warmup-steps < --steps")
    shapes = ["base", "large"] if args.shape == "both" else [args.shape]
    args.first_shape = shapes[0]

    t0 = time.perf_counter()
    windows, source = load_windows(args)
    lengths = windows.lengths
    print(f"# {source}: {len(windows)} windows, max_length {args.max_length}, stride {args.stride}; mean length "
          f"{lengths.mean():.1f} ({100 * lengths.mean() / args.max_length:.0f}% of the padded width), "
          f"{(lengths == args.max_length).mean():.0%} full; built in {time.perf_counter() - t0:.1f} s", flush=True)
    where = torch.cuda.get_device_name() if gpu else f"cpu, {torch.get_num_threads()} threads"
    print(f"# device {where}; torch {torch.__version__}", flush=True)
    peak = matmul_peak(device, args.quick)
    print(f"# peak: {flops(peak[0])} ({peak[1]})", flush=True)
    results = [run_shape(name, windows, args, device, peak) for name in shapes]
    if args.json:
        args.json.write_text(json.dumps({"source": source, "windows": len(windows), "args": vars(args) | {
            "json": str(args.json)}, "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
