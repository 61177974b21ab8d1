"""Classification and regression metrics as GLUE scores them (numpy only).

Classification (``pred``/``gold`` are label indices; everything is derived from the confusion matrix
``M[gold, pred]`` with row sums ``t_k`` (gold counts), column sums ``p_k`` (predicted counts),
``c = trace(M)`` and ``s = sum(M)``):

* ``accuracy`` = c / s.
* ``f1`` -- binary F1 of the positive class (index 1): 2 tp / (p_1 + t_1), 0 when there are no
  predicted nor true positives (sklearn's ``zero_division=0``). MRPC and QQP report it.
* ``macro_f1`` -- unweighted mean of the per-class F1 2 M_kk / (p_k + t_k) over the labels present
  in pred or gold (sklearn ``average="macro"``: a label absent from both is not averaged in).
* ``mcc`` -- Matthews correlation, the multiclass (Gorodkin) form sklearn uses:
  (c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2)(s^2 - sum_k t_k^2)), 0 when the denominator is 0.
  CoLA reports it.

Regression (STS-B): ``pearson`` (scipy ``pearsonr``), ``spearman`` (Pearson of the average ranks,
scipy ``spearmanr``) and ``combined`` = their mean, the STS-B GLUE score. A constant side gives 0.0
where scipy gives nan.

:func:`clf_scores` reports them x100 (as GLUE does) plus ``"n"``. The confusion-matrix and
correlation formulas, and the per-example sufficient statistics the leaderboard resamples, live in
:mod:`harness.scores` (shared with the board); this module applies them to predictions.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from harness.common.errors import HarnessError
from harness.scores import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    _check_n_labels,
    _vectors,
    cm_macro_f1,
    cm_mcc,
    confusion_metrics,
    finite_floats,
    label_indices,
    rankdata,
    safe_div,
)


def _confusion(pred, gold, n_labels=None) -> np.ndarray:
    """float64 confusion matrix ``M[gold, pred]``: C x C with ``n_labels``, else over the labels seen."""
    pred, gold = _vectors(pred, gold)
    if n_labels is None:
        _, codes = np.unique(np.concatenate([gold, pred]), return_inverse=True)
        size = int(codes.max()) + 1
        g, p = codes[: len(gold)], codes[len(gold):]
    else:
        size = _check_n_labels(n_labels)
        g, p = label_indices(gold, size, "gold"), label_indices(pred, size, "predicted")
    return np.bincount(g * size + p, minlength=size * size).reshape(size, size).astype(np.float64)


# ---------------------------------------------------------------- public per-metric functions
def accuracy(pred, gold) -> float:
    """Fraction of exact matches, 0..1."""
    pred, gold = _vectors(pred, gold)
    return float(np.mean(pred == gold))


def f1_binary(pred, gold, positive=1) -> float:
    """F1 of the ``positive`` label (one-vs-rest); 0.0 with no predicted and no true positives."""
    pred, gold = _vectors(pred, gold)
    pp, gp = pred == positive, gold == positive
    return float(safe_div(2.0 * np.sum(pp & gp), np.sum(pp) + np.sum(gp)))


def macro_f1(pred, gold, n_labels=None) -> float:
    """Macro F1 over the labels present in pred or gold (sklearn ``average="macro"``, zero_division 0).

    ``n_labels`` only checks that labels are indices 0..n_labels-1: labels absent from both sides
    are never averaged in, whatever it says.
    """
    return float(cm_macro_f1(_confusion(pred, gold, n_labels)))


def mcc(pred, gold) -> float:
    """Matthews correlation coefficient (multiclass form); 0.0 when undefined, as sklearn."""
    return float(cm_mcc(_confusion(pred, gold)))


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    if (x == x[0]).all() or (y == y[0]).all():
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    r = np.dot(dx, dy) / np.sqrt(np.dot(dx, dx) * np.dot(dy, dy))
    return float(np.clip(r, -1.0, 1.0))


def pearson(x, y) -> float:
    """Pearson correlation (scipy ``pearsonr`` statistic); 0.0 when either side is constant."""
    return _corr(*finite_floats(x, y))


def spearman(x, y) -> float:
    """Spearman correlation: Pearson of the average ranks; 0.0 when either side is constant."""
    x, y = finite_floats(x, y)
    return _corr(rankdata(x), rankdata(y))


# ---------------------------------------------------------------- scores
def _available(n_labels: int | None) -> tuple[str, ...]:
    if n_labels is None:
        return (*REGRESSION_METRICS, "combined")
    return CLASSIFICATION_METRICS if n_labels == 2 else tuple(m for m in CLASSIFICATION_METRICS if m != "f1")


def _selected(n_labels: int | None, metrics: str | Iterable[str] | None) -> tuple[str, ...]:
    available = _available(n_labels)
    if metrics is None:
        return available
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in names if m not in available]
    if unknown:
        task = "regression" if n_labels is None else f"{n_labels}-class classification"
        raise HarnessError(f"unknown metric(s) for {task}: {', '.join(map(str, unknown))}",
                           hint=f"choose from {', '.join(available)}")
    return tuple(dict.fromkeys(names))


def clf_scores(pred, gold, n_labels: int | None, metrics=None) -> dict:
    """Scores on the 0-100 scale (GLUE reports x100), plus ``"n"`` (the number of examples).

    Classification (``n_labels`` = C >= 2; pred and gold are label indices 0..C-1): accuracy,
    macro_f1, mcc, and f1 (binary, positive index 1) only when C == 2.
    Regression (``n_labels`` None; floats): pearson, spearman and ``combined`` = their mean.
    ``metrics`` restricts the keys returned (``"n"`` is always there).
    """
    names = _selected(None if n_labels is None else _check_n_labels(n_labels), metrics)
    if n_labels is None:
        x, y = finite_floats(pred, gold)
        p = _corr(x, y)
        s = _corr(rankdata(x), rankdata(y))
        values = {"pearson": p, "spearman": s, "combined": (p + s) / 2}
    else:
        values = confusion_metrics(_confusion(pred, gold, n_labels))
    out = {name: 100.0 * float(values[name]) for name in names}
    out["n"] = len(pred)
    return out
