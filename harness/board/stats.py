"""The statistics of the local leaderboard: schemes, per-example statistics, bootstrap intervals,
the public/private split. No SQLite here (the board itself is :mod:`harness.board.store`).

A board ranks entries by *the task's metric*. What an entry stores, and what the bootstrap
resamples, are per-example **sufficient statistics**: a float matrix ``stats[n, S]`` (one row per
question / example) whose column sums over any weighted subset, with the subset's size, give
every metric of the task. The board's **scheme** (:class:`Scheme`) says what the columns mean:

* ``{"task": "qa"}`` -- S = 2: (EM, F1) of each question in 0..1; metrics ``em`` and ``f1`` are
  100 x the column means (the numbers ``qa_scores`` reports).
* ``{"task": "classification", "n_labels": C, "labels": [...]}`` -- S = C*C, the one-hot confusion
  cell ``gold * C + pred`` (:func:`harness.tasks.clf.metrics.example_stats`); metrics accuracy,
  macro_f1, mcc (and f1 when C == 2) from :func:`harness.tasks.clf.metrics.stats_metrics`.
* ``{"task": "classification", "n_labels": None}`` -- regression: S = 10 centred moments of the
  values and their ranks; metrics pearson, spearman and combined (their mean).

Every metric is on the 0-100 scale (MCC and correlations: -100..100).

Statistics (all recomputed from the stored statistics):

* **95% intervals** -- a paired bootstrap over examples (:class:`Bootstrap`): one
  ``(RESAMPLES, n)`` matrix of draw counts made with a fixed seed and shared by all entries; a
  replicate's metrics are the scheme's function of ``counts @ stats`` (one matrix product for all
  entries). Intervals are reproducible and the difference of two entries is resampled *paired*
  (the same examples in each replicate, restricted to the examples both have).
* **public / private** -- dev ids are split 50/50 by a salted hash of the id alone
  (:func:`is_public`; stable as entries come and go), like a Kaggle public/private board: an entry
  tuned on the public part shows a public score well above its private score (the board's
  primary metric).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from harness.common.errors import HarnessError
from harness.scoring import metric_label

METRICS = ("em", "f1")  # the metrics of a QA board
RESAMPLES = 1000
SEED = 20240607
PUBLIC_SALT = "harness-public-v1"


# --------------------------------------------------------------------------- public/private split
def is_public(qid: str, salt: str = PUBLIC_SALT) -> bool:
    """Whether dev id ``qid`` belongs to the simulated public board (a fixed 50/50 hash split)."""
    digest = hashlib.sha256(f"{salt}\0{qid}".encode()).digest()
    return digest[0] < 128


# --------------------------------------------------------------------------- schemes
@dataclass(frozen=True)
class Scheme:
    """What the per-example statistics of a board mean, and the metrics they give.

    ``task`` "qa", or "classification" with ``n_labels`` classes (``labels`` their names in index
    order) or ``n_labels`` None for regression. Build one with :meth:`of`.
    """

    task: str = "qa"
    n_labels: int | None = None
    labels: tuple[str, ...] | None = None

    @classmethod
    def of(cls, value) -> Scheme:
        """A Scheme from None (QA), a Scheme, or its dict form ``{"task": ..., "n_labels": ..., "labels": ...}``."""
        if value is None or isinstance(value, Scheme):
            return value or QA
        if not isinstance(value, Mapping) or value.get("task") not in ("qa", "classification"):
            raise HarnessError(f"unknown leaderboard scheme {value!r}",
                               hint='{"task": "qa"} or {"task": "classification", "n_labels": C or None, '
                                    '"labels": [...]}')
        if value["task"] == "qa":
            return QA
        n, labels = value.get("n_labels"), value.get("labels")
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2):
            raise HarnessError(f"a classification board needs n_labels >= 2 (None: regression), got {n!r}")
        if labels is not None:
            labels = tuple(str(x) for x in labels)
            if n is None or len(labels) != n or len(set(labels)) != n:
                raise HarnessError(f"labels {list(labels)} do not name the {n} classes (distinct, in index order)")
        return cls("classification", None if n is None else int(n), labels)

    def as_dict(self) -> dict:
        if self.task == "qa":
            return {"task": "qa"}
        out = {"task": "classification", "n_labels": self.n_labels}
        if self.labels is not None:
            out["labels"] = list(self.labels)
        return out

    @property
    def kind(self) -> str:
        """"qa", "classification" or "regression"."""
        return "regression" if self.task == "classification" and self.n_labels is None else self.task

    @property
    def unit(self) -> str:
        return "questions" if self.task == "qa" else "examples"

    def describe(self) -> str:
        if self.kind != "classification":
            return "QA" if self.task == "qa" else "regression"
        names = f" ({', '.join(self.labels)})" if self.labels else ""
        return f"{self.n_labels}-class classification{names}"

    @cached_property
    def n_stats(self) -> int:
        """S, the number of statistics per example."""
        if self.task == "qa":
            return 2
        from harness.tasks.clf.metrics import example_stats

        dummy = np.zeros(1, dtype=np.int64 if self.n_labels else np.float64)
        return int(example_stats(dummy, dummy, self.n_labels).shape[1])

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Every metric of the task, in the order the metric function returns them."""
        return tuple(self.metrics(np.zeros(self.n_stats), 1.0))

    def metrics(self, sums, count) -> dict[str, np.ndarray]:
        """Every metric (0-100) from column sums ``sums`` (..., S) over ``count`` (...) examples."""
        sums = np.asarray(sums, dtype=np.float64)
        count = np.asarray(count, dtype=np.float64)
        if self.task == "qa":
            with np.errstate(invalid="ignore", divide="ignore"):
                return {"em": 100.0 * sums[..., 0] / count, "f1": 100.0 * sums[..., 1] / count}
        from harness.tasks.clf.metrics import stats_metrics

        out = stats_metrics(sums, count, self.n_labels)
        out.pop("n", None)
        return out

    def default_metrics(self, primary: str | None = None) -> tuple[str, str]:
        """The board's metric list for competition metric ``primary``: (primary, a sensible second)."""
        if self.task == "qa":
            primary = primary or "em"
            second = "f1" if primary == "em" else "em"
        elif self.n_labels is None:
            primary = primary or "pearson"
            second = "spearman" if primary == "pearson" else "pearson"
        else:
            primary = primary or "accuracy"
            second = "accuracy" if primary != "accuracy" else "f1" if self.n_labels == 2 else "macro_f1"
        return self.check_metrics((primary, second))

    def check_metrics(self, metrics: Sequence[str]) -> tuple[str, ...]:
        metrics = (metrics,) if isinstance(metrics, str) else tuple(dict.fromkeys(metrics))
        unknown = [m for m in metrics if m not in self.names]
        if unknown or not metrics:
            raise HarnessError(f"unknown metric '{unknown[0] if unknown else ''}' for a {self.describe()} board",
                               hint=f"one of {', '.join(self.names)}")
        return metrics


