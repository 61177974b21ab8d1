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

:func:`clf_scores` reports them x100 (as GLUE does) plus ``"n"``. :func:`example_stats` /
:func:`stats_metrics` compute the same numbers from per-example sufficient statistics, so a
bootstrap replicate costs one matrix product (``counts @ stats``) instead of a recomputation.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from harness.common.errors import HarnessError

CLASSIFICATION_METRICS = ("accuracy", "f1", "macro_f1", "mcc")
REGRESSION_METRICS = ("pearson", "spearman")

#: number of regression sufficient statistics (see :func:`example_stats`)
_N_REG_STATS = 10
#: a resample whose variance is below this fraction of its second moment (about the full-sample
#: mean) counts as constant: the one-pass variance of a constant resample is rounding noise
_CONSTANT_RTOL = 1e-10


# ---------------------------------------------------------------- input checks
def _pair(pred, gold) -> tuple[np.ndarray, np.ndarray]:
    pred, gold = np.asarray(pred), np.asarray(gold)
    if pred.ndim != 1 or gold.ndim != 1:
        raise HarnessError(f"metrics need 1-D predictions and gold values, got shapes {pred.shape} and {gold.shape}")
    if len(pred) != len(gold):
        raise HarnessError(f"{len(pred)} predictions for {len(gold)} gold values",
                           hint="predict exactly one value per example")
    if len(pred) == 0:
        raise HarnessError("no examples to score")
    return pred, gold


def _labels(values: np.ndarray, n_labels: int, side: str) -> np.ndarray:
    """``values`` as int64 label indices in 0..n_labels-1, or HarnessError."""
    if values.dtype.kind not in "biuf":
        raise HarnessError(f"{side} labels must be integer indices, got dtype {values.dtype}")
    as_int = values.astype(np.int64)
    if values.dtype.kind == "f" and not np.array_equal(as_int, values):
        raise HarnessError(f"{side} labels must be integer indices, got non-integral values")
    bad = (as_int < 0) | (as_int >= n_labels)
    if bad.any():
        raise HarnessError(f"{side} label {as_int[bad][0]} outside 0..{n_labels - 1}",
                           hint=f"n_labels is {n_labels}")
    return as_int


def _check_n_labels(n_labels) -> int:
    if isinstance(n_labels, bool) or not isinstance(n_labels, (int, np.integer)) or n_labels < 2:
        raise HarnessError(f"n_labels must be an integer >= 2 (or None for regression), got {n_labels!r}")
    return int(n_labels)


def _floats(pred, gold) -> tuple[np.ndarray, np.ndarray]:
    pred, gold = _pair(pred, gold)
    try:
        x, y = pred.astype(np.float64), gold.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise HarnessError(f"regression metrics need numbers: {e}") from None
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise HarnessError("regression predictions and gold values must be finite (no nan/inf)")
    return x, y


def _confusion(pred, gold, n_labels=None) -> np.ndarray:
    """float64 confusion matrix ``M[gold, pred]``: C x C with ``n_labels``, else over the labels seen."""
    pred, gold = _pair(pred, gold)
    if n_labels is None:
        _, codes = np.unique(np.concatenate([gold, pred]), return_inverse=True)
        size = int(codes.max()) + 1
        g, p = codes[: len(gold)], codes[len(gold):]
    else:
        size = _check_n_labels(n_labels)
        g, p = _labels(gold, size, "gold"), _labels(pred, size, "predicted")
    return np.bincount(g * size + p, minlength=size * size).reshape(size, size).astype(np.float64)


