"""Per-example sufficient statistics: the common language of tasks (which emit them) and the board
(which stores and resamples them). Neither side imports the other; both import this module.

An entry's statistics are a float matrix ``stats[n, S]``, one row per question or example, whose
column sums over any weighted subset, with the subset's size, give every metric of the task. A
**scheme** says what the columns mean and turns sums into metrics (0-100; MCC and correlations
-100..100); it is stored with a board as a small dict (:meth:`Scheme.as_dict`, read back by
:func:`scheme_from_dict`). Three statistical kinds serve every task so far:

* :class:`MeanScheme` -- each column is a per-example score in 0..1 and a metric is 100 x its mean
  (QA: EM and F1 per question).
* :class:`ConfusionScheme` -- S = C*C, the one-hot confusion cell ``gold * C + pred`` of each
  example; metrics accuracy, macro-F1, MCC (and binary F1 when C == 2), as GLUE defines them.
* :class:`MomentsScheme` -- regression: S = 10 centred moments of the values and of their ranks;
  metrics Pearson, Spearman and their mean ("combined", the STS-B score).

A bootstrap replicate is then one matrix product ``counts @ stats`` followed by
:meth:`Scheme.metrics`. The confusion-matrix and correlation formulas live here for that reason;
``harness.tasks.clf.metrics`` builds its per-prediction functions on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.common.errors import HarnessError

_LABELS = {"em": "EM", "f1": "F1", "mcc": "MCC", "accuracy": "Acc", "macro_f1": "Macro-F1",
           "pearson": "Pearson", "spearman": "Spearman", "combined": "Combined"}

#: a resample whose variance is below this fraction of its second moment counts as constant
CONSTANT_RTOL = 1e-10
CLASSIFICATION_METRICS = ("accuracy", "f1", "macro_f1", "mcc")
REGRESSION_METRICS = ("pearson", "spearman")
N_REGRESSION_STATS = 10


def metric_label(metric: str) -> str:
    """How a metric is written in headers and summaries: EM, F1, MCC, Acc, Macro-F1, Pearson, ..."""
    return _LABELS.get(metric, metric.upper() if len(metric) <= 3 else metric.replace("_", " ").title())


# ---------------------------------------------------------------- formulas
def safe_div(num, den) -> np.ndarray:
    """num / den, 0.0 where den == 0 (without a warning)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _class_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 and the mask of labels present in pred or gold, for cm of shape (..., C, C)."""
    support = cm.sum(-1) + cm.sum(-2)  # t_k + p_k
    return safe_div(2.0 * np.diagonal(cm, axis1=-2, axis2=-1), support), support > 0


def cm_accuracy(cm: np.ndarray) -> np.ndarray:
    return safe_div(np.trace(cm, axis1=-2, axis2=-1), cm.sum((-2, -1)))


def cm_f1_binary(cm: np.ndarray, positive: int = 1) -> np.ndarray:
    return _class_f1(cm)[0][..., positive]


def cm_macro_f1(cm: np.ndarray) -> np.ndarray:
    f1, present = _class_f1(cm)
    return safe_div((f1 * present).sum(-1), present.sum(-1))


def cm_mcc(cm: np.ndarray) -> np.ndarray:
    t, p = cm.sum(-1), cm.sum(-2)
    s, c = cm.sum((-2, -1)), np.trace(cm, axis1=-2, axis2=-1)
    cov_tp = c * s - (t * p).sum(-1)
    denom = (s * s - (p * p).sum(-1)) * (s * s - (t * t).sum(-1))
    return safe_div(cov_tp, np.sqrt(np.maximum(denom, 0.0)))


def confusion_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """accuracy, macro_f1, mcc (and f1 for two classes) of confusion matrices (..., C, C), 0..1."""
    values = {"accuracy": cm_accuracy(cm), "macro_f1": cm_macro_f1(cm), "mcc": cm_mcc(cm)}
    if cm.shape[-1] == 2:
        values["f1"] = cm_f1_binary(cm)
    return values


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


def corr_from_sums(sums: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pearson from sums of (dx, dy, dx^2, dy^2, dx dy) over n rows; 0.0 for a constant side."""
    sx, sy, sxx, syy, sxy = (sums[..., i] for i in range(5))
    mx, my, mxx, myy = safe_div(sx, n), safe_div(sy, n), safe_div(sxx, n), safe_div(syy, n)
    vx, vy = mxx - mx * mx, myy - my * my
    cov = safe_div(sxy, n) - mx * my
    constant = (vx <= CONSTANT_RTOL * mxx) | (vy <= CONSTANT_RTOL * myy)
    r = safe_div(cov, np.sqrt(np.where(constant, 0.0, vx * vy)))
    return np.clip(r, -1.0, 1.0)