QA = Scheme()


# --------------------------------------------------------------------------- per-example statistics
class Stats:
    """One entry's per-example statistics: ``ids`` and the float matrix ``values`` [n, S]."""

    __slots__ = ("ids", "values")

    def __init__(self, ids: Sequence[str], values):
        self.ids = [str(q) for q in ids]
        values = np.asarray(values, dtype=np.float64)
        self.values = values.reshape(len(self.ids), -1) if values.size else np.zeros((len(self.ids), 0))

    @classmethod
    def from_json(cls, text: str | None) -> Stats | None:
        if not text:
            return None
        d = json.loads(text)
        if "stats" not in d:  # the previous schema's {"ids", "em", "f1"}
            return cls(d["ids"], np.stack([d["em"], d["f1"]], axis=1))
        return cls(d["ids"], d["stats"])

    def to_json(self) -> str:
        return json.dumps({"ids": self.ids, "stats": self.values.tolist()}, ensure_ascii=False)

    def as_dict(self) -> dict[str, tuple[float, ...]]:
        return {q: tuple(float(x) for x in row) for q, row in zip(self.ids, self.values)}

    def metrics(self, scheme: Scheme, keep=None) -> dict[str, float | None]:
        """Every metric of ``scheme`` on all rows (or the rows ``keep`` selects); None where undefined."""
        v = self.values if keep is None else self.values[keep]
        return _clean(scheme.metrics(v.sum(axis=0), len(v)))

    def __len__(self) -> int:
        return len(self.ids)


