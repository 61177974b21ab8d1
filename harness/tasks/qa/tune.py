"""Decoding-only tuning of QA logits: ``max_answer_length`` / ``n_best`` / ``null_threshold``.

A search does not sample these: they only change how saved start/end logits are decoded, so they
are tuned on each finished trial's logits (dev or out-of-fold) without retraining
(:func:`tune_decoding` over the values of :func:`decoding_grid`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.common.errors import HarnessError
from harness.tasks.qa.decode import decode_windows
from harness.tasks.qa.logits import LogitSet
from harness.tasks.qa.metrics import qa_scores

DECODING_PARAMS = ("max_answer_length", "n_best", "null_threshold")


def decoding_grid(space: dict, params: dict, examples: Sequence) -> dict:
    """Values :func:`tune_decoding` tries: the space's decoding entries (+ the current values).

    ``n_best`` is left at its value: it only shapes the n-best list, never the best answer.
    ``null_threshold`` is tuned ("auto": quantiles of the null-minus-best score gaps) only when
    some example is unanswerable.
    """
    mal = int(params["max_answer_length"])
    spec = space.get("max_answer_length")
    if spec and spec[0] == "cat":
        values = [int(v) for v in spec[1]]
    elif spec:
        values = [int(round(v)) for v in np.linspace(spec[1], spec[2], 5)]
    else:
        values = [v for v in (10, 20, 30, 50, 100) if v <= int(params["max_length"])]
    grid = {"max_answer_length": sorted(set(values) | {mal})}
    if any(getattr(ex, "is_impossible", False) for ex in examples):
        grid["null_threshold"] = [params.get("null_threshold"), "auto"]
    return grid


def tune_decoding(logits: LogitSet, examples: Sequence, grid: dict | None = None, metric: str = "em",
                  base: dict | None = None) -> dict:
    """Best decoding parameters for saved logits, without retraining.

    ``grid`` maps ``max_answer_length`` / ``n_best`` / ``null_threshold`` to lists of values
    (``null_threshold`` may hold ``None`` = never predict "" and ``"auto"`` = 21 quantiles of the
    examples' null-minus-best score gaps). ``base`` holds the values used so far; they are tried
    first and kept on ties. Returns ``{"params", "em", "f1", "metric", "base": {"em", "f1"}}``.
    """
    if list(logits.example_ids) != [ex.id for ex in examples]:
        raise HarnessError("tune_decoding: the logits were made for other examples")
    base = {"max_answer_length": 30, "n_best": 20, "null_threshold": None, **(base or {})}
    base = {k: base[k] for k in DECODING_PARAMS}
    grid = dict(grid or {})
    unknown = set(grid) - set(DECODING_PARAMS)
    if unknown:
        raise HarnessError(f"tune_decoding: {sorted(unknown)} are not decoding parameters",
                           hint=f"decoding parameters: {', '.join(DECODING_PARAMS)}")

    def values(name):
        vs = [base[name]] + [v for v in grid.get(name, []) if v != base[name]]
        return list(dict.fromkeys(vs))

    refs = {ex.id: list(ex.answers) for ex in examples if ex.labelled}
    ids = [ex.id for ex in examples]
    other = "f1" if metric == "em" else "em"
    best, best_key, base_scores = None, None, None
    for mal in values("max_answer_length"):
        for nb in values("n_best"):
            preds = decode_windows(logits.start_logits, logits.end_logits, logits.windows, examples,
                                   max_answer_length=int(mal), n_best=int(nb), null_threshold=None)
            gap = preds.null_scores - preds.scores
            thresholds = []
            for t in values("null_threshold"):
                if t == "auto":
                    finite = gap[np.isfinite(gap)]
                    thresholds += [float(q) for q in np.quantile(finite, np.linspace(0, 1, 21))] if len(finite) else []
                else:
                    thresholds.append(t)
            for thr in dict.fromkeys(thresholds):
                if thr is None:
                    texts = preds.texts
                else:
                    texts = ["" if g > float(thr) else t for t, g in zip(preds.texts, gap)]
                sc = qa_scores(dict(zip(ids, texts)), refs)
                key = (round(sc[metric], 9), round(sc[other], 9))
                if base_scores is None:
                    base_scores = {"em": sc["em"], "f1": sc["f1"]}
                if best_key is None or key > best_key:
                    best_key = key
                    best = {"params": {"max_answer_length": int(mal), "n_best": int(nb), "null_threshold": thr},
                            "em": sc["em"], "f1": sc["f1"]}
    best["metric"] = metric
    best["base"] = base_scores
    return best
