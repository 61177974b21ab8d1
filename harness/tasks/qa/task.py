"""Extractive QA as a task kind: what the generic loop, search and submit need to know about it.

Examples are :class:`~harness.tasks.qa.example.Example`; encoded rows are sliding ``Windows``; a
model's output on a split is a :class:`~harness.runs.LogitSet` (start/end logits per window);
predictions are ``{id: answer text}`` scored by EM/F1 (``harness.tasks.qa.metrics``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.runs import LogitSet, load_logits, save_logits
from harness.train.batching import forward_batches
from harness.tasks.qa.example import Example
from harness.tasks.qa.windows import Windows, make_windows


def qa_windows(tokenizer, examples: Sequence[Example], params: dict, train: bool, lang: str) -> Windows:
    split_chars = params.get("split_chars")
    if split_chars is None:
        split_chars = lang == "zh"
    return make_windows(
        tokenizer, examples, max_length=int(params["max_length"]), doc_stride=int(params["doc_stride"]),
        max_query_length=int(params["max_query_length"]), with_labels=train,
        max_offset=params.get("max_offset") if train else None, seed=int(params["seed"]), split_chars=split_chars,
    )


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


def evaluate_logits(windows, start, end, examples, params) -> dict:
    """Decode window logits into answers and score them against the examples' references."""
    from harness.tasks.qa.decode import decode_windows
    from harness.tasks.qa.metrics import qa_scores

    preds = decode_windows(start, end, windows, examples, max_answer_length=int(params["max_answer_length"]),
                           n_best=int(params["n_best"]), null_threshold=params.get("null_threshold"))
    answers = preds.to_dict()
    scores = qa_scores(answers, {ex.id: list(ex.answers) for ex in examples})
    return {"em": scores["em"], "f1": scores["f1"], "answers": answers}


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


class QATask:
    kind = "qa"
    model_class = "AutoModelForQuestionAnswering"
    unused_params = frozenset()  # every recipe parameter matters
    tunes_decoding = True  # search tunes max_answer_length / null_threshold on saved logits

    # ---- data
    def read(self, location: str, layout: str, **options) -> list[Example]:
        from harness.tasks.qa.readers import read_examples

        if "split" in options:  # Hugging Face names the dev split "validation"
            options["split"] = {"dev": "validation"}.get(options["split"], options["split"])
        return read_examples(location, layout=layout, **options)

    def label_info(self, examples: Sequence[Example], params: dict) -> dict:
        return {}

    def metrics(self, info: dict | None = None) -> tuple[str, ...]:
        return ("em", "f1")

    def num_labels(self, info: dict) -> int | None:
        return None

    def tokenizer_texts(self, examples: Sequence[Example]) -> list[str]:
        seen, out = set(), []
        for ex in examples:
            for t in (ex.context, ex.question):
                if t not in seen:
                    seen.add(t)
                    out.append(t)
        return out

    def encode(self, tokenizer, examples, params: dict, train: bool, lang: str, info: dict) -> Windows:
        rows = qa_windows(tokenizer, examples, params, train, lang)
        if train and len(rows) == 0:
            from harness.common.errors import HarnessError

            raise HarnessError("no training windows: the training set has no answered questions")
        return rows

    # ---- logits
    def predict(self, model, rows: Windows, info: dict, batch_size: int, accelerator=None,
                progress: bool = False) -> LogitSet:
        start, end = predict_windows(model, rows, batch_size, accelerator, progress)
        return LogitSet(rows, start, end, {})

    def evaluate(self, logits: LogitSet, examples, params: dict, info: dict) -> dict:
        """``{"em", "f1", "predictions"}`` of decoded logits."""
        out = evaluate_logits(logits.windows, logits.start_logits, logits.end_logits, examples, params)
        return {"em": out["em"], "f1": out["f1"], "predictions": out["answers"]}

    def save_logits(self, path, logits: LogitSet, meta: dict):
        return save_logits(path, logits.windows, logits.start_logits, logits.end_logits, meta)

    def load_logits(self, path) -> LogitSet:
        return load_logits(path)

    def merge_folds(self, parts, example_ids: list[str], meta: dict) -> LogitSet:
        """One set over all examples from per-fold ``(global_index, LogitSet)``."""
        return merge_fold_logits([(g, ls.windows, ls.start_logits, ls.end_logits) for g, ls in parts],
                                 example_ids, meta)

    def folds(self, examples, k: int, seed: int, splits=None) -> np.ndarray:
        from harness.folds import grouped_folds

        return grouped_folds(examples, k, seed, splits)

    # ---- ensembles, scores, the leaderboard
    def ensemble(self, members, examples, weights, params: dict, agg: str = "max", space: str = "logprob") -> dict:
        """``{id: answer}`` of the weighted ensemble of members' logits (one member: the model itself)."""
        from harness.tasks.qa.ensemble import ensemble_answers

        return ensemble_answers(members, examples, weights, agg=agg, space=space,
                                max_answer_length=int(params["max_answer_length"]), n_best=int(params["n_best"]))

    def fit_weights(self, members, examples, metric: str, method: str, params: dict, agg: str = "max",
                    space: str = "logprob"):
        from harness.tasks.qa.ensemble import fit_weights

        return fit_weights(members, examples, metric=metric, method=method, agg=agg, space=space,
                           max_answer_length=int(params["max_answer_length"]))

    def score(self, preds: dict, examples, info: dict) -> dict:
        from harness.tasks.qa.metrics import qa_scores

        scores = qa_scores(preds, {ex.id: list(ex.answers) for ex in examples if ex.labelled})
        return {"em": scores["em"], "f1": scores["f1"]}

    def record(self, ws, name, members, val_preds, val_examples, test_preds, test_gold, extra, info, metric):
        from harness.board.store import record_submission

        return record_submission(ws, name, members, val_preds, val_examples, test_preds, test_gold, extra)
