"""Ensembles of sequence classifiers: weighted means of class probabilities (or log-probabilities).

Members are ``ClassLogits`` of one split, aligned by example id. ``space="prob"`` averages the
softmax probabilities, ``space="logprob"`` the log-softmax (logit averaging up to a per-example
constant). Regression members (one column) average their predicted values in either space. An
ensemble of one member predicts exactly what the member predicts. Weights are equal, given, or
fitted on dev / out-of-fold logits with :func:`harness.weights.search_weights`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.common.errors import HarnessError
from harness.tasks.clf.logits import ClassLogits
from harness.weights import normalise, search_weights

SPACES = ("prob", "logprob")


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def aligned(members: Sequence[ClassLogits], ids: Sequence[str]) -> list[ClassLogits]:
    """The members restricted to ``ids`` (in order), after checking they share one label set."""
    if not members:
        raise HarnessError("an ensemble needs at least one member")
    labels = members[0].labels
    for m in members[1:]:
        if m.labels != labels:
            raise HarnessError(f"members predict different label sets: {labels} vs {m.labels}",
                               hint="ensemble runs trained on the same competition")
    return [m.subset(list(ids)) for m in members]


def combine(members: Sequence[ClassLogits], weights=None, space: str = "prob") -> np.ndarray:
    """Per-example scores [n, C] of the weighted ensemble (argmax = predicted class), or values
    [n, 1] for regression. Members must already be aligned (see :func:`aligned`)."""
    if space not in SPACES:
        raise HarnessError(f"unknown ensemble space '{space}'", hint=f"one of {', '.join(SPACES)}")
    w = normalise(weights, len(members))
    live = np.flatnonzero(w > 0)
    if len(live) == 1:  # the ensemble of one is the member
        return members[live[0]].logits.astype(np.float64)
    if members[0].labels is None:
        return sum(w[i] * members[i].logits.astype(np.float64) for i in live)
    if space == "prob":
        return sum(w[i] * np.exp(_log_softmax(members[i].logits)) for i in live)
    return sum(w[i] * _log_softmax(members[i].logits) for i in live)


def predictions(scores: np.ndarray, ids: Sequence[str], labels: list[str] | None) -> dict:
    """``{id: label name}`` (argmax; ties to the lower index), or ``{id: value}`` for regression."""
    if labels is None:
        return {q: float(v) for q, v in zip(ids, scores[:, 0])}
    best = scores.argmax(axis=1)
    return {q: labels[int(k)] for q, k in zip(ids, best)}


def ensemble_labels(members: Sequence[ClassLogits], ids: Sequence[str], weights=None, space: str = "prob") -> dict:
    """``{id: predicted label}`` of the weighted ensemble on the examples ``ids``."""
    ms = aligned(members, ids)
    return predictions(combine(ms, weights, space), ids, ms[0].labels)


def fit_class_weights(members: Sequence[ClassLogits], examples: Sequence, metric: str, method: str = "greedy",
                      space: str = "prob", n_iter: int | None = None, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Member weights maximising ``metric`` on the labelled ``examples``; ``(weights, report)``."""
    from harness.tasks.clf.metrics import clf_scores

    labelled = [ex for ex in examples if ex.labelled]
    if not labelled:
        raise HarnessError("fitting weights needs labelled examples")
    ids = [ex.id for ex in labelled]
    ms = aligned(members, ids)
    labels = ms[0].labels
    if labels is None:
        gold = np.asarray([float(ex.label) for ex in labelled])
    else:
        index = {name: i for i, name in enumerate(labels)}
        gold = np.asarray([index.get(str(ex.label), -1) for ex in labelled])
    n = len(ms)
    cache: dict[tuple, float] = {}

    def score(w) -> float:
        key = tuple(np.round(normalise(w, n), 12))
        if key not in cache:
            s = combine(ms, w, space)
            pred = s[:, 0] if labels is None else s.argmax(axis=1)
            known = gold >= 0 if labels is not None else np.ones(len(gold), bool)
            cache[key] = clf_scores(pred[known], gold[known], None if labels is None else len(labels),
                                    metrics=[metric])[metric]
        return cache[key]

    weights, singles = search_weights(score, n, method, n_iter, seed)
    best = score(weights)
    report = {"metric": metric, "method": method, "n_examples": len(labelled), "members": singles,
              "best_member": int(np.argmax(singles)), "best_single": max(singles), "ensemble": best,
              "gain": best - max(singles), "weights": weights.tolist(), "evaluations": len(cache)}
    return weights, report
