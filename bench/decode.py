"""Benchmark: vectorised span decoder vs the nested-loop reference (tests/reference_decode.py).

    python bench/decode.py            # all 3,524 DRCD dev questions, windows 384/128, split_chars
    python bench/decode.py --quick    # 200 questions (CI-sized)

Uses ../shared/data when present, synthetic one-character-per-token windows otherwise. Logits are
random (fixed seed); window building is not timed. Prints one line, e.g.
``decode: vectorised 0.41 s, reference 19.8 s, speed-up 48.3x, answers identical: 3524/3524``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reference_decode import reference_decode  # noqa: E402

from harness.tasks.qa.example import Example  # noqa: E402
from harness.tasks.qa.decode import decode_windows  # noqa: E402
from harness.tasks.qa.windows import Windows, make_windows  # noqa: E402

SHARED = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
MAX_LENGTH, DOC_STRIDE = 384, 128


def drcd_windows(limit: int | None):
    from transformers import BertTokenizerFast

    from harness.tasks.qa.readers import read_squad

    examples = read_squad(SHARED / "drcd" / "DRCD_dev.json")[:limit]
    tokenizer = BertTokenizerFast(str(SHARED / "vocab" / "bert-base-chinese-vocab.txt"))
    windows = make_windows(tokenizer, examples, max_length=MAX_LENGTH, doc_stride=DOC_STRIDE, split_chars=True)
    return windows, examples, "DRCD dev"


def synthetic_windows(n_examples: int, seed: int, question: int = 20):
    """One token per character, sliding windows like make_windows (context lengths as DRCD)."""
    rng = np.random.default_rng(seed)
    examples = [
        Example(id=str(i), question="?", context="".join(map(chr, rng.integers(0x4E00, 0x9FA5, int(n)))))
        for i, n in enumerate(rng.integers(150, 1000, n_examples))
    ]
    part = MAX_LENGTH - question - 3
    rows = []
    for i, ex in enumerate(examples):
        for lo in range(0, max(1, len(ex.context) - DOC_STRIDE), part - DOC_STRIDE):
            chars = np.arange(lo, min(lo + part, len(ex.context)))
            offs = np.full((MAX_LENGTH, 2), -1, np.int32)
            offs[question + 2: question + 2 + len(chars)] = np.stack([chars, chars + 1], axis=1)
            rows.append((i, offs))
            if lo + part >= len(ex.context):
                break
    n = len(rows)
    windows = Windows(
        input_ids=np.zeros((n, MAX_LENGTH), np.int32), token_type_ids=None,
        lengths=np.full(n, MAX_LENGTH, np.int32), offsets=np.stack([r[1] for r in rows]),
        example_index=np.array([r[0] for r in rows], np.int32), cls_index=np.zeros(n, np.int32),
        example_ids=[ex.id for ex in examples],
    )
    return windows, examples, "synthetic"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 questions instead of all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    limit = 200 if args.quick else None
    if (SHARED / "drcd" / "DRCD_dev.json").exists() and (SHARED / "vocab" / "bert-base-chinese-vocab.txt").exists():
        windows, examples, source = drcd_windows(limit)
    else:
        windows, examples, source = synthetic_windows(limit or 3524, args.seed)
    print(f"# {source}: {len(examples)} questions, {len(windows)} windows of {MAX_LENGTH} tokens", file=sys.stderr, flush=True)
    rng = np.random.default_rng(args.seed)
    start = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)
    end = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)

    fast = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        pred = decode_windows(start, end, windows, examples)
        fast = min(fast, time.perf_counter() - t0)
    t0 = time.perf_counter()
    ref = reference_decode(start, end, windows, examples)
    slow = time.perf_counter() - t0

    same = sum(pred.texts[i] == r["text"] and pred.nbest(i) == [tuple(c) for c in r["nbest"]]
               for i, r in enumerate(ref.values()))
    print(f"decode: vectorised {fast:.2f} s, reference {slow:.1f} s, speed-up {slow / fast:.1f}x, "
          f"answers identical: {same}/{len(examples)}")
    if same != len(examples):
        sys.exit(1)


if __name__ == "__main__":
    main()