def _check_n_labels(n_labels) -> int:
    if isinstance(n_labels, bool) or not isinstance(n_labels, (int, np.integer)) or n_labels < 2:
        raise HarnessError(f"n_labels must be an integer >= 2 (or None for regression), got {n_labels!r}")
    return int(n_labels)


def _vectors(pred, gold) -> tuple[np.ndarray, np.ndarray]:
    pred, gold = np.asarray(pred), np.asarray(gold)
    if pred.ndim != 1 or gold.ndim != 1:
        raise HarnessError(f"metrics need 1-D predictions and gold values, got shapes {pred.shape} and {gold.shape}")
    if len(pred) != len(gold):
        raise HarnessError(f"{len(pred)} predictions for {len(gold)} gold values",
                           hint="predict exactly one value per example")
    if len(pred) == 0:
        raise HarnessError("no examples to score")
    return pred, gold


def label_indices(values, n_labels: int, side: str) -> np.ndarray:
    """``values`` as int64 label indices in 0..n_labels-1, or HarnessError."""
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise HarnessError(f"{side} labels must be integer indices, got dtype {values.dtype}")
    as_int = values.astype(np.int64)
    if values.dtype.kind == "f" and not np.array_equal(as_int, values):
        raise HarnessError(f"{side} labels must be integer indices, got non-integral values")
    bad = (as_int < 0) | (as_int >= n_labels)
    if bad.any():
        raise HarnessError(f"{side} label {as_int[bad][0]} outside 0..{n_labels - 1}", hint=f"n_labels is {n_labels}")
    return as_int


def finite_floats(pred, gold) -> tuple[np.ndarray, np.ndarray]:
    pred, gold = _vectors(pred, gold)
    try:
        x, y = pred.astype(np.float64), gold.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise HarnessError(f"regression metrics need numbers: {e}") from None
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise HarnessError("regression predictions and gold values must be finite (no nan/inf)")
    return x, y


# ---------------------------------------------------------------- schemes
class Scheme:
    """What a board's per-example statistics mean, and the metrics their sums give."""

    kind: str = ""
    unit: str = "examples"

    @property
    def names(self) -> tuple[str, ...]:
        """Every metric, in the order :meth:`metrics` returns them."""
        raise NotImplementedError

    @property
    def n_stats(self) -> int:
        raise NotImplementedError

    def metrics(self, sums, count) -> dict[str, np.ndarray]:
        """Every metric (0-100) from column sums ``sums`` (..., S) over ``count`` (...) examples;
        nan where ``count`` is 0."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def as_dict(self) -> dict:
        raise NotImplementedError

    def correct(self, values: np.ndarray) -> np.ndarray | None:
        """1.0 where an example is right, else 0.0 (None where right/wrong has no meaning)."""
        return None

    def gold(self, values: np.ndarray) -> list | None:
        """The gold label of each row, where the statistics hold it (None otherwise)."""
        return None

    def check(self, values: np.ndarray, what: str) -> None:
        """HarnessError when ``values`` are not statistics of this scheme."""
        if values.ndim != 2 or values.shape[1] != self.n_stats:
            raise HarnessError(f"{what}: {values.shape[-1] if values.ndim else 0} statistics per example, "
                               f"a {self.describe()} board needs {self.n_stats}")
        if not np.isfinite(values).all():
            raise HarnessError(f"{what}: statistics must be finite")

    def default_metrics(self, primary: str | None = None) -> tuple[str, ...]:
        """The board's metric list for a competition metric ``primary``: (primary, a sensible second)."""
        names = self.names
        primary = primary or names[0]
        second = next((m for m in self._seconds() if m != primary), None)
        return self.check_metrics((primary, second) if second else (primary,))

    def _seconds(self) -> tuple[str, ...]:
        return self.names

    def check_metrics(self, metrics: Sequence[str] | str) -> tuple[str, ...]:
        metrics = (metrics,) if isinstance(metrics, str) else tuple(dict.fromkeys(metrics))
        unknown = [m for m in metrics if m not in self.names]
        if unknown or not metrics:
            raise HarnessError(f"unknown metric '{unknown[0] if unknown else ''}' for a {self.describe()} board",
                               hint=f"one of {', '.join(self.names)}")
        return metrics