def _check_stats(per_id, scheme: Scheme, what: str) -> Stats | None:
    """``{id: row}`` (QA: ``{id: (em, f1)}``), an ``(ids, stats)`` pair or a Stats, checked for ``scheme``."""
    if per_id is None:
        return None
    if isinstance(per_id, Mapping):
        rows = []
        for qid, row in per_id.items():
            try:
                row = [float(x) for x in row]
            except (TypeError, ValueError):
                row = None
            if row is None or len(row) != scheme.n_stats:
                need = "an (em, f1) pair" if scheme.task == "qa" else f"{scheme.n_stats} statistics"
                raise HarnessError(f"{what}: question {qid!r} needs {need}, got {per_id[qid]!r}")
            if scheme.task == "qa" and not all(0.0 <= x <= 1.0 for x in row):
                raise HarnessError(f"{what}: question {qid!r} has scores {per_id[qid]!r} outside 0..1",
                                   hint="per-question scores are 0..1 (qa_scores()['per_id'])")
            rows.append(row)
        stats = Stats(list(per_id), rows)
    elif isinstance(per_id, Stats):
        stats = per_id
    else:
        try:
            ids, values = per_id
            stats = Stats(ids, values)
        except (TypeError, ValueError):
            raise HarnessError(f"{what}: expected {{id: statistics}} or an (ids, stats[n, S]) pair") from None
    if not len(stats):
        raise HarnessError(f"{what}: no questions scored")
    if stats.values.shape[1] != scheme.n_stats:
        raise HarnessError(f"{what}: {stats.values.shape[1]} statistics per example, "
                           f"a {scheme.describe()} board needs {scheme.n_stats}")
    if len(set(stats.ids)) != len(stats.ids):
        raise HarnessError(f"{what}: duplicate ids")
    if not np.isfinite(stats.values).all():
        raise HarnessError(f"{what}: statistics must be finite")
    if scheme.task == "qa" and not ((stats.values >= 0) & (stats.values <= 1)).all():
        raise HarnessError(f"{what}: scores outside 0..1", hint="per-question scores are 0..1 (qa_scores()['per_id'])")
    return stats


def _clean(metrics: Mapping) -> dict[str, float | None]:
    out = {}
    for k, v in metrics.items():
        v = float(v)
        out[k] = None if math.isnan(v) else v
    return out


# --------------------------------------------------------------------------- bootstrap
@dataclass
class Interval:
    lo: float
    hi: float

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def __str__(self) -> str:
        return f"[{self.lo:.2f}, {self.hi:.2f}]"


def _as_stats(per_id) -> Stats:
    if isinstance(per_id, Stats):
        return per_id
    if isinstance(per_id, Mapping):
        return Stats(list(per_id), [list(p) for p in per_id.values()])
    ids, values = per_id
    return Stats(ids, values)