# ---------------------------------------------------------------- metrics of confusion matrices
def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0.0 where den == 0 (without a warning)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _class_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 and the mask of labels present in pred or gold, for cm of shape (..., C, C)."""
    support = cm.sum(-1) + cm.sum(-2)  # t_k + p_k
    return _safe_div(2.0 * np.diagonal(cm, axis1=-2, axis2=-1), support), support > 0


def _cm_accuracy(cm: np.ndarray) -> np.ndarray:
    return _safe_div(np.trace(cm, axis1=-2, axis2=-1), cm.sum((-2, -1)))


def _cm_f1_binary(cm: np.ndarray, positive: int = 1) -> np.ndarray:
    return _class_f1(cm)[0][..., positive]


def _cm_macro_f1(cm: np.ndarray) -> np.ndarray:
    f1, present = _class_f1(cm)
    return _safe_div((f1 * present).sum(-1), present.sum(-1))


def _cm_mcc(cm: np.ndarray) -> np.ndarray:
    t, p = cm.sum(-1), cm.sum(-2)
    s, c = cm.sum((-2, -1)), np.trace(cm, axis1=-2, axis2=-1)
    cov_tp = c * s - (t * p).sum(-1)
    denom = (s * s - (p * p).sum(-1)) * (s * s - (t * t).sum(-1))
    return _safe_div(cov_tp, np.sqrt(np.maximum(denom, 0.0)))


# ---------------------------------------------------------------- public per-metric functions
def accuracy(pred, gold) -> float:
    """Fraction of exact matches, 0..1."""
    pred, gold = _pair(pred, gold)
    return float(np.mean(pred == gold))


def f1_binary(pred, gold, positive=1) -> float:
    """F1 of the ``positive`` label (one-vs-rest); 0.0 with no predicted and no true positives."""
    pred, gold = _pair(pred, gold)
    pp, gp = pred == positive, gold == positive
    return float(_safe_div(2.0 * np.sum(pp & gp), np.sum(pp) + np.sum(gp)))


def macro_f1(pred, gold, n_labels=None) -> float:
    """Macro F1 over the labels present in pred or gold (sklearn ``average="macro"``, zero_division 0).

    ``n_labels`` only checks that labels are indices 0..n_labels-1: labels absent from both sides
    are never averaged in, whatever it says.
    """
    return float(_cm_macro_f1(_confusion(pred, gold, n_labels)))


def mcc(pred, gold) -> float:
    """Matthews correlation coefficient (multiclass form); 0.0 when undefined, as sklearn."""
    return float(_cm_mcc(_confusion(pred, gold)))


def rankdata(x) -> np.ndarray:
    """1-based average ranks (ties share the mean of their ranks), like scipy ``rankdata``."""
    arr = np.ravel(np.asarray(x))
    if arr.size == 0:
        return np.zeros(0)
    order = np.argsort(arr, kind="mergesort")
    inverse = np.empty(arr.size, dtype=np.intp)
    inverse[order] = np.arange(arr.size)
    sorted_arr = arr[order]
    new_group = np.concatenate([[True], sorted_arr[1:] != sorted_arr[:-1]])
    group = np.cumsum(new_group)[inverse]  # 1-based tie-group index of every element
    bounds = np.concatenate([np.flatnonzero(new_group), [arr.size]])  # group g spans bounds[g-1]:bounds[g]
    return 0.5 * (bounds[group] + bounds[group - 1] + 1)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    if (x == x[0]).all() or (y == y[0]).all():
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    r = np.dot(dx, dy) / np.sqrt(np.dot(dx, dx) * np.dot(dy, dy))
    return float(np.clip(r, -1.0, 1.0))


def pearson(x, y) -> float:
    """Pearson correlation (scipy ``pearsonr`` statistic); 0.0 when either side is constant."""
    return _corr(*_floats(x, y))


def spearman(x, y) -> float:
    """Spearman correlation: Pearson of the average ranks; 0.0 when either side is constant."""
    x, y = _floats(x, y)
    return _corr(rankdata(x), rankdata(y))


# ---------------------------------------------------------------- scores and sufficient statistics
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
        x, y = _floats(pred, gold)
        p = _corr(x, y)
        s = _corr(rankdata(x), rankdata(y))
        values = {"pearson": p, "spearman": s, "combined": (p + s) / 2}
    else:
        cm = _confusion(pred, gold, n_labels)
        values = {"accuracy": _cm_accuracy(cm), "macro_f1": _cm_macro_f1(cm), "mcc": _cm_mcc(cm)}
        if n_labels == 2:
            values["f1"] = _cm_f1_binary(cm)
    out = {name: 100.0 * float(values[name]) for name in names}
    out["n"] = len(pred)
    return out


def example_stats(pred, gold, n_labels: int | None) -> np.ndarray:
    """Per-example sufficient statistics, float64 ``[n, S]``: the metrics of any weighted subset
    (a bootstrap replicate is ``counts @ stats``) depend only on the column sums (:func:`stats_metrics`).

    Classification (C = n_labels): S = C*C, a one-hot of the confusion cell ``gold * C + pred``.
    Regression: S = 10: dx, dy, dx*dx, dy*dy, dx*dy of the values centred by their full-sample means
    (numerical stability; centring does not change a correlation), then the same five of the ranks
    (average ranks of the full sample, centred by (n+1)/2). A resample's spearman is therefore the
    Pearson correlation of the *full-sample* ranks of its rows, an approximation of re-ranking the
    resample (exact for the full sample and any subset whose ties and order agree with it).
    """
    if n_labels is None:
        x, y = _floats(pred, gold)
        columns = []
        for a, b in ((x, y), (rankdata(x), rankdata(y))):
            # a constant side centres to exact zeros, so its variance is exactly 0 in every resample
            da = np.zeros_like(a) if (a == a[0]).all() else a - a.mean()
            db = np.zeros_like(b) if (b == b[0]).all() else b - b.mean()
            columns += [da, db, da * da, db * db, da * db]
        return np.stack(columns, axis=1)
    size = _check_n_labels(n_labels)
    pred, gold = _pair(pred, gold)
    cell = _labels(gold, size, "gold") * size + _labels(pred, size, "predicted")
    stats = np.zeros((len(cell), size * size))
    stats[np.arange(len(cell)), cell] = 1.0
    return stats


def _corr_from_sums(sums: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pearson from sums of (dx, dy, dx^2, dy^2, dx dy) over n rows; 0.0 for a constant side."""
    sx, sy, sxx, syy, sxy = (sums[..., i] for i in range(5))
    mx, my, mxx, myy = _safe_div(sx, n), _safe_div(sy, n), _safe_div(sxx, n), _safe_div(syy, n)
    vx, vy = mxx - mx * mx, myy - my * my
    cov = _safe_div(sxy, n) - mx * my
    constant = (vx <= _CONSTANT_RTOL * mxx) | (vy <= _CONSTANT_RTOL * myy)
    r = _safe_div(cov, np.sqrt(np.where(constant, 0.0, vx * vy)))
    return np.clip(r, -1.0, 1.0)