@dataclass(frozen=True)
class MeanScheme(Scheme):
    """Columns are per-example scores in 0..1; metric k = 100 x mean of column k (QA: em, f1)."""

    columns: tuple[str, ...] = ("em", "f1")
    unit: str = "questions"
    kind = "mean"

    @property
    def names(self) -> tuple[str, ...]:
        return self.columns

    @property
    def n_stats(self) -> int:
        return len(self.columns)

    def metrics(self, sums, count) -> dict[str, np.ndarray]:
        sums, count = np.asarray(sums, dtype=np.float64), np.asarray(count, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return {m: 100.0 * sums[..., i] / count for i, m in enumerate(self.columns)}

    def describe(self) -> str:
        return "/".join(metric_label(m) for m in self.columns)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "columns": list(self.columns), "unit": self.unit}

    def correct(self, values):
        return values[:, 0]

    def check(self, values, what):
        super().check(values, what)
        if not ((values >= 0) & (values <= 1)).all():
            raise HarnessError(f"{what}: scores outside 0..1", hint="per-example scores are 0..1")


@dataclass(frozen=True)
class ConfusionScheme(Scheme):
    """One-hot confusion cells ``gold * C + pred``; GLUE's accuracy / F1 / macro-F1 / MCC."""

    n_labels: int = 2
    labels: tuple[str, ...] | None = None
    kind = "confusion"

    def __post_init__(self):
        n = _check_n_labels(self.n_labels)
        if self.labels is not None:
            labels = tuple(str(x) for x in self.labels)
            if len(labels) != n or len(set(labels)) != n:
                raise HarnessError(f"labels {list(labels)} do not name the {n} classes (distinct, in index order)")
            object.__setattr__(self, "labels", labels)

    @property
    def names(self) -> tuple[str, ...]:
        return CLASSIFICATION_METRICS if self.n_labels == 2 else tuple(m for m in CLASSIFICATION_METRICS if m != "f1")

    @property
    def n_stats(self) -> int:
        return self.n_labels ** 2

    def stats(self, pred, gold) -> np.ndarray:
        """The statistics of label indices ``pred`` and ``gold``: float64 [n, C*C]."""
        pred, gold = _vectors(pred, gold)
        c = self.n_labels
        cell = label_indices(gold, c, "gold") * c + label_indices(pred, c, "predicted")
        out = np.zeros((len(cell), c * c))
        out[np.arange(len(cell)), cell] = 1.0
        return out

    def metrics(self, sums, count) -> dict[str, np.ndarray]:
        sums = np.asarray(sums, dtype=np.float64)
        count = np.broadcast_to(np.asarray(count, dtype=np.float64), sums.shape[:-1])
        cm = sums.reshape(*sums.shape[:-1], self.n_labels, self.n_labels)
        values = confusion_metrics(cm)
        return {m: np.where(count == 0, np.nan, 100.0 * values[m]) for m in self.names}

    def describe(self) -> str:
        names = f" ({', '.join(self.labels)})" if self.labels else ""
        return f"{self.n_labels}-class classification{names}"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "n_labels": self.n_labels, "labels": None if self.labels is None else list(self.labels)}

    def correct(self, values):
        c = self.n_labels
        return values[:, [k * c + k for k in range(c)]].sum(axis=1)

    def gold(self, values):
        index = np.argmax(values, axis=1) // self.n_labels
        return [self.labels[i] if self.labels else str(i) for i in index]

    def _seconds(self):
        return ("accuracy", "f1" if self.n_labels == 2 else "macro_f1")


