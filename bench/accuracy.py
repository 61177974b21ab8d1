"""Accuracy benchmark on a real pretrained model: do the harness's search and ensembles raise the
held-out score over Hugging Face ``Trainer`` with the example scripts' settings?

    python bench/accuracy.py                          # both tracks at CPU scale (SST-2 ~50 min, QA ~70 min)
    python bench/accuracy.py --track clf --scale cpu  # one track; rerun the same command to resume
    python bench/accuracy.py --track all --scale smoke --out /tmp/acc   # the test's size (~1 min a track)
    nohup python bench/accuracy.py --track qa > work/accuracy-qa.log 2>&1 &
    touch work/accuracy/PAUSE                         # hold the bench after the current row; rm to go on
    python bench/accuracy.py --track qa --report      # rewrite the table from the finished rows only
    python bench/accuracy.py --track qa --redo-search # after a change of the recipe: search and every row
                                                      # after it again (the Trainer rows are kept)

Every row uses the same model (the ``minilm`` recipe: pretrained all-MiniLM-L6-v2, 22M
parameters), the same data split, windows (QA) / max_length (classification) and seed 42:

====================  =================================================================================
trainer-default       HF ``Trainer`` as run_qa.py / run_glue.py configure it (``bench/peers.py``) at the
                      README commands' settings: QA lr 3e-5, 2 epochs, batch 12; SST-2 lr 2e-5, 3 epochs,
                      batch 32; last epoch's model
trainer-grid          the same Trainer over a small hand-made grid (learning rate x epochs, the default
                      cell included); the row shown is the cell best on dev, every cell is in the JSON
harness-default       ``harness train --no-dev`` at Trainer's hyperparameters (warm-up 0, weight decay 0:
                      the parity of the training loop and the decoder; last epoch, like Trainer)
search-best           ``harness search`` (dev-scored, the default median pruner, the recipe's own search
                      space; only the windows are fixed with ``--set``): its best trial by dev
refit                 ``harness refit --trial best --seeds 1`` (``1,2`` at GPU scale): the mean single model
                      over the best configuration's seeds (the trial's own seed 42 and the refit seeds)
ensemble-search       ``harness submit --fit-weights`` over the search's kept top trials (weights fitted
                      on dev)
ensemble-refit        the same over the best configuration's seeds (trial + refits)
ensemble-all          the same over both member sets
====================  =================================================================================

Methodology. The data is split three ways: **train**; **dev**, used for every choice (the grid's best
cell, the search's trials and epochs, the decoding the search tunes, the ensemble weights, the best
member an ensemble is compared with); and a held-out **test** split that nothing is chosen on.
Headline figures are on test. QA (SQuAD v1.1, ``../shared/data/squad``) is split by article, no
article in two splits: articles ordered by a seeded hash of their title, the first ``test_articles``
are test, the next ``dev_articles`` dev, the rest train; each split is then capped to its size by
a seeded hash of the question id. SST-2: ``dev.tsv`` (872 sentences) is the held-out test; dev is
drawn from ``train.tsv`` rows of at least 8 words (closest to dev.tsv's full sentences) and train
from the remaining rows, dropping every train phrase that is a word span of a dev sentence (SST-2's
train.tsv holds the sub-phrases of its sentences) and exact duplicates. The same rules run on any
SQuAD-layout file or SST-2 copy (``HARNESS_SHARED_DATA``), so nothing is tuned to our split.

The QA test split is declared to the competition as ``--test`` (no answers) plus ``--test-gold``,
so ``harness submit`` scores it; the Trainer rows are post-processed with ``tests/hf_postprocess.py``
(HF's ``postprocess_qa_predictions`` restated on harness windows). Every row, Trainer or harness,
is scored here with the same scorer (``harness.tasks.qa.metrics.qa_scores``; for SST-2 the
confusion cell of each sentence) from its answers (harness rows: the submission CSV, checked against
the sidecar's test scores), and all intervals come from the leaderboard's paired bootstrap
(:func:`board_statistics`: ``harness.board.stats.Bootstrap``, its fixed seed and 1000 resamples,
examples resampled, differences paired on the same resampled examples).

Search budget (``--budget grid-time``, the default): ``harness search --timeout`` = the grid's
measured wall time (training and prediction of all its cells), with the scale's trial count as a
cap; the timeout stops new trials, the running one finishes, so the search may overrun by part of
a trial (the JSON gives both times). ``--budget trials`` runs the scale's trial count instead.
A resumed search gets the budget left after the durations of its finished trials.

Targets (each pass/fail on the point difference, with its paired 95% interval): harness at
Trainer's hyperparameters within 2 EM (QA) / 1 accuracy point (SST-2) of Trainer; search best >=
the best grid cell; each fitted ensemble >= its best member (by dev) + 1 EM / + 0.5 accuracy.

Outputs under ``--out`` (default ``work/accuracy``): ``SCALE/TRACK/`` holds the split files
(``data/``), the harness workspace (``ws/``), the logs of every harness command (``logs/``), the
resumable state (``state.json``: a rerun skips finished rows; a search resumes itself) and the
results (``results.json``, ``results.md``); ``SCALE/results.md`` gathers the tracks' tables.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

SHARED = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
SQUAD = SHARED / "squad" / "squad_v1.1_dev_even_articles.json"
SST2_TRAIN = SHARED / "glue" / "SST-2" / "train.tsv"
SST2_DEV = SHARED / "glue" / "SST-2" / "dev.tsv"
DEFAULT_OUT = ROOT / "work" / "accuracy"
SPLIT_SEED = 0
SEED = 42  # TrainingArguments' default seed, and the harness recipes'
RECIPE = "minilm"
STUDY = "minilm-dev"
SST2_DEV_MIN_WORDS = 8
TRACKS = ("clf", "qa")  # the order of --track all (the shorter first)

# Per track and scale. n_*: caps on the split sizes (None: all); grid: learning rates x epochs (the
# Trainer default cell is part of it); trials: the search's trial cap; refit_seeds: extra seeds of
# the best trial; members: search trials in the search ensemble; max_steps: optimiser steps per
# training (smoke only: the plumbing, not the figures); parity_seeds: extra seeds at which both Trainer
# and the harness train at Trainer's defaults, so the parity target compares means over seeds (at an
# under-trained default one seed's spread is larger than the target).
SCALES = {
    "qa": {
        "smoke": dict(test_articles=1, dev_articles=1, n_train=24, n_dev=8, n_test=16, max_length=128,
                      doc_stride=48, grid_lr=(3e-5, 1e-4), grid_epochs=(2,), trials=2, budget="trials",
                      refit_seeds=(1,), members=2, max_steps=1, ensemble_all=False),
        # 2 CPU cores train Trainer at about 3 windows/s at 192 tokens: 400 questions keep the track
        # near an hour; the grid leaves out lr 3e-5 x 3 epochs (the default's cell, 2 epochs, is in it)
        "cpu": dict(test_articles=5, dev_articles=2, n_train=400, n_dev=400, n_test=None, max_length=192,
                    doc_stride=64, grid_lr=(3e-5, 2e-4), grid_epochs=(2, 3), grid_cells=((2e-4, 2), (2e-4, 3)),
                    trials=20, budget="grid-time", refit_seeds=(1,), members=3, max_steps=0, ensemble_all=True),
        "gpu": dict(test_articles=4, dev_articles=3, n_train=None, n_dev=None, n_test=None, max_length=384,
                    doc_stride=128, grid_lr=(3e-5, 1e-4, 2e-4), grid_epochs=(2, 3, 4), trials=20,
                    budget="grid-time", refit_seeds=(1, 2), members=3, max_steps=0, ensemble_all=True),
    },
    "clf": {
        "smoke": dict(n_train=32, n_dev=16, n_test=32, max_length=32, grid_lr=(2e-5, 1e-4), grid_epochs=(3,),
                      trials=2, budget="trials", refit_seeds=(1,), members=2, max_steps=1, ensemble_all=False,
                      parity_seeds=(1,)),
        "cpu": dict(n_train=1000, n_dev=400, n_test=None, max_length=64, grid_lr=(2e-5, 1e-4), grid_epochs=(2, 3),
                    trials=20, budget="grid-time", refit_seeds=(1,), members=3, max_steps=0, ensemble_all=True,
                    parity_seeds=(1, 2)),
        "gpu": dict(n_train=20000, n_dev=1000, n_test=None, max_length=128, grid_lr=(2e-5, 5e-5, 1e-4),
                    grid_epochs=(2, 3, 4), trials=20, budget="grid-time", refit_seeds=(1, 2), members=3,
                    max_steps=0, ensemble_all=True),
    },
}
# The Trainer-default hyperparameters (the README commands of the two example scripts)
TRAINER_DEFAULTS = {"qa": {"lr": 3e-5, "epochs": 2, "batch_size": 12},  # run_qa.py README
                    "clf": {"lr": 2e-5, "epochs": 3, "batch_size": 32}}  # run_glue.py README
TARGETS = {"qa": {"parity": 2.0, "ensemble": 1.0}, "clf": {"parity": 1.0, "ensemble": 0.5}}
METRICS = {"qa": ("em", "f1"), "clf": ("accuracy", "mcc")}
LABEL = {"em": "EM", "f1": "F1", "accuracy": "Acc", "mcc": "MCC"}


class BenchError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


# ---- the leaderboard's bootstrap (the one import of harness.board) ----------------------------------

def board_statistics(task: str, entries: dict, pairs=(), labels=None) -> dict:
    """Point metrics, 95% intervals and paired differences, as ``harness leaderboard`` computes them.

    ``entries``: ``{name: {example id: statistics row}}`` (QA: (em, f1) in 0..1; classification:
    the one-hot confusion cell ``gold * C + pred``), all over the same ids. ``pairs``: (a, b) names
    whose paired difference a - b is wanted. The bootstrap is the board's: ``Bootstrap`` over the
    sorted ids (the board's example list) with its fixed seed and resample count. Returns
    ``{"metrics": {name: {m: value}}, "ci": {name: {m: [lo, hi]}}, "diff": {"a|b": {m: [d, lo, hi]}},
    "resamples": R, "seed": S}``. The only function here that imports ``harness.board``.
    """
    from harness.board.stats import RESAMPLES, Bootstrap, Stats
    from harness.board.stats import SEED as BOARD_SEED
    from harness.scores import scheme_from_dict

    scheme = scheme_from_dict({"task": "qa"} if task == "qa" else
                       {"task": "classification", "n_labels": len(labels), "labels": list(labels)})
    ids = sorted(next(iter(entries.values())))
    stats = {name: Stats(ids, [per_id[q] for q in ids]) for name, per_id in entries.items()}
    boot = Bootstrap(ids)
    reps = boot.metric_replicates(scheme, list(stats.values()))
    wanted = METRICS[task]
    out = {"metrics": {}, "ci": {}, "diff": {}, "resamples": RESAMPLES, "seed": BOARD_SEED, "n": len(ids)}
    for j, (name, s) in enumerate(stats.items()):
        point = s.metrics(scheme)
        out["metrics"][name] = {m: point[m] for m in wanted}
        out["ci"][name] = {m: [(iv := Bootstrap.interval(reps[m][:, [j]])[0]).lo, iv.hi] for m in wanted}
    for a, b in pairs:
        out["diff"][f"{a}|{b}"] = {}
        for m in wanted:
            d, iv = boot.difference(stats[a], stats[b], m, scheme)
            out["diff"][f"{a}|{b}"][m] = [d, iv.lo, iv.hi]
    return out


# ---- small helpers --------------------------------------------------------------------------

def _hash_key(*parts) -> str:
    return hashlib.sha256(":".join(str(p) for p in (SPLIT_SEED, *parts)).encode()).hexdigest()


def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def _write_json(path: Path, value) -> None:
    _write_if_changed(path, json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _fmt_lr(lr: float) -> str:
    return f"{lr:.0e}".replace("e-0", "e-")


# ---- data splits ----------------------------------------------------------------------------

def qa_splits(path: Path, p: dict) -> dict:
    """SQuAD-layout file -> {"train"/"dev"/"test": [(article, paragraph, qa)], "articles": {split: [titles]}}."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    articles = data["data"]
    order = sorted(range(len(articles)), key=lambda i: _hash_key("article", articles[i].get("title", i)))
    n_test, n_dev = p["test_articles"], p["dev_articles"]
    if n_test + n_dev >= len(articles):
        raise BenchError(f"{path}: {len(articles)} articles, need more than {n_test} test + {n_dev} dev")
    groups = {"test": order[:n_test], "dev": order[n_test:n_test + n_dev], "train": order[n_test + n_dev:]}
    out = {"articles": {}}
    for split, idx in groups.items():
        items = [(a, pi, q) for a in sorted(idx) for pi, para in enumerate(articles[a]["paragraphs"])
                 for q in para["qas"]]
        cap = p[f"n_{split}"]
        if cap is not None and len(items) > cap:
            keep = set(sorted(range(len(items)), key=lambda k: _hash_key("question", items[k][2]["id"]))[:cap])
            items = [it for k, it in enumerate(items) if k in keep]
        out[split] = items
        out["articles"][split] = [articles[a].get("title", str(a)) for a in sorted(idx)]
    out["source"] = articles
    return out


def squad_json(articles, items, with_answers: bool = True) -> str:
    """The chosen questions in SQuAD v1.1 layout (articles and paragraphs without questions left out)."""
    chosen: dict = {}
    for a, pi, q in items:
        chosen.setdefault(a, {}).setdefault(pi, []).append(q if with_answers else
                                                           {k: v for k, v in q.items() if k != "answers"})
    data = []
    for a in sorted(chosen):
        paras = [{"context": articles[a]["paragraphs"][pi]["context"], "qas": chosen[a][pi]}
                 for pi in sorted(chosen[a])]
        data.append({"title": articles[a].get("title", str(a)), "paragraphs": paras})
    return json.dumps({"version": "1.1", "data": data}, ensure_ascii=False, indent=1) + "\n"


def _read_tsv(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    head = [h.strip() for h in rows[0]]
    ti, li = head.index("sentence"), head.index("label")
    return [(r[ti], r[li].strip()) for r in rows[1:] if r]


def sst2_splits(train_tsv: Path, dev_tsv: Path, p: dict) -> dict:
    """SST-2 -> {"train"/"dev"/"test": [(id, sentence, label)]} (see the module docstring for the rules)."""
    test_rows = [(f"test-{i}", s, lab) for i, (s, lab) in enumerate(_read_tsv(dev_tsv))]
    if p["n_test"] is not None and len(test_rows) > p["n_test"]:
        keep = set(sorted(range(len(test_rows)), key=lambda k: _hash_key("test", test_rows[k][0]))[:p["n_test"]])
        test_rows = [r for k, r in enumerate(test_rows) if k in keep]
    test_texts = {s.strip() for _, s, _ in test_rows}
    seen, rows = set(), []
    for i, (s, lab) in enumerate(_read_tsv(train_tsv)):
        key = s.strip()
        if key and key not in seen and key not in test_texts:
            seen.add(key)
            rows.append((i, s, lab))
    order = sorted(range(len(rows)), key=lambda k: _hash_key("train", rows[k][0]))
    dev_k = [k for k in order if len(rows[k][1].split()) >= SST2_DEV_MIN_WORDS][:p["n_dev"]]
    spans = set()
    for k in dev_k:
        words = rows[k][1].split()
        spans.update(" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1))
    dev_set = set(dev_k)
    train_k = [k for k in order if k not in dev_set and " ".join(rows[k][1].split()) not in spans][:p["n_train"]]
    as_rows = lambda ks, prefix: [(f"{prefix}-{rows[k][0]}", rows[k][1], rows[k][2]) for k in sorted(ks)]  # noqa: E731
    return {"train": as_rows(train_k, "train"), "dev": as_rows(dev_k, "dev"), "test": test_rows}


def tsv_text(rows, with_label: bool = True) -> str:
    lines = ["id\tsentence\tlabel" if with_label else "id\tsentence"]
    for rid, s, lab in rows:
        if "\t" in s or "\n" in s:
            raise BenchError(f"sentence {rid} holds a tab or newline")
        lines.append(f"{rid}\t{s}\t{lab}" if with_label else f"{rid}\t{s}")
    return "\n".join(lines) + "\n"


# ---- one track ------------------------------------------------------------------------------

class Track:
    """One track (qa or clf) at one scale: data, rows, state, report."""

    def __init__(self, kind: str, scale: str, out: Path, budget: str | None = None, echo=print):
        self.kind, self.scale = kind, scale
        self.p = dict(SCALES[kind][scale])
        if budget:
            self.p["budget"] = budget
        self.dir = Path(out).resolve() / scale / kind
        self.data_dir, self.ws, self.logs = self.dir / "data", self.dir / "ws", self.dir / "logs"
        self.state_path = self.dir / "state.json"
        self.echo = echo
        self.t_start = time.time()
        self.state: dict = {}
        self._lock = threading.Lock()
        self._cache: dict = {}

    # -- bookkeeping --
    def log(self, msg: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.echo(f"[{stamp} +{_clock(time.time() - self.t_start)}] {self.kind}/{self.scale}: {msg}")
        sys.stdout.flush()

    def save(self) -> None:
        with self._lock:
            _write_json(self.state_path, self.state)

    def step(self, name: str, fn, what: str | None = None):
        """Run ``fn()`` once: its result is kept in the state and returned again on a rerun."""
        steps = self.state.setdefault("steps", {})
        if name in steps:
            return steps[name]
        self.hold()
        self.log(f"{what or name}: started")
        t0 = time.time()
        result = fn()
        result = {**result, "wall_s": round(result.get("wall_s", time.time() - t0), 1)}
        steps[name] = result
        self.save()
        self.log(f"{what or name}: finished in {_clock(time.time() - t0)}{self._brief(result)}")
        return result

    def hold(self) -> None:
        """Wait between rows while a file ``PAUSE`` exists in the output folder (so a shared machine
        can be used for something else without disturbing a row's timing); no row is timed meanwhile."""
        pause = self.dir.parents[1] / "PAUSE"
        if pause.exists():
            self.log(f"paused: {pause} exists (remove it to go on)")
            while pause.exists():
                time.sleep(5)
            self.log("resumed")

    def _brief(self, result: dict) -> str:
        parts = []
        for split in ("dev", "test"):
            scores = result.get(f"{split}_scores")
            if scores:
                parts.append(f"{split} " + " ".join(f"{LABEL.get(k, k)} {v:.2f}" for k, v in scores.items()
                                                     if k in METRICS[self.kind]))
        return f" ({'; '.join(parts)})" if parts else ""

    def redo_search(self) -> list[str]:
        """Forget the search and every row after it (search-best, refit, members, ensembles), so that the
        next run measures them again, e.g. after a change of the recipe's defaults or space; the Trainer
        rows and the harness-default rows are kept. What those rows left in the workspace (the study,
        the refit runs, their submissions, board entries and logs) moves to ``redone/<time>/``, so that
        the new search starts a fresh study with its whole budget. Returns the forgotten rows."""
        steps = self.state.get("steps", {})
        names = list(steps)
        if "search" not in steps:
            return []
        gone = names[names.index("search"):]
        subs = {"search-best"} | {n for n in gone if n.startswith("ensemble-")}
        subs |= {_member_name(n[len("member:"):]) for n in gone if n.startswith("member:")}
        runs = [Path(r).name for r in steps.get("refit", {}).get("runs", [])]
        aside = self.dir / "redone" / time.strftime("%Y%m%d-%H%M%S")
        moves = [self.ws / "studies" / STUDY] + [self.ws / "runs" / r for r in runs]
        moves += [self.ws / "submissions" / f"{n}.{ext}" for n in sorted(subs) for ext in ("csv", "json")]
        moves += [self.logs / f"{n}.log" for n in ("search", "trials", "refit", "leaderboard")]
        moves += [self.logs / f"submit-{n}.log" for n in sorted(subs)]
        for src in moves:
            if src.exists():
                dst = aside / src.relative_to(self.dir)
                dst.parent.mkdir(parents=True, exist_ok=True)
                src.rename(dst)
        board = self.ws / "leaderboard" / "board.sqlite"
        if board.exists():
            from harness.board.store import Leaderboard

            store = Leaderboard(board)
            for n in sorted(subs):
                store.remove(n)
        for n in gone:
            steps.pop(n)
        self.state.pop("board_test", None)
        self.save()
        return gone

    # -- data --
    def prepare(self) -> None:
        """Build the splits (deterministic), write them, check them against the state's fingerprint."""
        p = self.p
        if self.kind == "qa":
            if not SQUAD.exists():
                raise BenchError(f"QA track: SQuAD file not found at {SQUAD} (set HARNESS_SHARED_DATA to the "
                                 "folder holding squad/squad_v1.1_dev_even_articles.json)")
            sp = qa_splits(SQUAD, p)
            files = {"train": squad_json(sp["source"], sp["train"]), "dev": squad_json(sp["source"], sp["dev"]),
                     "test": squad_json(sp["source"], sp["test"], with_answers=False),
                     "test_gold": squad_json(sp["source"], sp["test"])}
            ext = "json"
            from peers import QAItem

            def items(split):
                return [QAItem(q["id"], q["question"], sp["source"][a]["paragraphs"][pi]["context"],
                               [x["text"] for x in q["answers"]], [int(x["answer_start"]) for x in q["answers"]])
                        for a, pi, q in sp[split]]

            self.examples = {s: items(s) for s in ("train", "dev", "test")}
            summary = {s: {"questions": len(sp[s]), "articles": sp["articles"][s],
                           "paragraphs": len({(a, pi) for a, pi, _ in sp[s]})} for s in ("train", "dev", "test")}
        else:
            for f in (SST2_TRAIN, SST2_DEV):
                if not f.exists():
                    raise BenchError(f"classification track: SST-2 file not found at {f} (set HARNESS_SHARED_DATA "
                                     "to the folder holding glue/SST-2/train.tsv and dev.tsv)")
            sp = sst2_splits(SST2_TRAIN, SST2_DEV, p)
            files = {"train": tsv_text(sp["train"]), "dev": tsv_text(sp["dev"]),
                     "test": tsv_text(sp["test"], with_label=False), "test_gold": tsv_text(sp["test"])}
            ext = "tsv"
            self.examples = {s: sp[s] for s in ("train", "dev", "test")}
            summary = {s: {"sentences": len(sp[s]), "positive": sum(lab == "1" for _, _, lab in sp[s])}
                       for s in ("train", "dev", "test")}
            summary["rules"] = (f"test = SST-2 dev.tsv; dev = train.tsv rows of >= {SST2_DEV_MIN_WORDS} words; "
                                "train = other train.tsv rows that are no word span of a dev sentence; "
                                "exact duplicates and test sentences dropped from train.tsv first")
        self.files = {}
        for split, text in files.items():
            path = self.data_dir / f"{split}.{ext}"
            _write_if_changed(path, text)
            self.files[split] = path
        fingerprint = hashlib.sha256("".join(files[s] for s in sorted(files)).encode()).hexdigest()[:16]
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text(encoding="utf-8"))
            same = {k: v for k, v in _jsonable(p).items() if k != "budget"}
            saved = {k: v for k, v in (self.state.get("scale_params") or {}).items() if k != "budget"}
            # parity_seeds only adds rows: a state saved before it existed (or with other seeds) stays valid
            same.pop("parity_seeds", None)
            saved.pop("parity_seeds", None)
            if self.state.get("fingerprint") != fingerprint or saved != same:
                raise BenchError(f"{self.state_path}: made from other data or settings (fingerprint "
                                 f"{self.state.get('fingerprint')} vs {fingerprint})",
                                 hint=f"delete {self.dir} or pass another --out")
        else:
            self.state = {"track": self.kind, "scale": self.scale, "fingerprint": fingerprint,
                          "scale_params": _jsonable(p), "steps": {}}
        self.state["splits"] = summary
        self.save()
        self.gold = self._gold()
        n = {s: len(self.examples[s]) for s in ("train", "dev", "test")}
        self.log(f"data: train {n['train']}, dev {n['dev']}, test {n['test']} "
                 f"{'questions' if self.kind == 'qa' else 'sentences'} in {self.data_dir}")

    def _gold(self) -> dict:
        if self.kind == "qa":
            return {s: {ex.id: list(ex.answers) for ex in self.examples[s]} for s in ("dev", "test")}
        return {s: {rid: lab for rid, _, lab in self.examples[s]} for s in ("dev", "test")}

    @property
    def labels(self) -> list[str] | None:
        """Classification: the training labels sorted as run_glue.py and the harness sort them (numerically
        when all are integers, else as text); QA: None."""
        if self.kind == "qa":
            return None
        labs = {lab for _, _, lab in self.examples["train"]}
        return sorted(labs, key=int) if all(re.fullmatch(r"[+-]?\d+", x) for x in labs) else sorted(labs)

    # -- scoring: the same scorer for every row --
    def per_example(self, preds: dict, split: str = "test") -> dict:
        """{id: statistics row} of predictions ``{id: answer or label}`` against ``split``'s gold."""
        gold = self.gold[split]
        if self.kind == "qa":
            from harness.tasks.qa.metrics import qa_scores

            return {q: list(v) for q, v in qa_scores(preds, gold, lang="en")["per_id"].items()}
        labels = self.labels
        index = {x: i for i, x in enumerate(labels)}
        c = len(labels)
        out = {}
        for q, g in gold.items():
            row = [0.0] * (c * c)
            pred = preds.get(q)
            if pred in index:
                row[index[g] * c + index[pred]] = 1.0
            else:  # a missing or unknown prediction counts as wrong
                row[index[g] * c + (index[g] + 1) % c] = 1.0
            out[q] = row
        return out

    def scores(self, preds: dict, split: str) -> dict:
        stats = board_statistics(self.kind, {"x": self.per_example(preds, split)}, labels=self.labels)
        return stats["metrics"]["x"]

    # -- the Trainer rows --
    def trainer_cell(self, lr: float, epochs: int, seed: int = SEED) -> dict:
        from peers import (
            clf_features,
            clf_trainer,
            load_model,
            load_tokenizer,
            minilm_path,
            predict_logits,
            qa_answers,
            qa_features,
            qa_trainer,
        )
        from transformers import TrainerCallback

        p, path = self.p, minilm_path()
        tok = self._cache.setdefault("tokenizer", load_tokenizer(path))
        bs = TRAINER_DEFAULTS[self.kind]["batch_size"]
        t0 = time.time()
        if self.kind == "qa":
            key = ("qa", "train")
            if key not in self._cache:
                self._cache[key] = qa_features(tok, self.examples["train"], p["max_length"], p["doc_stride"])
            _, train_features = self._cache[key]
        else:
            key = ("clf", "train")
            if key not in self._cache:
                ex = self.examples["train"]
                self._cache[key] = clf_features(tok, [s for _, s, _ in ex], [lab for _, _, lab in ex], self.labels,
                                                p["max_length"])
            train_features = self._cache[key]
        track = self

        class Progress(TrainerCallback):
            def on_epoch_end(self, args, state, control, **kw):
                track.log(f"  trainer lr={_fmt_lr(lr)} epochs={epochs}: epoch {state.epoch:.0f} done, step "
                          f"{state.global_step}/{state.max_steps}")

        model = load_model(path, "qa" if self.kind == "qa" else "classification", seed=seed, labels=self.labels)
        make = qa_trainer if self.kind == "qa" else clf_trainer
        extra = {"max_steps": p["max_steps"]} if p["max_steps"] else {}
        folder = f"lr{lr}-e{epochs}" + (f"-s{seed}" if seed != SEED else "")
        trainer = make(model, train_features, self.dir / "trainer" / folder, learning_rate=lr,
                       num_train_epochs=epochs, per_device_train_batch_size=bs, seed=seed, callbacks=[Progress()],
                       **extra)
        t_train = time.time()
        trainer.train()
        train_s = time.time() - t_train
        out = {"lr": lr, "epochs": epochs, "batch_size": bs, "seed": seed, "train_rows": len(train_features),
               "train_s": round(train_s, 1), "optimizer": str(getattr(trainer.args.optim, "value", trainer.args.optim)),
               "rows_per_s": round(len(train_features) * (epochs if not p["max_steps"] else 0) / max(train_s, 1e-9), 1)}
        t_pred = time.time()
        for split in ("dev", "test"):
            if self.kind == "qa":
                fkey = ("qa", split)
                if fkey not in self._cache:
                    self._cache[fkey] = qa_features(tok, self.examples[split], p["max_length"], p["doc_stride"],
                                                    labels=False)
                windows, features = self._cache[fkey]
                start, end = predict_logits(trainer, features)
                preds = qa_answers(windows, self.examples[split], start, end)
            else:
                fkey = ("clf", split)
                if fkey not in self._cache:
                    self._cache[fkey] = clf_features(tok, [s for _, s, _ in self.examples[split]], None, self.labels,
                                                     p["max_length"])
                logits = predict_logits(trainer, self._cache[fkey])
                preds = {rid: self.labels[int(k)] for (rid, _, _), k in zip(self.examples[split], logits.argmax(1))}
            out[f"{split}_preds"] = preds
            out[f"{split}_scores"] = self.scores(preds, split)
        out["predict_s"] = round(time.time() - t_pred, 1)
        out["wall_s"] = round(time.time() - t0, 1)
        del trainer, model
        import gc

        gc.collect()
        return out

    def grid(self) -> list[dict]:
        cells = []
        d = TRAINER_DEFAULTS[self.kind]
        # the default cell first: it is also the trainer-default row
        todo = self.p.get("grid_cells") or [(lr, e) for lr in self.p["grid_lr"] for e in self.p["grid_epochs"]]
        order = [(d["lr"], d["epochs"])] + [(lr, e) for lr, e in todo if (lr, e) != (d["lr"], d["epochs"])]
        for lr, e in order:
            name = f"trainer:lr={_fmt_lr(lr)},epochs={e}"
            cells.append({"name": name, **self.step(name, lambda lr=lr, e=e: self.trainer_cell(lr, e),
                                                     f"row trainer lr={_fmt_lr(lr)} epochs={e}")})
        return cells

    # -- the harness, through its command line --
    def cli(self, *args, log: str, on_line=None) -> str:
        cmd = [sys.executable, "-m", "harness", "-w", str(self.ws), "-c", str(self.ws), *map(str, args)]
        shown = "harness " + " ".join(str(a) for a in args)
        self.state.setdefault("commands", [])
        if shown not in self.state["commands"]:
            self.state["commands"].append(shown)
        self.logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        lines = []
        with open(self.logs / f"{log}.log", "a", encoding="utf-8") as logf:
            logf.write(f"\n$ {shown}\n")
            logf.flush()
            proc = subprocess.Popen(cmd, cwd=self.ws, stdout=subprocess.PIPE, stderr=logf, text=True, env=env)
            for line in proc.stdout:
                lines.append(line)
                logf.write(line)
                logf.flush()
                self.echo(f"    | {line.rstrip()}")
                if on_line:
                    on_line(line)
            rc = proc.wait()
        if rc:
            tail = "".join(lines[-5:]).strip()
            raise BenchError(f"`{shown}` failed (exit {rc}): {tail or 'no output'}; see {self.logs / (log + '.log')}")
        return "".join(lines)

    def common_sets(self) -> list[str]:
        p = self.p
        sets = [f"max_length={p['max_length']}"]
        if self.kind == "qa":
            sets.append(f"doc_stride={p['doc_stride']}")
        if p["max_steps"]:
            sets.append(f"max_steps={p['max_steps']}")
        return [x for s in sets for x in ("--set", s)]

    def init(self) -> dict:
        self.ws.mkdir(parents=True, exist_ok=True)
        f = self.files
        if self.kind == "qa":
            args = ["init", "squad-bench", "--train", f["train"], "--dev", f["dev"], "--test", f["test"],
                    "--test-gold", f["test_gold"], "--layout", "squad", "--lang", "en"]
        else:
            args = ["init", "sst2-bench", "--task", "classification", "--train", f["train"], "--dev", f["dev"],
                    "--test", f["test"], "--test-gold", f["test_gold"], "--text-column", "sentence", "--lang", "en"]
        return {"stdout": self.cli(*args, log="init")}

    def submission(self, name: str) -> dict:
        """A submission's sidecar and its test predictions (read from the CSV), scored here."""
        sidecar = json.loads((self.ws / "submissions" / f"{name}.json").read_text(encoding="utf-8"))
        id_col, ans_col = ("ID", "Answer") if self.kind == "qa" else ("id", "label")
        with open(self.ws / "submissions" / f"{name}.csv", encoding="utf-8", newline="") as fh:
            preds = {r[id_col]: r[ans_col] for r in csv.DictReader(fh)}
        scores = self.scores(preds, "test")
        check = {}
        for m, v in scores.items():
            theirs = (sidecar.get("test") or {}).get(m)
            if theirs is not None and abs(theirs - v) > 1e-6:
                check[m] = [v, theirs]
        if check:
            self.log(f"warning: {name}: test scores here differ from the sidecar's: {check}")
        val = sidecar.get("validation") or {}
        return {"submission": name, "members": sidecar.get("members"), "weights": sidecar.get("weights"),
                "dev_scores": {m: val[m] for m in METRICS[self.kind] if m in val},
                "test_scores": scores, "sidecar_test": sidecar.get("test"), "sidecar_mismatch": check,
                "test_preds": preds}

    def submit(self, name: str, runs: list[str], fit: bool = False) -> dict:
        args = ["submit", "--name", name, "--runs", ",".join(runs)] + (["--fit-weights"] if fit else [])
        t0 = time.time()
        self.cli(*args, log=f"submit-{name}")
        return {**self.submission(name), "submit_s": round(time.time() - t0, 1)}

    def harness_default(self, seed: int = SEED) -> dict:
        d = TRAINER_DEFAULTS[self.kind]
        name = "harness-default" + (f"-s{seed}" if seed != SEED else "")
        t0 = time.time()
        if not (self.ws / "runs" / name / "metrics.json").exists():
            self.cli("train", "--recipe", RECIPE, "--name", name, "--no-dev", "--set", f"lr={d['lr']}",
                     "--set", f"epochs={d['epochs']}", "--set", f"batch_size={d['batch_size']}",
                     "--set", "warmup_ratio=0.0", "--set", "weight_decay=0.0", "--set", f"seed={seed}",
                     *self.common_sets(), log=name)
        train_s = time.time() - t0
        self.cli("predict", "--run", name, "--data", "dev", log=name)  # dev figures for the table
        out = self.submit(name, [name])
        metrics = self._run_metrics(self.ws / "runs" / name)
        return {**out, "seed": seed, "train_s": round(train_s, 1), "run": f"runs/{name}", "run_metrics": metrics,
                "wall_s": round(time.time() - t0, 1)}

    def _run_metrics(self, run_dir: Path) -> dict:
        path = run_dir / "metrics.json"
        if not path.exists():
            return {}
        m = json.loads(path.read_text(encoding="utf-8"))
        return {"best_epoch": m.get("best_epoch"), "train_rows": m.get("train_rows"), "total_s": m.get("total_s"),
                "history": [{k: v for k, v in h.items() if k != "loss_curve"} for h in m.get("history", [])]}

    # -- search --
    TRIAL_LINE = re.compile(r"^trial\s+(\d+)\s+(COMPLETE|PRUNED|FAIL)\b.*\s(\d+)s  ")

    def _trial_seconds(self) -> dict[int, tuple[str, float]]:
        """{trial: (state, seconds)} from the search's own trial lines (every invocation's log)."""
        out = {}
        path = self.logs / "search.log"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                m = self.TRIAL_LINE.match(line)
                if m:
                    out[int(m.group(1))] = (m.group(2), float(m.group(3)))
        return out

    def search(self, grid_s: float) -> dict:
        p = self.p
        budget = grid_s if p["budget"] == "grid-time" else None
        t0 = time.time()
        args = ["search", "--recipe", RECIPE, "--study", STUDY, "--dev", "--trials", p["trials"], "--quiet",
                *self.common_sets()]
        if budget is not None:
            spent = sum(s for _, s in self._trial_seconds().values())
            left = budget - spent
            if left <= 0 and any(st == "COMPLETE" for st, _ in self._trial_seconds().values()):
                self.log(f"search: budget {_clock(budget)} already spent ({_clock(spent)} of trials)")
            else:
                self.cli(*args, "--timeout", f"{max(left, 1.0):.0f}", log="search")
        else:
            self.cli(*args, log="search")
        trials = self._trial_seconds()
        table = self.cli("trials", "--study", STUDY, "--sort", log="trials")
        ranked = self._ranked_trials(table)
        if not ranked:
            raise BenchError("the search finished no trial")
        counts = {}
        for st, _ in trials.values():
            counts[st] = counts.get(st, 0) + 1
        return {"budget_rule": p["budget"], "budget_s": None if budget is None else round(budget, 1),
                "grid_s": round(grid_s, 1),
                "trial_seconds": round(sum(s for _, s in trials.values()), 1), "counts": counts,
                "ranked": ranked, "trials_table": table, "session_s": round(time.time() - t0, 1)}

    def _ranked_trials(self, table: str) -> list[dict]:
        """COMPLETE trials of ``harness trials --sort``, best dev first (ranked here by the metric column,
        ties by trial number, whatever the table's order), with their folders (columns found by the
        table's header: number, state, the metric right after state)."""
        rows = []
        lines = table.splitlines()
        header = next((ln.split() for ln in lines if {"number", "state"} <= set(ln.split())), None)
        if header is None:
            return rows
        at_number, at_state = header.index("number"), header.index("state")
        at_metric = at_state + 1 if at_state + 1 < len(header) else None
        for line in lines:
            tok = line.split()
            if len(tok) > max(at_number, at_state) and tok[at_number].isdigit() and tok[at_state] == "COMPLETE":
                m = re.search(r"(studies/\S+/trials/\d+)", line)
                if not m:
                    continue
                folder = m.group(1)
                rows.append({"number": int(tok[at_number]), "dir": folder,
                             "dev": float(tok[at_metric]) if at_metric is not None else None,
                             "has_model": (self.ws / folder / "model").exists()})
        return sorted(rows, key=lambda r: (-(r["dev"] if r["dev"] is not None else -math.inf), r["number"]))

    def refit(self, best: dict) -> dict:
        seeds = ",".join(str(s) for s in self.p["refit_seeds"])
        t0 = time.time()
        out = self.cli("refit", "--study", STUDY, "--trial", "best", "--seeds", seeds, "--quiet", log="refit")
        m = re.search(r"^runs: (.+)$", out, re.MULTILINE)
        runs = [r.strip() for r in m.group(1).split(",")] if m else []
        number = int(re.search(r"-t(\d+)-s\d+$", runs[0]).group(1)) if runs else None
        if number is not None and number != best["number"]:
            self.log(f"note: refit chose trial {number}, the sorted table's first is {best['number']}")
        return {"runs": runs, "trial": number, "seeds": list(self.p["refit_seeds"]),
                "refit_s": round(time.time() - t0, 1)}

    def parity_seeds(self) -> None:
        """Trainer and harness at Trainer's defaults at the scale's extra seeds (the parity rows' means)."""
        d = TRAINER_DEFAULTS[self.kind]
        for seed in self.p.get("parity_seeds") or ():
            self.step(f"trainer-seed:{seed}", lambda seed=seed: self.trainer_cell(d["lr"], d["epochs"], seed),
                      f"Trainer at its defaults, seed {seed}")
            self.step(f"harness-default-seed:{seed}", lambda seed=seed: self.harness_default(seed),
                      f"harness at Trainer's hyperparameters, seed {seed}")

    # -- the whole track --
    def run(self) -> dict:
        self.prepare()
        self.step("init", self.init, "harness init")
        cells = self.grid()
        grid_s = sum(c["wall_s"] for c in cells)
        self.step("harness-default", self.harness_default, "row harness-default (Trainer's hyperparameters)")
        self.parity_seeds()
        search = self.step("search", lambda: self.search(grid_s), "row search")
        ranked = search["ranked"]
        best = ranked[0]
        self.step("search-best", lambda: self.submit("search-best", [best["dir"]]),
                  f"row search-best (trial {best['number']})")
        refit = self.step("refit", lambda: self.refit(best), "row refit")
        best_dir = next((r["dir"] for r in ranked if r["number"] == refit["trial"]), best["dir"])
        search_members = [r["dir"] for r in ranked if r["has_model"]][:self.p["members"]]
        refit_members = [best_dir] + refit["runs"]
        members = list(dict.fromkeys(search_members + refit_members))
        for m in members:
            if m == best["dir"]:  # the best trial is submitted already (search-best)
                self.state["steps"].setdefault(f"member:{m}", self.state["steps"]["search-best"])
                continue
            self.step(f"member:{m}", lambda m=m: self.submit(_member_name(m), [m]), f"member {m}")
        groups = [("ensemble-search", search_members), ("ensemble-refit", refit_members)]
        if self.p.get("ensemble_all", True) and members not in (search_members, refit_members):
            groups.append(("ensemble-all", members))
        for name, group in groups:
            if len(group) >= 2:
                self.step(name, lambda name=name, group=group: {**self.submit(name, group, fit=True),
                                                                "group": group}, f"row {name}")
        board = self.cli("leaderboard", "--split", "test", log="leaderboard")
        _write_if_changed(self.dir / "leaderboard-test.txt", board)
        self.state["board_test"] = parse_board(board)
        self.save()
        return self.report()

    # -- report --
    def report(self) -> dict:
        steps = self.state.get("steps", {})
        kind, (primary, second) = self.kind, METRICS[self.kind]
        cells = [dict(v, name=k) for k, v in steps.items() if k.startswith("trainer:")]
        entries, rows = {}, []
        for c in cells:
            entries[c["name"]] = self.per_example(c["test_preds"])
        d = TRAINER_DEFAULTS[kind]
        default_name = f"trainer:lr={_fmt_lr(d['lr'])},epochs={d['epochs']}"
        if default_name in steps:
            entries["trainer-default"] = entries[default_name]
            rows.append(("trainer-default", f"HF Trainer ({'run_qa' if kind == 'qa' else 'run_glue'} defaults: "
                         f"lr {_fmt_lr(d['lr'])}, {d['epochs']} epochs, batch {d['batch_size']})",
                         steps[default_name]))
        if cells:
            best_cell = max(cells, key=lambda c: (c["dev_scores"][primary], c["dev_scores"][second]))
            entries["trainer-grid"] = entries[best_cell["name"]]
            grid_s = sum(c["wall_s"] for c in cells)
            grid = (f"lr {{{', '.join(_fmt_lr(x) for x in self.p['grid_lr'])}}} x epochs "
                    f"{{{', '.join(str(e) for e in self.p['grid_epochs'])}}}" if not self.p.get("grid_cells") else
                    "(lr, epochs) " + ", ".join(f"({_fmt_lr(c['lr'])}, {c['epochs']})" for c in cells))
            rows.append(("trainer-grid", f"HF Trainer grid {grid}: best by dev "
                         f"(lr {_fmt_lr(best_cell['lr'])}, {best_cell['epochs']} epochs)",
                         {**best_cell, "wall_s": grid_s}))
        member_steps = {k[len("member:"):]: v for k, v in steps.items() if k.startswith("member:")}
        for m, v in member_steps.items():
            entries[f"member:{m}"] = self.per_example(v["test_preds"])
        if "harness-default" in steps:
            entries["harness-default"] = self.per_example(steps["harness-default"]["test_preds"])
            rows.append(("harness-default", "harness train at Trainer's hyperparameters (--no-dev, last epoch)",
                         steps["harness-default"]))
        parity = ("trainer-default", "harness-default")  # the entries the parity target compares
        extra = sorted({int(k.split(":")[1]) for k in steps if k.startswith("trainer-seed:")}
                       & {int(k.split(":")[1]) for k in steps if k.startswith("harness-default-seed:")})
        if extra and default_name in steps and "harness-default" in steps:
            seeds = [SEED] + extra
            for key, first, prefix, what in (
                    ("trainer-default-seeds", steps[default_name], "trainer-seed", "HF Trainer at its defaults"),
                    ("harness-default-seeds", steps["harness-default"], "harness-default-seed",
                     "harness train at Trainer's hyperparameters")):
                runs = [first] + [steps[f"{prefix}:{s}"] for s in extra]
                per = [self.per_example(r["test_preds"]) for r in runs]
                entries[key] = _mean_rows(per)
                dev = {k: sum(r["dev_scores"].get(k, 0) for r in runs) / len(runs) for k in (primary, second)}
                rows.append((key, f"{what}, mean of seeds {', '.join(map(str, seeds))}",
                             {"dev_scores": dev, "wall_s": sum(r["wall_s"] for r in runs),
                              "per_seed": {str(s): r["test_scores"] for s, r in zip(seeds, runs)}}))
            parity = ("trainer-default-seeds", "harness-default-seeds")
        search = steps.get("search")
        if "search-best" in steps and search:
            entries["search-best"] = self.per_example(steps["search-best"]["test_preds"])
            c = search["counts"]
            budget = (f"--timeout {_clock(search['budget_s'])} = grid time" if search["budget_s"] is not None
                      else f"--trials {self.p['trials']}")
            rows.append(("search-best", f"harness search, {sum(c.values())} trials ({c.get('COMPLETE', 0)} complete,"
                         f" {c.get('PRUNED', 0)} pruned; {budget}): best trial #{search['ranked'][0]['number']} by dev",
                         {**steps["search-best"], "wall_s": max(search["wall_s"], search["trial_seconds"])}))
        refit = steps.get("refit")
        if refit and search:
            best_dir = next((r["dir"] for r in search["ranked"] if r["number"] == refit["trial"]),
                            search["ranked"][0]["dir"])
            models = [best_dir] + refit["runs"]
            if all(m in member_steps for m in models):
                per = [self.per_example(member_steps[m]["test_preds"]) for m in models]
                entries["refit"] = _mean_rows(per)
                dev = {k: sum(member_steps[m]["dev_scores"].get(k, 0) for m in models) / len(models)
                       for k in (primary, second)}
                rows.append(("refit", f"harness refit of trial #{refit['trial']}: the trial (seed {SEED}, train) and "
                             f"seed {', '.join(map(str, refit['seeds']))} retrained on train + dev; mean single model",
                             {"dev_scores": dev, "wall_s": refit["wall_s"], "models": models,
                              "per_model": {m: member_steps[m]["test_scores"] for m in models}}))
        ensembles = []
        for name in ("ensemble-search", "ensemble-refit", "ensemble-all"):
            if name in steps:
                v = steps[name]
                entries[name] = self.per_example(v["test_preds"])
                ws = ", ".join(f"{w:.2f}" for w in v.get("weights") or [])
                group = v["group"]
                what = {"ensemble-search": f"top {len(group)} search trials",
                        "ensemble-refit": f"trial #{refit['trial'] if refit else '?'} + its refits (train + dev)",
                        "ensemble-all": f"all {len(group)} members"}[name]
                rows.append((name, f"harness ensemble, {what}, --fit-weights (weights {ws})", v))
                best_member = max(group, key=lambda m: (member_steps[m]["dev_scores"].get(primary, -1e9),
                                                        member_steps[m]["dev_scores"].get(second, -1e9)))
                ensembles.append((name, best_member))
        if not entries:
            return {}
        pairs = [(r[0], "trainer-default") for r in rows if r[0] != "trainer-default" and "trainer-default" in entries]
        pairs.append((parity[1], parity[0]))
        pairs += [(c["name"], "trainer-default") for c in cells if "trainer-default" in entries]
        if "search-best" in entries and "trainer-grid" in entries:
            pairs.append(("search-best", "trainer-grid"))
        pairs += [(name, f"member:{m}") for name, m in ensembles]
        pairs = list(dict.fromkeys(pairs))
        stats = board_statistics(kind, entries, pairs, labels=self.labels if kind == "clf" else None)
        table_rows = []
        for key, what, v in rows:
            diff = stats["diff"].get(f"{key}|trainer-default", {}).get(primary)
            table_rows.append({"row": key, "what": what, "dev": v.get("dev_scores", {}),
                               "test": stats["metrics"][key], "ci": stats["ci"][key],
                               "diff_vs_trainer_default": diff, "wall_s": v.get("wall_s"),
                               **({"per_seed": v["per_seed"]} if v.get("per_seed") else {})})
        targets = self._targets(stats, ensembles, member_steps, parity)
        board_check = self._board_check(stats, member_steps)
        grid_json = [{"name": c["name"], "lr": c["lr"], "epochs": c["epochs"], "dev": c["dev_scores"],
                      "test": stats["metrics"][c["name"]], "ci": stats["ci"][c["name"]],
                      "diff_vs_trainer_default": stats["diff"].get(f"{c['name']}|trainer-default", {}),
                      "train_s": c["train_s"], "wall_s": c["wall_s"], "train_rows": c["train_rows"]} for c in cells]
        members_json = {m: {"dev": v["dev_scores"], "test": stats["metrics"][f"member:{m}"],
                            "ci": stats["ci"][f"member:{m}"], "wall_s": v.get("wall_s")} for m, v in member_steps.items()}
        result = {"track": kind, "scale": self.scale, "model": f"{RECIPE} (all-MiniLM-L6-v2)", "seed": SEED,
                  "scale_params": self.state.get("scale_params"), "splits": self.state.get("splits"),
                  "bootstrap": {"resamples": stats["resamples"], "seed": stats["seed"], "n": stats["n"],
                                "level": 0.95, "paired": True},
                  "rows": table_rows, "grid": grid_json, "members": members_json, "targets": targets,
                  "board_check": board_check,
                  "search": {k: v for k, v in (search or {}).items() if k != "trials_table"},
                  "refit": refit, "commands": self.state.get("commands", []),
                  "harness_default_run": (steps.get("harness-default") or {}).get("run_metrics"),
                  "environment": _environment()}
        _write_json(self.dir / "results.json", result)
        md = markdown(result)
        _write_if_changed(self.dir / "results.md", md)
        return result

    def _board_check(self, stats, member_steps) -> dict:
        """Our intervals against the ones ``harness leaderboard --split test`` printed (1 decimal there)."""
        board = self.state.get("board_test") or {}
        primary = METRICS[self.kind][0]
        names = {v["submission"]: key for key, v in self.state.get("steps", {}).items()
                 if isinstance(v, dict) and v.get("submission")}
        checked, mismatched = 0, []
        for sub, key in names.items():
            entry = key if key in stats["ci"] else (f"member:{key[len('member:'):]}" if key.startswith("member:")
                                                    else None)
            if sub not in board or entry not in stats["ci"]:
                continue
            ours = stats["ci"][entry][primary]
            checked += 1
            if any(abs(round(a, 1) - b) > 0.051 for a, b in zip(ours, board[sub])):
                mismatched.append({"entry": sub, "ours": ours, "board": board[sub]})
        return {"checked": checked, "mismatched": mismatched}

    def _targets(self, stats, ensembles, member_steps, parity=("trainer-default", "harness-default")) -> list[dict]:
        kind, primary = self.kind, METRICS[self.kind][0]
        lab = LABEL[primary]
        t = TARGETS[kind]
        unit = "EM" if kind == "qa" else ("accuracy point" if t["parity"] == 1 else "accuracy points")
        out = []

        def add(name, a, b, need, ok):
            d = stats["diff"].get(f"{a}|{b}", {}).get(primary)
            if d is None:
                return
            out.append({"target": name, "a": a, "b": b, "metric": primary, "diff": d[0], "ci": [d[1], d[2]],
                        "within_ci": d[1] <= 0 <= d[2], "needed": need, "pass": bool(ok(d[0]))})

        seeds = " (means over the same seeds)" if parity[0] != "trainer-default" else ""
        add(f"harness at Trainer's hyperparameters within {t['parity']:g} {unit} of Trainer{seeds}", parity[1],
            parity[0], f"abs(diff) <= {t['parity']:g}", lambda x: abs(x) <= t["parity"])
        add("search best >= best grid cell (both chosen on dev)", "search-best", "trainer-grid", "diff >= 0",
            lambda x: x >= 0)
        for name, m in ensembles:
            add(f"{name} >= its best member by dev ({_member_name(m)}) + {t['ensemble']:g} {lab}", name, f"member:{m}",
                f"diff >= {t['ensemble']:g}", lambda x: x >= t["ensemble"])
        return out


BOARD_LINE = re.compile(r"^\s*\d+\s+\S+\s+(\S+)\s.*?\[(-?[\d.]+), (-?[\d.]+)\]")


def parse_board(text: str) -> dict:
    """``{entry name: [lo, hi]}``: the primary metric's 95% interval of each ``harness leaderboard`` row."""
    out = {}
    for line in text.splitlines():
        m = BOARD_LINE.match(line)
        if m:
            out[m.group(1)] = [float(m.group(2)), float(m.group(3))]
    return out


def _mean_rows(per: list[dict]) -> dict:
    """``{id: statistics row}`` averaged over several models' ``per_example`` dicts (the same ids):
    the pooled entry the bootstrap scores as the mean over those models."""
    return {q: [sum(col) / len(per) for col in zip(*(pe[q] for pe in per))] for q in per[0]}


def _member_name(run: str) -> str:
    m = re.search(r"trials/(\d+)$", run)
    return f"member-trial-{m.group(1)}" if m else f"member-{Path(run).name}"


def _jsonable(v):
    return json.loads(json.dumps(v, default=str))


def _environment() -> dict:
    out = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        import torch
        import transformers

        out.update(torch=torch.__version__, transformers=transformers.__version__,
                   threads=torch.get_num_threads(),
                   device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    except ImportError:
        pass
    return out


# ---- the Markdown table ---------------------------------------------------------------------

def markdown(result: dict) -> str:
    kind = result["track"]
    primary, second = METRICS[kind]
    lp, ls = LABEL[primary], LABEL[second]
    sp = result.get("splits") or {}
    title = "SQuAD v1.1 (split by article)" if kind == "qa" else "SST-2"
    unit = "questions" if kind == "qa" else "sentences"
    key = "questions" if kind == "qa" else "sentences"
    sizes = ", ".join(f"{s} {sp[s][key]}" for s in ("train", "dev", "test") if s in sp)
    params = result.get("scale_params") or {}
    shape = (f"max_length {params.get('max_length')}, doc_stride {params.get('doc_stride')}" if kind == "qa"
             else f"max_length {params.get('max_length')}")
    b = result["bootstrap"]
    lines = [f"### {title}: {result['model']}, {result['scale']} scale", "",
             f"Split: {sizes} {unit}; {shape}; seed {result['seed']}. Headline figures on the held-out test split; "
             f"95% intervals: the leaderboard's paired bootstrap over test {unit} ({b['resamples']} resamples, "
             f"seed {b['seed']}). Δ = row - trainer-default on test {lp}; \"within CI\" when its paired 95% "
             "interval contains 0.", ""]
    lines += [f"| row | what | dev {lp} / {ls} | test {lp} [95% CI] | test {ls} [95% CI] | Δ {lp} vs Trainer "
              "[95% CI] | | wall time |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        dev = r["dev"]
        dev_s = f"{dev[primary]:.2f} / {dev[second]:.2f}" if primary in dev and second in dev else "-"
        t, ci = r["test"], r["ci"]
        diff = r["diff_vs_trainer_default"]
        if diff is None:
            d_s, mark = "(reference)", ""
        else:
            d_s = f"{diff[0]:+.2f} [{diff[1]:+.2f}, {diff[2]:+.2f}]"
            mark = "within CI" if diff[1] <= 0 <= diff[2] else "outside CI"
        lines.append(f"| {r['row']} | {r['what']} | {dev_s} | {t[primary]:.2f} [{ci[primary][0]:.2f}, "
                     f"{ci[primary][1]:.2f}] | {t[second]:.2f} [{ci[second][0]:.2f}, {ci[second][1]:.2f}] | {d_s} | "
                     f"{mark} | {_clock(r['wall_s'])} |")
    for r in result["rows"]:
        if r.get("per_seed"):
            lines += ["", f"{r['row']}: test {lp} by seed " + ", ".join(
                f"{seed} {v[primary]:.2f}" for seed, v in r["per_seed"].items()) + "."]
    if result.get("targets"):
        lines += ["", f"| target | Δ test {lp} [95% CI] | needed | result |", "|---|---|---|---|"]
        for t in result["targets"]:
            sig = "within CI" if t["within_ci"] else "outside CI"
            lines.append(f"| {t['target']} | {t['diff']:+.2f} [{t['ci'][0]:+.2f}, {t['ci'][1]:+.2f}] ({sig}) | "
                         f"{t['needed']} | {'pass' if t['pass'] else 'FAIL'} |")
    s = result.get("search") or {}
    if s:
        if s.get("budget_s") is not None:
            lines += ["", f"Search budget: --timeout {_clock(s['budget_s'])}, the grid's measured wall time; its "
                          f"trials took {_clock(s.get('trial_seconds'))} (the timeout stops new trials, the running "
                          "one finishes)."]
        else:
            lines += ["", f"Search budget: a trial count (--budget trials); the trials took "
                          f"{_clock(s.get('trial_seconds'))}, the grid {_clock(s.get('grid_s'))}."]
    bc = result.get("board_check") or {}
    if bc.get("checked"):
        lines += ["", f"Intervals checked against `harness leaderboard --split test`: {bc['checked']} entries, "
                      f"{len(bc['mismatched'])} mismatched."]
    lines.append("")
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--track", choices=["qa", "clf", "all"], default="all")
    p.add_argument("--scale", choices=["smoke", "cpu", "gpu"], default="cpu")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work folder (default: work/accuracy)")
    p.add_argument("--budget", choices=["grid-time", "trials"], default=None,
                   help="search budget: the grid's wall time as --timeout (cpu/gpu default) or the scale's trial "
                        "count (smoke default)")
    p.add_argument("--report", action="store_true", help="only rewrite the report from the finished rows")
    p.add_argument("--redo-search", action="store_true",
                   help="measure the search and every row after it again (after a change of the recipe); the "
                        "Trainer and harness-default rows are kept, the old study and submissions are set aside")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tracks = list(TRACKS) if args.track == "all" else [args.track]
    results, failed = {}, []
    for kind in tracks:
        track = Track(kind, args.scale, args.out, args.budget)
        try:
            if args.redo_search:
                track.prepare()
                gone = track.redo_search()
                track.log(f"redo: forgot {', '.join(gone) or 'nothing (no search yet)'}")
            if args.report:
                track.prepare()
                results[kind] = track.report()
            else:
                results[kind] = track.run()
        except BenchError as e:
            hint = getattr(e, "hint", None)
            print(f"accuracy: {kind}: {e}" + (f" ({hint})" if hint else ""), file=sys.stderr, flush=True)
            failed.append(kind)
            continue
        if results[kind]:
            print("\n" + markdown(results[kind]), flush=True)
    done = [results[k] for k in tracks if results.get(k)]
    if done:
        folder = Path(args.out).resolve() / args.scale
        _write_if_changed(folder / "results.md", "\n".join(markdown(r) for r in done))
        print(f"wrote {folder / 'results.md'} and {', '.join(str(folder / r['track'] / 'results.json') for r in done)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
