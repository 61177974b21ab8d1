"""Text classification and regression as a task kind (Yelp stars, GLUE): what the generic loop,
search and submit need to know about it.

Examples are :class:`~harness.tasks.clf.example.TextExample`; encoded rows are ``Encoded`` (one per
example); a model's output on a split is a :class:`~harness.runs.ClassLogits` [n, C];
predictions are ``{id: label name}`` (``{id: value}`` for regression) scored by
``harness.tasks.clf.metrics``. The label set (``info["labels"]``, None for regression) is read from the
training data and saved with the run, so logits columns always map to the same names.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.runs import ClassLogits, load_class_logits, save_class_logits
from harness.train.batching import forward_batches
from harness.common.errors import HarnessError

REGRESSION_KEY = "regression"


class ClassificationTask:
    kind = "classification"
    model_class = "AutoModelForSequenceClassification"
    unused_params = frozenset({"doc_stride", "max_query_length", "max_answer_length", "n_best",
                               "max_offset", "split_chars", "null_threshold"})  # QA-only: never searched
    tunes_decoding = False

    # ---- data
    def read(self, location: str, layout: str, **options) -> list:
        from harness.tasks.clf.readers import read_texts

        return read_texts(location, layout=layout, **options)

    def label_info(self, examples: Sequence, params: dict) -> dict:
        """``{"labels": [names...]}``, or ``{"labels": None}`` when the labels are numbers (regression)."""
        labelled = [ex for ex in examples if ex.labelled]
        if not labelled:
            raise HarnessError("the training data has no labels")
        if all(isinstance(ex.label, float) for ex in labelled):
            return {"labels": None}
        from harness.tasks.clf.readers import label_set

        labels = label_set(labelled)
        if len(labels) < 2:
            raise HarnessError(f"the training data has a single label ({labels[0]!r}): nothing to learn",
                               hint="check the label column (--label-column)")
        return {"labels": labels}

    def metrics(self, info: dict | None = None) -> tuple[str, ...]:
        labels = (info or {}).get("labels", [])
        if labels is None:
            return ("pearson", "spearman", "combined")
        return ("accuracy", "f1", "macro_f1", "mcc") if len(labels) == 2 else ("accuracy", "macro_f1", "mcc")

    def num_labels(self, info: dict) -> int:
        return 1 if info["labels"] is None else len(info["labels"])

    def tokenizer_texts(self, examples: Sequence) -> list[str]:
        return list(dict.fromkeys(t for ex in examples for t in (ex.text, ex.text_pair) if t))

    def encode(self, tokenizer, examples, params: dict, train: bool, lang: str, info: dict):
        from harness.tasks.clf.encode import encode_texts

        with_labels = info["labels"] if train else False
        return encode_texts(tokenizer, examples, int(params["max_length"]), labels=with_labels)

    # ---- logits
    def predict(self, model, rows, info: dict, batch_size: int, accelerator=None,
                progress: bool = False) -> ClassLogits:
        out = None
        for idx, logits in forward_batches(model, rows, batch_size, accelerator, progress):
            if out is None:
                out = np.zeros((len(rows), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
        return ClassLogits(list(rows.example_ids), out if out is not None else np.zeros((0, 1), np.float32),
                           info["labels"], {})

    def evaluate(self, logits: ClassLogits, examples, params: dict, info: dict) -> dict:
        """All the task's metrics (0-100) and ``"predictions"`` of ``logits`` on labelled ``examples``."""
        from harness.tasks.clf.ensemble import predictions

        preds = predictions(logits.logits, logits.example_ids, info["labels"])
        return {**self.score(preds, examples, info), "predictions": preds}

    def score(self, preds: dict, examples: Sequence, info: dict) -> dict:
        """Metrics (0-100) of ``{id: label}`` against the labelled examples (a missing id counts wrong)."""
        from harness.tasks.clf.metrics import clf_scores

        labelled = [ex for ex in examples if ex.labelled]
        labels = info["labels"]
        if labels is None:
            missing = [ex.id for ex in labelled if ex.id not in preds]
            if missing:
                raise HarnessError(f"no prediction for {len(missing)} example(s), e.g. {missing[:3]}")
            pred = [float(preds[ex.id]) for ex in labelled]
            gold = [float(ex.label) for ex in labelled]
            scores = clf_scores(pred, gold, None)
        else:
            from harness.tasks.clf.encode import label_targets

            gold = label_targets(labelled, labels)
            index = {name: i for i, name in enumerate(labels)}
            pred = np.asarray([index.get(str(preds.get(ex.id)), -1) for ex in labelled])
            # a missing or unknown prediction counts as wrong: it is scored as the next class
            pred = np.where(pred < 0, (gold + 1) % len(labels), pred)
            scores = clf_scores(pred, gold, len(labels))
        return {k: float(v) for k, v in scores.items() if k != "n"}

    def save_logits(self, path, logits: ClassLogits, meta: dict):
        return save_class_logits(path, logits, meta)

    def load_logits(self, path) -> ClassLogits:
        return load_class_logits(path)

    def merge_folds(self, parts, example_ids: list[str], meta: dict) -> ClassLogits:
        """One set over all examples (in ``example_ids`` order) from per-fold ``(global_index, ClassLogits)``."""
        width = parts[0][1].logits.shape[1]
        out = np.zeros((len(example_ids), width), dtype=np.float32)
        for gidx, ls in parts:
            out[np.asarray(gidx)] = ls.logits
        return ClassLogits(list(example_ids), out, parts[0][1].labels, dict(meta))

    def folds(self, examples, k: int, seed: int, splits=None) -> np.ndarray:
        from harness.folds import stratified_folds

        regression = all(isinstance(ex.label, float) for ex in examples)
        groups = [f"{splits[i] if splits else ''}:{ex.group}" if ex.group else "" for i, ex in enumerate(examples)]
        return stratified_folds([ex.label for ex in examples], k, seed, groups=groups, ids=[ex.id for ex in examples],
                                regression=regression)

    # ---- ensembles, scores, the leaderboard
    def ensemble(self, members, examples, weights, params: dict, agg: str = "max", space: str = "logprob") -> dict:
        """``{id: label}`` of the weighted ensemble of members' logits (``agg`` is QA's: ignored)."""
        from harness.tasks.clf.ensemble import ensemble_labels

        return ensemble_labels(members, [ex.id for ex in examples], weights, space)

    def fit_weights(self, members, examples, metric: str, method: str, params: dict, agg: str = "max",
                    space: str = "logprob"):
        from harness.tasks.clf.ensemble import fit_class_weights

        return fit_class_weights(members, examples, metric, method, space)

    def record(self, ws, name, members, val_preds, val_examples, test_preds, test_gold, extra, info, metric):
        from harness.board.store import record_classification

        def gold(examples):
            labelled = [ex for ex in examples or [] if ex.labelled]
            return {ex.id: ex.label for ex in labelled} or None

        return record_classification(ws, name, members, info["labels"], metric,
                                     dev_predictions=val_preds, dev_gold=gold(val_examples),
                                     test_predictions=test_preds, test_gold=gold(test_gold), extra=extra)
