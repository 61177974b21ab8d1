"""Benchmark: how much of a search trial's wall time goes to preparing data (tokenizer + windows).

    python bench/search_prep.py                      # minilm, 300 SQuAD training questions, 3 trials
    python bench/search_prep.py --questions 600 --trials 4
    python bench/search_prep.py --recipe tiny --quick  # the suite's size (scratch model, seconds)

Runs the shipped ``harness init`` + ``harness search`` (dev-scored, one epoch per trial, 192/64
windows) in a scratch workspace on SQuAD articles from ../shared/data (train and dev from
different articles), then reads every trial's record: ``prepare_s`` (what
:func:`harness.train.loop.fit` spent loading the tokenizer and encoding train and dev: cache
misses in the first trial, workspace-cache hits afterwards) against the trial's wall time.
The target (issue 13): trials after the first spend under 2% of their wall time preparing data.
Prints one line per trial and the summary line::

    search_prep: trial 0 prepares 12.3% of 40.1 s, later trials 0.4% (max 0.5%) (minilm, 3 trials)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
SQUAD = SHARED / "squad" / "squad_v1.1_dev_even_articles.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="minilm")
    p.add_argument("--questions", type=int, default=300, help="training questions (whole articles, capped)")
    p.add_argument("--dev-questions", type=int, default=100)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="suite size: 60 questions, 2 trials")
    p.add_argument("--json", type=Path, default=None, help="also save the figures here")
    return p.parse_args(argv)


def squad_subsets(n_train: int, n_dev: int, folder: Path) -> tuple[Path, Path]:
    """Train from the first articles, dev from the last one (no article in both)."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]

    def take(articles, cap):
        out, n = [], 0
        for art in articles:
            paras = []
            for para in art["paragraphs"]:
                qas = para["qas"][:max(cap - n, 0)]
                n += len(qas)
                if qas:
                    paras.append({"context": para["context"], "qas": qas})
            if paras:
                out.append({"title": art["title"], "paragraphs": paras})
            if n >= cap:
                break
        return {"version": "1.1", "data": out}

    train, dev = folder / "train.json", folder / "dev.json"
    train.write_text(json.dumps(take(data[:-1], n_train)), encoding="utf-8")
    dev.write_text(json.dumps(take(data[-1:], n_dev)), encoding="utf-8")
    return train, dev


def harness(ws: Path, *args) -> str:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "harness", "-w", str(ws), *map(str, args)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"harness {' '.join(map(str, args))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def main(argv=None) -> int:
    args = parse_args(argv)
    if not SQUAD.is_file():
        print(f"search_prep: skipped ({SQUAD} not found; set HARNESS_SHARED_DATA)")
        return 0
    if args.quick:
        args.questions, args.dev_questions, args.trials = 60, 30, 2
    with tempfile.TemporaryDirectory(prefix="harness-search-prep-") as tmp:
        tmp = Path(tmp)
        train, dev = squad_subsets(args.questions, args.dev_questions, tmp)
        ws = tmp / "ws"
        harness(ws, "init", "prep", "--train", train, "--dev", dev, "--lang", "en")
        harness(ws, "search", "--recipe", args.recipe, "--study", "prep", "--dev", "--trials", args.trials, "--quiet",
                "--set", "epochs=1", "--set", "max_length=192", "--set", "doc_stride=64",
                "--space", 'lr=["log",1e-4,3e-4]', "--pruner", "none")
        trials = []
        for record in sorted((ws / "studies" / "prep" / "trials").glob("*/trial.json"),
                             key=lambda p: int(p.parent.name)):
            rec = json.loads(record.read_text(encoding="utf-8"))
            attrs = rec["user_attrs"]
            trials.append({"trial": rec["number"], "prepare_s": attrs["prepare_s"], "seconds": attrs["seconds"],
                           "share": attrs["prepare_s"] / max(attrs["seconds"], 1e-9)})
    if len(trials) < 2:
        raise SystemExit(f"search_prep: expected {args.trials} finished trials, found {len(trials)}")
    for t in trials:
        print(f"  trial {t['trial']}: prepare {t['prepare_s']:.3f} s of {t['seconds']:.1f} s ({100 * t['share']:.2f}%)")
    later = [t["share"] for t in trials[1:]]
    first = trials[0]
    print(f"search_prep: trial 0 prepares {100 * first['share']:.1f}% of {first['seconds']:.1f} s, later trials "
          f"{100 * sum(later) / len(later):.2f}% (max {100 * max(later):.2f}%) ({args.recipe}, {len(trials)} trials)")
    if args.json:
        args.json.write_text(json.dumps({"trials": trials, "recipe": args.recipe}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
