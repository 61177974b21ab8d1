"""Text classification and regression as a task kind (Yelp stars, GLUE): what the generic loop,
search and submit need to know about it.

Examples are :class:`~harness.tasks.clf.example.TextExample`; encoded rows are ``Encoded`` (one per
example); a model's output on a split is a :class:`~harness.tasks.clf.logits.ClassLogits` [n, C];
predictions are ``{id: label name}`` (``{id: value}`` for regression) scored by
``harness.tasks.clf.metrics``. The label set (``info["labels"]``, None for regression) is read from the
training data and saved with the run, so logits columns always map to the same names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from harness.common.errors import HarnessError
from harness.scores import label_scheme
from harness.tasks.base import DemoSpec
from harness.tasks.clf.logits import ClassLogits, load_class_logits, save_class_logits
from harness.train.batching import forward_batches


class ClassificationTask:
    kind = "classification"
    unit = "examples"
    layouts = ("csv", "jsonl", "hf")
    read_options = frozenset({"text_column", "text_pair_column", "label_column", "id_column", "group_column",
                              "columns", "header", "regression", "config", "cache_dir"})
    fold_rule = "stratified by label"
    metric_names = ("accuracy", "f1", "macro_f1", "mcc", "pearson", "spearman", "combined")
    default_metric = "accuracy"
    submission_columns = ("id", "label")
    # max_length: sentences and reviews, GLUE's usual length. length_pool 0: random training batches, as
    # Trainer draws them. Short texts vary in length several-fold (SST-2 phrases: 4 to 21 tokens, 10th to
    # 90th percentile), so length-sorted pools make batches of one length only; on SST-2 at run_glue's
    # defaults that cost 3.4 accuracy points over 3 seeds (random batches: -0.8 against Trainer), for
    # 2.7x less padding. QA windows are near max_length and keep their pools.
    param_defaults: Mapping = {"max_length": 128, "length_pool": 0}
    unused_params = frozenset({"doc_stride", "max_query_length", "max_answer_length", "n_best", "max_offset",
                               "split_chars", "null_threshold", "vocab_size"})  # QA-only: never searched
    decoding_params = frozenset()
    ensemble_options = {"space": ("logprob", "prob")}
    model_class = "AutoModelForSequenceClassification"

    # ---- data
    def read(self, location: str, layout: str, **options) -> list:
        from harness.tasks.clf.readers import read_texts

        return read_texts(location, layout=layout, **options)

    def detect_layout(self, path: str) -> str:
        from harness.tasks.clf.readers import detect_text_layout

        return detect_text_layout(path)

    def texts(self, examples: Sequence) -> list[str]:
        return list(dict.fromkeys(t for ex in examples for t in (ex.text, ex.text_pair) if t))

    def head(self, info: Mapping) -> dict:
        labels = info["labels"]
        if labels is None:
            return {"num_labels": 1, "problem_type": "regression"}
        return {"num_labels": len(labels), "id2label": {i: str(x) for i, x in enumerate(labels)},
                "label2id": {str(x): i for i, x in enumerate(labels)}}

    def check_config(self, cfg) -> None:
        pass

    def tune_decoding(self, logits, examples, cfg, space, metric) -> None:
        return None  # nothing to decode: the class is the argmax

    def reference(self, example) -> str:
        return str(example.label)

    def label_info(self, examples: Sequence) -> dict:
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

    def metrics(self, info: Mapping | None = None) -> tuple[str, ...]:
        labels = (info or {}).get("labels", [])
        if labels is None:
            return ("pearson", "spearman", "combined")
        return ("accuracy", "f1", "macro_f1", "mcc") if len(labels) == 2 else ("accuracy", "macro_f1", "mcc")

    def encode(self, tokenizer, examples, cfg, train: bool, info: Mapping, cache_dir=None):
        from harness.tasks.clf.encode import encode_texts

        with_labels = info["labels"] if train else False
        if cache_dir is not None:
            from harness.cache import ENCODINGS, cached_texts

            return cached_texts(Path(cache_dir) / ENCODINGS, tokenizer, examples, cfg.windows.max_length, with_labels)
        return encode_texts(tokenizer, examples, cfg.windows.max_length, labels=with_labels)

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

    def evaluate(self, logits: ClassLogits, examples, cfg, info: Mapping) -> dict:
        """All the task's metrics (0-100) and ``"predictions"`` of ``logits`` on labelled ``examples``."""
        from harness.tasks.clf.ensemble import predictions

        preds = predictions(logits.logits, logits.example_ids, info["labels"])
        return {**self.score(preds, examples, info), "predictions": preds}

    def score(self, preds: Mapping, examples: Sequence, info: Mapping) -> dict:
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

    # ---- ensembles, scores, the board
    def ensemble(self, members, examples, weights, cfg, options: Mapping) -> dict:
        """``{id: label}`` of the weighted ensemble of members' logits."""
        from harness.tasks.clf.ensemble import ensemble_labels

        return ensemble_labels(members, [ex.id for ex in examples], weights, options.get("space", "logprob"))

    def fit_weights(self, members, examples, metric: str, method: str, cfg, options: Mapping):
        from harness.tasks.clf.ensemble import fit_class_weights

        return fit_class_weights(members, examples, metric, method, options.get("space", "logprob"))

    def board_stats(self, preds: Mapping, examples, info: Mapping):
        """(the label set's scheme, ids, per-example statistics) of the labelled examples; None without any.
        A missing classification prediction counts as wrong (scored as the class after the gold one);
        a missing regression value, or a label outside the label set, is a HarnessError."""
        from harness.tasks.clf.encode import label_targets

        labelled = [ex for ex in examples or () if ex.labelled]
        if not labelled:
            return None
        labels = info["labels"]
        scheme = label_scheme(None if labels is None else len(labels), labels)
        ids = [ex.id for ex in labelled]
        if labels is None:
            missing = [q for q in ids if preds.get(q) is None]
            if missing:
                raise HarnessError(f"no prediction for {len(missing)} of {len(ids)} examples (e.g. {missing[0]!r})",
                                   hint="a regression entry needs a value for every example")
            return scheme, ids, scheme.stats([float(preds[q]) for q in ids], [float(ex.label) for ex in labelled])
        gold = label_targets(labelled, labels)
        index = {str(name): i for i, name in enumerate(labels)}
        unknown = [q for q in ids if preds.get(q) is not None and str(preds[q]) not in index]
        if unknown:
            raise HarnessError(f"predicted label {preds[unknown[0]]!r} of {unknown[0]!r} is not one of the labels",
                               hint=f"labels: {', '.join(map(str, labels))}")
        pred = [index[str(preds[q])] if preds.get(q) is not None else (g + 1) % len(labels)
                for q, g in zip(ids, gold)]
        return scheme, ids, scheme.stats(pred, gold)

    def score_file(self, path, gold, id_column: str, answer_column: str, info: Mapping | None = None):
        from harness.tasks.clf.scoring import score_label_file

        labels = (info or {}).get("labels")
        return score_label_file(path, gold, id_column=id_column, label_column=answer_column, labels=labels)

    def demo(self) -> DemoSpec:
        from harness.tasks.clf.demo import generate_clf_demo

        return DemoSpec("demo-clf", generate_clf_demo, "csv", "en")
