"""Benchmark: a 5-member character-level ensemble vs one model's decode_windows, and fitting its
weights, same process.

    python bench/ensemble.py            # all 3,524 DRCD dev questions, windows 384/128
    python bench/ensemble.py --quick    # 200 questions (CI-sized)

Two tokenisations of DRCD dev with the shared bert-base-chinese vocab: ``split_chars=True`` (one
token per character) for members 1-3 and plain WordPiece for members 4-5, so the ensemble takes
the character path. Window building is not timed. Without ../shared/data, synthetic contexts
(with a random answer each) are cut into 1-character and 1-3-character tokens instead.

Two kinds of member logits (fixed seeds):

* ``random``: N(0, 1) everywhere (the decode timing line);
* ``peaky`` (the fit_weights line): N(0, 1), -8 outside the context, and three peaks per window
  (8, 6 and 5, + N(0, 0.5), on start and end logits); member ``m`` puts its 8-peak on the gold
  answer's tokens (the tokens holding its first and last character) with probability
  0.8 - 0.05 m where the window holds the answer, elsewhere on a random span, so members differ
  in quality and greedy selection does a few rounds.

Prints, e.g.
``ensemble: 5 members 2.1 s (projection 0.9 s, combine + decode 1.2 s), single decode_windows 0.4 s, ratio 5.3x``
``fit_weights: 5 members, greedy, em: 1.4 s (cpu 1.3 s; projection included), 21 evaluations, weights [...], best single 61.2, ensemble 66.0``
(wall-clock time, best of two fits; ``cpu``: this process's CPU time, less sensitive to other
processes on a shared machine)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from harness.tasks.qa.decode import decode_windows
from harness.tasks.qa.ensemble import Ensemble, fit_weights
from harness.tasks.qa.example import Example
from harness.tasks.qa.logits import LogitSet
from harness.tasks.qa.windows import Windows, make_windows

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
MAX_LENGTH, DOC_STRIDE = 384, 128
MEMBERS = (True, True, True, False, False)  # split_chars of each member's windows


def drcd(limit: int | None):
    from transformers import BertTokenizerFast

    from harness.tasks.qa.readers import read_squad

    examples = read_squad(SHARED / "drcd" / "DRCD_dev.json")[:limit]
    tokenizer = BertTokenizerFast(str(SHARED / "vocab" / "bert-base-chinese-vocab.txt"))
    windows = {split: make_windows(tokenizer, examples, max_length=MAX_LENGTH, doc_stride=DOC_STRIDE, split_chars=split)
               for split in (True, False)}
    return examples, windows, "DRCD dev"


def synthetic_windows(examples, max_token_chars: int, seed: int, question: int = 20) -> Windows:
    """Contexts cut into tokens of 1..max_token_chars characters, sliding windows like make_windows."""
    rng = np.random.default_rng(seed)
    part = MAX_LENGTH - question - 3
    rows = []
    for i, ex in enumerate(examples):
        cuts = np.cumsum(rng.integers(1, max_token_chars + 1, len(ex.context)))
        cuts = np.concatenate([[0], cuts[cuts < len(ex.context)], [len(ex.context)]])
        tokens = np.stack([cuts[:-1], cuts[1:]], axis=1)
        lo = 0
        while True:
            chunk = tokens[lo: lo + part]
            offs = np.full((MAX_LENGTH, 2), -1, np.int32)
            offs[question + 2: question + 2 + len(chunk)] = chunk
            rows.append((i, offs))
            if lo + part >= len(tokens):
                break
            lo += part - DOC_STRIDE
    n = len(rows)
    return Windows(
        input_ids=np.zeros((n, MAX_LENGTH), np.int32), token_type_ids=None, lengths=np.full(n, MAX_LENGTH, np.int32),
        offsets=np.stack([r[1] for r in rows]), example_index=np.array([r[0] for r in rows], np.int32),
        cls_index=np.zeros(n, np.int32), example_ids=[ex.id for ex in examples],
    )


def synthetic(n_examples: int, seed: int):
    rng = np.random.default_rng(seed)
    examples = []
    for i, n in enumerate(rng.integers(150, 1040, n_examples)):
        context = "".join(map(chr, rng.integers(0x4E00, 0x9FA5, int(n))))
        a = int(rng.integers(0, n - 10))
        answer = context[a: a + int(rng.integers(1, 10))]
        examples.append(Example(id=str(i), question="?", context=context, answers=(answer,), answer_starts=(a,)))
    return examples, {True: synthetic_windows(examples, 1, seed), False: synthetic_windows(examples, 3, seed)}, "synthetic"


def gold_tokens(windows: Windows, examples) -> tuple[np.ndarray, np.ndarray]:
    """Per window: the tokens holding the first and the last character of its example's first
    answer (-1 where the window does not hold both)."""
    n = len(windows)
    starts, ends = np.full(n, -1), np.full(n, -1)
    c0, c1 = windows.offsets[..., 0], windows.offsets[..., 1]
    for w in range(n):
        ex = examples[windows.example_index[w]]
        if not ex.answers:
            continue
        a0, a1 = ex.answer_span(0)
        s = np.flatnonzero((c0[w] <= a0) & (a0 < c1[w]))
        e = np.flatnonzero((c0[w] < a1) & (a1 <= c1[w]))
        if len(s) and len(e):
            starts[w], ends[w] = s[0], e[0]
    return starts, ends


def peaky_member(windows: Windows, examples, hit: float, seed: int) -> LogitSet:
    rng = np.random.default_rng(seed)
    n, length = windows.offsets.shape[:2]
    ok = windows.context_mask
    gs, ge = gold_tokens(windows, examples)
    first, count = ok.argmax(axis=1), ok.sum(axis=1)
    rows = np.flatnonzero(count > 0)
    out = []
    for _ in range(2):
        x = rng.standard_normal((n, length)).astype(np.float32)
        x[~ok] -= 8
        out.append(x)
    s, e = out
    for height in (8.0, 6.0, 5.0):
        a = first[rows] + (rng.random(len(rows)) * count[rows]).astype(np.int64)
        b = np.minimum(a + rng.geometric(0.3, len(rows)) - 1, first[rows] + count[rows] - 1)
        if height == 8.0:
            gold = (gs[rows] >= 0) & (rng.random(len(rows)) < hit)
            a, b = np.where(gold, gs[rows], a), np.where(gold, ge[rows], b)
        s[rows, a] += np.float32(height) + rng.normal(0, 0.5, len(rows)).astype(np.float32)
        e[rows, b] += np.float32(height) + rng.normal(0, 0.5, len(rows)).astype(np.float32)
    return LogitSet(windows, s, e, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 questions instead of all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--space", default="logprob", choices=["logprob", "prob"])
    parser.add_argument("--agg", default="max", choices=["max", "mean"])
    args = parser.parse_args()
    limit = 200 if args.quick else None
    if (SHARED / "drcd" / "DRCD_dev.json").exists() and (SHARED / "vocab" / "bert-base-chinese-vocab.txt").exists():
        examples, windows, source = drcd(limit)
    else:
        examples, windows, source = synthetic(limit or 3524, args.seed)
    rng = np.random.default_rng(args.seed)
    members = []
    for split in MEMBERS:
        w = windows[split]
        members.append(LogitSet(w, *rng.standard_normal((2, *w.offsets.shape[:2])).astype(np.float32), {}))
    print(f"# {source}: {len(examples)} questions, windows of {MAX_LENGTH} tokens: "
          f"{len(windows[True])} split by character, {len(windows[False])} WordPiece", file=sys.stderr, flush=True)

    single = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        decode_windows(members[0].start_logits, members[0].end_logits, members[0].windows, examples)
        single = min(single, time.perf_counter() - t0)
    best = (float("inf"), 0.0, 0.0)
    for _ in range(2):
        t0 = time.perf_counter()
        ens = Ensemble(members, examples, agg=args.agg, space=args.space).prepare()
        t1 = time.perf_counter()
        pred = ens.decode()
        t2 = time.perf_counter()
        best = min(best, (t2 - t0, t1 - t0, t2 - t1))
    assert not ens.shared_windows and len(pred) == len(examples)
    total, projection, decode = best
    print(f"ensemble: {len(members)} members {total:.2f} s (projection {projection:.2f} s, combine + decode "
          f"{decode:.2f} s), single decode_windows {single:.2f} s, ratio {total / single:.1f}x", flush=True)

    peaky = [peaky_member(windows[split], examples, 0.8 - 0.05 * i, args.seed + 10 + i) for i, split in enumerate(MEMBERS)]
    best, cpu = float("inf"), float("inf")
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        weights, report = fit_weights(peaky, examples, metric="em", method="greedy", agg=args.agg, space=args.space)
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    print(f"fit_weights: {len(peaky)} members, greedy, em: {best:.2f} s (cpu {cpu:.2f} s; projection included), "
          f"{report['evaluations']} evaluations, weights {np.round(weights, 3).tolist()}, "
          f"best single {report['best_single']:.1f}, ensemble {report['ensemble']:.1f}")


if __name__ == "__main__":
    main()
