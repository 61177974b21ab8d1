"""Extractive QA as a task kind: what the generic loop, search, submit and board need to know about it.

Examples are :class:`~harness.tasks.qa.example.Example`; encoded rows are sliding ``Windows``; a
model's output on a split is a :class:`~harness.tasks.qa.logits.LogitSet` (start/end logits per
window); predictions are ``{id: answer text}`` scored by EM/F1 (:mod:`harness.tasks.qa.metrics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from harness.common.errors import HarnessError
from harness.scores import QA
from harness.tasks.base import DemoSpec
from harness.tasks.qa.example import Example
from harness.tasks.qa.logits import LogitSet, load_logits, save_logits
from harness.tasks.qa.windows import Windows, make_windows
from harness.train.batching import forward_batches

DECODING_PARAMS = frozenset({"max_answer_length", "n_best", "null_threshold"})


def window_kwargs(w, lang: str, train: bool) -> dict:
    """``make_windows`` arguments of a configuration's :class:`~harness.config.WindowArgs`."""
    return dict(max_length=w.max_length, doc_stride=w.doc_stride, max_query_length=w.max_query_length,
                with_labels=train, max_offset=w.max_offset if train else None,
                split_chars=(lang == "zh") if w.split_chars is None else w.split_chars)


def predict_windows(model, windows: Windows, batch_size: int = 64, accelerator=None,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Start/end logits [n_windows, L] (float32); positions past a window's length are -1e4."""
    n, width = windows.input_ids.shape
    start = np.full((n, width), -1e4, dtype=np.float32)
    end = np.full((n, width), -1e4, dtype=np.float32)
    for rows, s, e in forward_batches(model, windows, batch_size, accelerator, progress,
                                      read=lambda out: (out.start_logits, out.end_logits)):
        start[rows, :s.shape[1]] = s
        end[rows, :e.shape[1]] = e
    beyond = np.arange(width)[None, :] >= windows.lengths[:, None]
    start[beyond] = -1e4
    end[beyond] = -1e4
    return start, end


def merge_fold_logits(parts: Sequence[tuple[np.ndarray, object, np.ndarray, np.ndarray]], example_ids: list[str],
                      meta: dict | None = None) -> LogitSet:
    """One ``LogitSet`` over all examples from per-fold ``(global_index, windows, start, end)``.

    ``global_index[j]`` is the position in ``example_ids`` of the fold's example ``j``; windows
    are padded to a common width and sorted by example (stable).
    """
    width = max(w.input_ids.shape[1] for _, w, _, _ in parts)

    def pad(a, value):
        extra = width - a.shape[1]
        if extra == 0:
            return a
        widths = [(0, 0), (0, extra)] + [(0, 0)] * (a.ndim - 2)
        return np.pad(a, widths, constant_values=value)

    cols = {k: [] for k in ("input_ids", "token_type_ids", "lengths", "offsets", "example_index", "cls_index",
                            "start", "end")}
    has_tt = all(w.token_type_ids is not None for _, w, _, _ in parts)
    for gidx, w, s, e in parts:
        cols["input_ids"].append(pad(w.input_ids, 0))
        if has_tt:
            cols["token_type_ids"].append(pad(w.token_type_ids, 0))
        cols["lengths"].append(w.lengths)
        cols["offsets"].append(pad(w.offsets, -1))
        cols["example_index"].append(np.asarray(gidx, dtype=np.int32)[w.example_index])
        cols["cls_index"].append(w.cls_index)
        cols["start"].append(pad(np.asarray(s, dtype=np.float32), -1e4))
        cols["end"].append(pad(np.asarray(e, dtype=np.float32), -1e4))
    cat = {k: np.concatenate(v) if v else None for k, v in cols.items()}
    order = np.argsort(cat["example_index"], kind="stable")
    windows = Windows(
        input_ids=cat["input_ids"][order], token_type_ids=cat["token_type_ids"][order] if has_tt else None,
        lengths=cat["lengths"][order], offsets=cat["offsets"][order],
        example_index=cat["example_index"][order].astype(np.int32), cls_index=cat["cls_index"][order],
        example_ids=list(example_ids),
    )
    return LogitSet(windows, cat["start"][order], cat["end"][order], dict(meta or {}))


def _references(examples) -> dict:
    return {ex.id: list(ex.answers) for ex in examples if ex.labelled}


class QATask:
    kind = "qa"
    unit = "questions"
    layouts = ("squad", "hw7", "csv", "jsonl", "hf")
    read_options = frozenset({"config", "id_col", "question_col", "context_col", "answer_col", "answer_start_col",
                              "group_col", "cache_dir"})
    fold_rule = "grouped by paragraph"
    metric_names = ("em", "f1")
    default_metric = "em"
    submission_columns = ("ID", "Answer")
    param_defaults: Mapping = {}
    unused_params = frozenset({"vocab_size"})  # a tokenizer setting, not a search dimension
    decoding_params = DECODING_PARAMS
    ensemble_options = {"agg": ("max", "mean"), "space": ("logprob", "prob")}
    model_class = "AutoModelForQuestionAnswering"

    # ---- data
    def read(self, location: str, layout: str, **options) -> list[Example]:
        from harness.tasks.qa.readers import read_examples

        if "split" in options:  # Hugging Face names the dev split "validation"
            options["split"] = {"dev": "validation"}.get(options["split"], options["split"])
        return read_examples(location, layout=layout, **options)

    def detect_layout(self, path: str) -> str:
        from harness.tasks.qa.readers import detect_layout

        p = Path(path).expanduser()
        if not p.exists() and p.suffix.lower() not in (".json", ".csv", ".tsv", ".jsonl", ".ndjson"):
            return "hf"  # a Hugging Face data set name
        return detect_layout(p)

    def texts(self, examples: Sequence[Example]) -> list[str]:
        return list(dict.fromkeys(t for ex in examples for t in (ex.context, ex.question)))

    def label_info(self, examples: Sequence[Example]) -> dict:
        return {}

    def reference(self, example: Example) -> str:
        return " | ".join(example.answers)

    def metrics(self, info: Mapping | None = None) -> tuple[str, ...]:
        return self.metric_names

    def head(self, info: Mapping) -> dict:
        return {}

    def check_config(self, cfg) -> None:
        w = cfg.windows
        if w.max_offset is None and w.doc_stride >= w.max_length - w.max_query_length - 3:
            raise HarnessError(f"doc_stride={w.doc_stride} must be smaller than the context part of a window "
                               f"(max_length {w.max_length} - max_query_length {w.max_query_length} - 3 special "
                               "tokens)", hint="lower doc_stride or max_query_length, or raise max_length")

    # ---- rows and logits
    def encode(self, tokenizer, examples, cfg, train: bool, info: Mapping, cache_dir=None) -> Windows:
        kwargs = window_kwargs(cfg.windows, cfg.lang, train)
        if cache_dir is not None:
            from harness.cache import ENCODINGS, cached_windows

            rows = cached_windows(Path(cache_dir) / ENCODINGS, tokenizer, examples, seed=cfg.training.seed, **kwargs)
        else:
            rows = make_windows(tokenizer, examples, seed=cfg.training.seed, **kwargs)
        if train and len(rows) == 0:
            raise HarnessError("no training windows: the training set has no answered questions")
        return rows

    def predict(self, model, rows: Windows, info: Mapping, batch_size: int, accelerator=None,
                progress: bool = False) -> LogitSet:
        start, end = predict_windows(model, rows, batch_size, accelerator, progress)
        return LogitSet(rows, start, end, {})

    def evaluate(self, logits: LogitSet, examples, cfg, info: Mapping) -> dict:
        """``{"em", "f1", "predictions"}`` of decoded logits."""
        from harness.tasks.qa.decode import decode_windows
        from harness.tasks.qa.metrics import qa_scores

        d = cfg.decoding
        preds = decode_windows(logits.start_logits, logits.end_logits, logits.windows, examples,
                               max_answer_length=d.max_answer_length, n_best=d.n_best,
                               null_threshold=d.null_threshold).to_dict()
        scores = qa_scores(preds, _references(examples))
        return {"em": scores["em"], "f1": scores["f1"], "predictions": preds}

    def save_logits(self, path, logits: LogitSet, meta: Mapping):
        return save_logits(path, logits.windows, logits.start_logits, logits.end_logits, dict(meta))

    def load_logits(self, path) -> LogitSet:
        return load_logits(path)

    def merge_folds(self, parts, example_ids: list[str], meta: Mapping) -> LogitSet:
        """One set over all examples from per-fold ``(global_index, LogitSet)``."""
        return merge_fold_logits([(g, ls.windows, ls.start_logits, ls.end_logits) for g, ls in parts],
                                 example_ids, dict(meta))

    def folds(self, examples, k: int, seed: int, splits=None) -> np.ndarray:
        from harness.folds import grouped_folds

        return grouped_folds(examples, k, seed, splits)

    def tune_decoding(self, logits: LogitSet, examples, cfg, space: Mapping, metric: str) -> dict | None:
        """Best ``max_answer_length`` / ``null_threshold`` for saved logits (see :mod:`harness.tasks.qa.tune`)."""
        from dataclasses import asdict

        from harness.tasks.qa.tune import decoding_grid, tune_decoding

        base = asdict(cfg.decoding)
        grid = decoding_grid(space, {**base, "max_length": cfg.windows.max_length}, examples)
        return tune_decoding(logits, examples, grid, metric, base=base)

    # ---- ensembles, scores, the board
    def ensemble(self, members, examples, weights, cfg, options: Mapping) -> dict:
        """``{id: answer}`` of the weighted ensemble of members' logits (one member: the model itself)."""
        from harness.tasks.qa.ensemble import ensemble_answers

        return ensemble_answers(members, examples, weights, agg=options.get("agg", "max"),
                                space=options.get("space", "logprob"),
                                max_answer_length=cfg.decoding.max_answer_length, n_best=cfg.decoding.n_best)

    def fit_weights(self, members, examples, metric: str, method: str, cfg, options: Mapping):
        from harness.tasks.qa.ensemble import fit_weights

        return fit_weights(members, examples, metric=metric, method=method, agg=options.get("agg", "max"),
                           space=options.get("space", "logprob"), max_answer_length=cfg.decoding.max_answer_length)

    def score(self, preds: Mapping, examples, info: Mapping) -> dict:
        from harness.tasks.qa.metrics import qa_scores

        scores = qa_scores(preds, _references(examples))
        return {"em": scores["em"], "f1": scores["f1"]}

    def board_stats(self, preds: Mapping, examples, info: Mapping):
        """(QA's scheme, ids, [EM, F1] per question in 0..1) of the labelled examples; None without any."""
        from harness.tasks.qa.metrics import qa_scores
        from harness.tasks.qa.scoring import gold_references

        labelled = [ex for ex in examples or () if ex.labelled]
        if not labelled:
            return None
        refs = gold_references(labelled)
        per_id = qa_scores(preds, refs)["per_id"]
        ids = list(refs)
        return QA, ids, np.asarray([per_id[q] for q in ids], dtype=np.float64)

    def score_file(self, path, gold, id_column: str, answer_column: str, info: Mapping | None = None):
        from harness.tasks.qa.scoring import score_file

        return score_file(path, gold, id_column=id_column, answer_column=answer_column)

    def demo(self) -> DemoSpec:
        from harness.tasks.qa.demo import generate_demo

        return DemoSpec("demo", generate_demo, "hw7", "zh")
