"""The statistics of the local leaderboard: per-example statistics, bootstrap intervals, the
public/private split. No SQLite here (the store is :mod:`harness.board.store`).

A board ranks entries by *the task's metric*. What an entry stores, and what the bootstrap
resamples, are per-example **sufficient statistics**: a float matrix ``stats[n, S]`` (one row per
question / example) whose column sums over any weighted subset, with the subset's size, give
every metric of the task. What the columns mean is the board's **scheme**
(:mod:`harness.scores`: per-example means for QA's EM/F1, confusion cells for classification,
moments for regression), handed over by whoever records an entry: the board never imports a task.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.common.errors import HarnessError
from harness.scores import QA, Scheme, metric_label

RESAMPLES = 1000
SEED = 20240607
PUBLIC_SALT = "harness-public-v1"


# --------------------------------------------------------------------------- public/private split
def is_public(qid: str, salt: str = PUBLIC_SALT) -> bool:
    """Whether dev id ``qid`` belongs to the simulated public board (a fixed 50/50 hash split)."""
    digest = hashlib.sha256(f"{salt}\0{qid}".encode()).digest()
    return digest[0] < 128


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
    """``{id: row}``, an ``(ids, stats)`` pair or a Stats, checked for ``scheme``."""
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
                raise HarnessError(f"{what}: example {qid!r} needs {scheme.n_stats} statistics "
                                   f"({', '.join(scheme.names[:scheme.n_stats])}), got {per_id[qid]!r}")
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
        raise HarnessError(f"{what}: no examples scored")
    if len(set(stats.ids)) != len(stats.ids):
        raise HarnessError(f"{what}: duplicate ids")
    scheme.check(stats.values, what)
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