class Bootstrap:
    """Paired bootstrap over a fixed example list: one count matrix shared by every entry.

    ``counts[b, j]`` is how often example ``j`` was drawn in replicate ``b`` (from a
    ``(resamples, n)`` matrix of indices drawn once with ``seed``), so the replicate column sums
    of every entry's statistics are one matrix product, and the scheme's metric function turns
    them into replicate metrics. An entry may lack examples (``mask``): its replicate then covers
    the drawn examples it has (the replicate count is ``counts @ mask``).
    """

    def __init__(self, ids: Sequence[str], resamples: int = RESAMPLES, seed: int = SEED):
        self.ids = list(ids)
        self.pos = {q: j for j, q in enumerate(self.ids)}
        self._aligned: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        n = len(self.ids)
        rng = np.random.default_rng(seed)
        self.counts = np.zeros((resamples, n), dtype=np.float64)
        chunk = max(1, 2_000_000 // max(n, 1))  # index rows drawn per step, to bound memory
        for start in range(0, resamples if n else 0, chunk):
            rows = min(chunk, resamples - start)
            index = rng.integers(0, n, size=(rows, n))
            flat = (index + n * np.arange(rows)[:, None]).ravel()
            self.counts[start:start + rows] = np.bincount(flat, minlength=rows * n).reshape(rows, n)

    def align(self, per_id) -> tuple[np.ndarray, np.ndarray]:
        """The statistics of ``per_id`` (a Stats or ``{id: row}``) on ``ids`` (n, S; zero rows where
        missing) and the has-a-row mask (n,)."""
        stats = _as_stats(per_id)
        if stats.ids == self.ids:
            return stats.values, np.ones(len(self.ids))
        key = tuple(stats.ids)  # entries usually share one id order: align it once
        if key not in self._aligned:
            index = np.fromiter((self.pos.get(q, -1) for q in stats.ids), dtype=np.int64, count=len(stats))
            self._aligned[key] = (index >= 0, index[index >= 0])
        keep, target = self._aligned[key]
        values = np.zeros((len(self.ids), stats.values.shape[1]))
        mask = np.zeros(len(self.ids))
        values[target] = stats.values[keep]
        mask[target] = 1.0
        return values, mask

    def vectors(self, per_id, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Statistic ``k`` (QA: 0 = EM, 1 = F1) of ``per_id`` aligned to ``ids``, and the has-a-value mask."""
        values, mask = self.align(per_id)
        return values[:, k].copy(), mask

    def replicates(self, values: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Replicate means x100 of plain per-example ``values``/``masks`` (n, E): shape (resamples, E)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * (self.counts @ (values * masks)) / (self.counts @ masks)

    def metric_replicates(self, scheme: Scheme, entries: Sequence) -> dict[str, np.ndarray]:
        """Every metric of ``scheme`` for each of ``entries`` (Stats or ``{id: row}``) in every
        replicate: ``{metric: (resamples, E)}``."""
        n, parts = len(self.ids), []
        step = max(1, 4_000_000 // max(1, n * scheme.n_stats))  # entries per product, to bound memory
        for start in range(0, len(entries), step):
            aligned = [self.align(e) for e in entries[start:start + step]]
            values = np.stack([v * m[:, None] for v, m in aligned], axis=1)  # (n, E, S)
            masks = np.stack([m for _, m in aligned], axis=1)  # (n, E)
            sums = (self.counts @ values.reshape(n, -1)).reshape(len(self.counts), *values.shape[1:])
            parts.append(scheme.metrics(sums, self.counts @ masks))
        return {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]} if parts else {}

    @staticmethod
    def interval(replicates: np.ndarray, level: float = 0.95) -> list[Interval]:
        tail = 100 * (1 - level) / 2
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
        return [Interval(float(a), float(b)) for a, b in zip(np.atleast_1d(lo), np.atleast_1d(hi))]

    def difference(self, a, b, metric: str = "em", scheme: Scheme = QA, level: float = 0.95) -> tuple[float, Interval]:
        """Point difference a - b of ``metric`` over the examples both have, and its paired interval."""
        va, ma = self.align(a)
        vb, mb = self.align(b)
        both = ma * mb
        if not both.any():
            return math.nan, Interval(math.nan, math.nan)
        values = np.stack([va, vb], axis=1) * both[:, None, None]  # (n, 2, S)
        point = scheme.metrics(values.sum(axis=0), both.sum())[metric]
        sums = (self.counts @ values.reshape(len(both), -1)).reshape(len(self.counts), 2, -1)
        reps = scheme.metrics(sums, (self.counts @ both)[:, None])[metric]
        return float(point[0] - point[1]), self.interval((reps[:, 0] - reps[:, 1])[:, None], level)[0]


@dataclass
class TopTwo:
    """The paired-bootstrap comparison of the two best entries."""

    first: str
    second: str
    metric: str
    split: str
    diff: float
    ci: Interval

    @property
    def differ(self) -> bool:
        return self.ci.excludes_zero()

    def format(self) -> str:
        return (f"top two differ: {'yes' if self.differ else 'no'} (diff 95% CI {self.ci}; "
                f"{self.first} - {self.second} {self.split} {metric_label(self.metric)} {self.diff:+.2f})")


def _union_ids(stats) -> list[str]:
    """The sorted union of the ids of several statistics sets (the bootstrap's example list)."""
    seen: set[str] = set()
    for s in stats:
        if s is not None:
            seen.update(s.ids if isinstance(s, Stats) else s)
    return sorted(seen)