@dataclass(frozen=True)
class MomentsScheme(Scheme):
    """Regression: centred moments of the values and of their full-sample ranks."""

    kind = "moments"

    @property
    def names(self) -> tuple[str, ...]:
        return (*REGRESSION_METRICS, "combined")

    @property
    def n_stats(self) -> int:
        return N_REGRESSION_STATS

    def stats(self, pred, gold) -> np.ndarray:
        """dx, dy, dx*dx, dy*dy, dx*dy of the values centred by their full-sample means, then the same
        five of the average ranks. A resample's spearman is the Pearson correlation of the *full-sample*
        ranks of its rows: an approximation of re-ranking the resample (exact for the full sample)."""
        x, y = finite_floats(pred, gold)
        columns = []
        for a, b in ((x, y), (rankdata(x), rankdata(y))):
            # a constant side centres to exact zeros, so its variance is exactly 0 in every resample
            da = np.zeros_like(a) if (a == a[0]).all() else a - a.mean()
            db = np.zeros_like(b) if (b == b[0]).all() else b - b.mean()
            columns += [da, db, da * da, db * db, da * db]
        return np.stack(columns, axis=1)

    def metrics(self, sums, count) -> dict[str, np.ndarray]:
        sums = np.asarray(sums, dtype=np.float64)
        count = np.broadcast_to(np.asarray(count, dtype=np.float64), sums.shape[:-1])
        p = corr_from_sums(sums[..., :5], count)
        s = corr_from_sums(sums[..., 5:], count)
        values = {"pearson": p, "spearman": s, "combined": (p + s) / 2}
        return {m: np.where(count == 0, np.nan, 100.0 * values[m]) for m in self.names}

    def describe(self) -> str:
        return "regression"

    def as_dict(self) -> dict:
        return {"kind": self.kind}

    def _seconds(self):
        return ("pearson", "spearman")


QA = MeanScheme(("em", "f1"), "questions")
_KINDS = {"mean": MeanScheme, "confusion": ConfusionScheme, "moments": MomentsScheme}


def scheme_from_dict(value) -> Scheme:
    """A scheme from its :meth:`Scheme.as_dict` form (None: QA's); boards of the previous format
    stored ``{"task": "qa"}`` or ``{"task": "classification", "n_labels": C or None, "labels": [...]}``."""
    if value is None:
        return QA
    if isinstance(value, Scheme):
        return value
    if not isinstance(value, Mapping):
        raise HarnessError(f"unknown leaderboard scheme {value!r}")
    if "kind" not in value and value.get("task") == "qa":
        return QA
    if "kind" not in value and value.get("task") == "classification":
        n = value.get("n_labels")
        return MomentsScheme() if n is None else ConfusionScheme(n, value.get("labels"))
    kind = _KINDS.get(value.get("kind"))
    if kind is None:
        raise HarnessError(f"unknown leaderboard scheme {dict(value)!r}", hint=f"kinds: {', '.join(_KINDS)}")
    if kind is MeanScheme:
        return MeanScheme(tuple(value.get("columns") or ("em", "f1")), value.get("unit", "questions"))
    if kind is ConfusionScheme:
        return ConfusionScheme(value["n_labels"], value.get("labels"))
    return MomentsScheme()


def label_scheme(n_labels: int | None, labels: Sequence[str] | None = None) -> Scheme:
    """The scheme of a classifier with ``n_labels`` classes (None: regression)."""
    return MomentsScheme() if n_labels is None else ConfusionScheme(_check_n_labels(n_labels), labels)


def example_stats(pred, gold, n_labels: int | None) -> np.ndarray:
    """Per-example statistics of classification label indices (``n_labels`` = C) or regression values."""
    return label_scheme(n_labels).stats(pred, gold)


def stats_metrics(sums, count, n_labels: int | None) -> dict[str, np.ndarray]:
    """The metrics (0-100) from column sums of :func:`example_stats` and counts, plus ``"n"``."""
    scheme = label_scheme(n_labels)
    sums = np.asarray(sums, dtype=np.float64)
    if sums.ndim < 1 or sums.shape[-1] != scheme.n_stats:
        raise HarnessError(f"stats sums have shape {sums.shape}; expected (..., {scheme.n_stats}) for "
                           + ("regression" if n_labels is None else f"{n_labels} labels"))
    try:
        count = np.broadcast_to(np.asarray(count, dtype=np.float64), sums.shape[:-1])
    except ValueError:
        raise HarnessError(f"count shape {np.shape(count)} does not match sums shape {sums.shape}") from None
    out = scheme.metrics(sums, count)
    out["n"] = count.copy()
    return out