def stats_metrics(sums, count, n_labels: int | None) -> dict[str, np.ndarray]:
    """The metrics (0-100 scale) from column sums ``sums`` (..., S) of :func:`example_stats` and
    example counts ``count`` (...): same keys as :func:`clf_scores`, vectorised over the leading axes.

    Undefined values (zero denominators) are 0.0, and ``count == 0`` gives nan. Classification
    takes its totals from the confusion sums themselves; regression needs ``count`` for the means.
    """
    sums = np.asarray(sums, dtype=np.float64)
    width = _N_REG_STATS if n_labels is None else _check_n_labels(n_labels) ** 2
    if sums.ndim < 1 or sums.shape[-1] != width:
        raise HarnessError(f"stats sums have shape {sums.shape}; expected (..., {width}) for "
                           + ("regression" if n_labels is None else f"{n_labels} labels"))
    try:
        count = np.broadcast_to(np.asarray(count, dtype=np.float64), sums.shape[:-1])
    except ValueError:
        raise HarnessError(f"count shape {np.shape(count)} does not match sums shape {sums.shape}") from None
    if n_labels is None:
        p = _corr_from_sums(sums[..., :5], count)
        s = _corr_from_sums(sums[..., 5:], count)
        values = {"pearson": p, "spearman": s, "combined": (p + s) / 2}
    else:
        cm = sums.reshape(*sums.shape[:-1], n_labels, n_labels)
        values = {"accuracy": _cm_accuracy(cm), "macro_f1": _cm_macro_f1(cm), "mcc": _cm_mcc(cm)}
        if n_labels == 2:
            values["f1"] = _cm_f1_binary(cm)
    empty = count == 0
    out = {name: np.where(empty, np.nan, 100.0 * values[name]) for name in _available(n_labels)}
    out["n"] = count.copy()
    return out
