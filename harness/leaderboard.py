"""The local leaderboard: every submission (or run) scored per example, ranked, compared, exported.

A board ranks entries by *the task's metric*. What an entry stores, and what the bootstrap
resamples, are per-example **sufficient statistics**: a float matrix ``stats[n, S]`` (one row per
question / example) whose column sums over any weighted subset, with the subset's size, give
every metric of the task. The board's **scheme** says what the columns mean:

* ``{"task": "qa"}`` -- S = 2: (EM, F1) of each question in 0..1; metrics ``em`` and ``f1`` are
  100 x the column means (the numbers ``qa_scores`` reports).
* ``{"task": "classification", "n_labels": C, "labels": [...]}`` -- S = C*C, the one-hot confusion
  cell ``gold * C + pred`` (:func:`harness.clf.metrics.example_stats`); metrics accuracy,
  macro_f1, mcc (and f1 when C == 2) from :func:`harness.clf.metrics.stats_metrics`.
* ``{"task": "classification", "n_labels": None}`` -- regression: S = 10 centred moments of the
  values and their ranks; metrics pearson, spearman and combined (their mean).

Each board holds one scheme and a metric list, primary first (QA: em, f1; CoLA e.g. mcc,
accuracy): both are fixed by the first add, and adding an entry of another scheme raises (one
board per competition). Every metric is on the 0-100 scale (MCC and correlations: -100..100).

One SQLite file, ``<workspace>/leaderboard/board.sqlite`` (delete it to reset the board):

    meta      key/value JSON: ``scheme`` and ``metrics`` (the board's metric list, primary first)
    entries   one row per name (re-adding a name replaces its row, keeping its id): members, the
              number of scored dev/test examples, JSON dicts of every metric of the task on dev,
              on its public and private halves and on test, the per-example statistics (JSON
              ``{"ids": [...], "stats": [[...], ...]}``) and the dev/test predictions
    events    one row per ``add_entry`` call, never rewritten: the history behind the rank-change
              column and the scores-over-time chart (the same metric dicts)

A file of the previous, QA-only schema (columns ``dev_em``, ``dev_f1``, ...) is migrated in place
the first time it is opened. The file is opened in WAL mode with a busy timeout, each call on a
fresh connection and every write in one ``BEGIN IMMEDIATE`` transaction, so several processes may
add entries at once.

Statistics (all recomputed from the stored statistics):

* **95% intervals** -- a paired bootstrap over examples: one ``(RESAMPLES, n)`` matrix of draw
  counts made with a fixed seed and shared by all entries; a replicate's metrics are the scheme's
  function of ``counts @ stats`` (one matrix product for all entries). Intervals are reproducible
  and the difference of two entries is resampled *paired* (the same examples in each replicate,
  restricted to the examples both have).
* **public / private** -- dev ids are split 50/50 by a salted hash of the id alone (stable as
  entries come and go), like a Kaggle public/private board: an entry tuned on the public part
  shows a public score well above its private score (the board's primary metric).
* **test** -- when the test labels are known entries carry test scores too: a local private
  leaderboard (``split="test"``).

Adding: :func:`record_submission` (QA predictions and gold examples) and
:func:`record_classification` (label names or regression values) score and add in one call;
:meth:`Leaderboard.add_entry` takes the statistics directly.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import numbers
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.scoring import metric_label  # noqa: F401  (re-exported)

FILENAME = "board.sqlite"
KINDS = ("submission", "run")
SPLITS = ("dev", "test")
METRICS = ("em", "f1")  # the metrics of a QA board
RESAMPLES = 1000
SEED = 20240607
PUBLIC_SALT = "harness-public-v1"
BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                 -- JSON
);
CREATE TABLE IF NOT EXISTS entries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    members         TEXT NOT NULL,      -- JSON list of run / trial names
    created         REAL NOT NULL,      -- unix seconds
    seq             INTEGER NOT NULL,   -- events.seq of the add that wrote this row
    dev_n           INTEGER,
    test_n          INTEGER,
    dev_metrics     TEXT,               -- JSON {metric: value (0-100)}, every metric of the task
    public_metrics  TEXT,               -- the same on the public / private halves of dev
    private_metrics TEXT,
    test_metrics    TEXT,
    dev_per_id      TEXT,               -- JSON {"ids": [...], "stats": [[...], ...]}
    test_per_id     TEXT,
    dev_predictions TEXT,               -- JSON {id: answer, label or value}
    test_predictions TEXT,
    extra           TEXT                -- JSON object
);
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created    REAL NOT NULL,
    replaced   INTEGER NOT NULL,        -- 1 when the add replaced an entry of the same name
    dev_metrics TEXT, public_metrics TEXT, private_metrics TEXT, test_metrics TEXT
);
"""

_METRIC_COLUMNS = ("dev_metrics", "public_metrics", "private_metrics", "test_metrics")

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
        from harness.clf.metrics import example_stats

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
        from harness.clf.metrics import stats_metrics

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


def _split_metrics(scheme: Scheme, dev: Stats | None, test: Stats | None) -> dict[str, dict | None]:
    """The four metric dicts of an entry: dev, its public and private halves, test."""
    out = dict.fromkeys(_METRIC_COLUMNS)
    if dev is not None:
        public = np.array([is_public(q) for q in dev.ids], dtype=bool)
        out["dev_metrics"] = dev.metrics(scheme)
        out["public_metrics"] = dev.metrics(scheme, public)
        out["private_metrics"] = dev.metrics(scheme, ~public)
    if test is not None:
        out["test_metrics"] = test.metrics(scheme)
    return out


def _clean(metrics: Mapping) -> dict[str, float | None]:
    out = {}
    for k, v in metrics.items():
        v = float(v)
        out[k] = None if math.isnan(v) else v
    return out


def _created(created) -> float:
    if created is None:
        return time.time()
    if isinstance(created, datetime):
        return created.timestamp()
    if isinstance(created, str):
        return datetime.fromisoformat(created).timestamp()
    return float(created)


def _fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


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


# --------------------------------------------------------------------------- the board
class Leaderboard:
    """The local leaderboard stored in one SQLite file (created on the first write)."""

    def __init__(self, path):
        if hasattr(path, "leaderboard"):  # a Workspace
            path = path.leaderboard
        path = Path(path)
        self.path = path / FILENAME if path.is_dir() or path.suffix == "" else path

    @classmethod
    def for_workspace(cls, ws) -> Leaderboard:
        """The board of a :class:`~harness.workspace.Workspace`: ``leaderboard/board.sqlite``."""
        return cls(Path(ws.leaderboard) / FILENAME)

    # ---------------------------------------------------------------- connections
    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not self.path.exists():
            if not create:
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._wal(con)
            con.execute("PRAGMA synchronous = NORMAL")
            if self._has_schema(con):
                self._migrate(con)
            elif create:
                con.executescript(_SCHEMA)  # IF NOT EXISTS: racing creators are harmless
        except BaseException:
            con.close()
            raise
        return con

    @staticmethod
    def _wal(con: sqlite3.Connection) -> None:
        # switching to WAL needs an exclusive moment; a racing first open may report "locked"
        # without waiting on the busy handler, so retry briefly
        for attempt in range(200):
            try:
                if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    con.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                time.sleep(0.01 * (1 + attempt % 10))
        raise HarnessError(f"leaderboard {_db_path(con)} stays locked", hint="is another process stuck on it?")

    @staticmethod
    def _has_schema(con: sqlite3.Connection) -> bool:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {"entries", "events"} <= names

    @staticmethod
    def _migrate(con: sqlite3.Connection) -> None:
        """Rewrite a board of the previous, QA-only schema (``dev_em``, ``dev_f1``, ... columns) in place."""
        if "dev_em" not in _columns(con, "entries"):
            return
        con.execute("BEGIN IMMEDIATE")
        try:
            if "dev_em" in _columns(con, "entries"):  # unless a racing process just did it
                entries, events = _fetch(con, "entries ORDER BY id"), _fetch(con, "events ORDER BY seq")
                con.execute("ALTER TABLE entries RENAME TO entries_v1")
                con.execute("ALTER TABLE events RENAME TO events_v1")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
                for r in entries:
                    dev, test = Stats.from_json(r["dev_per_id"]), Stats.from_json(r["test_per_id"])
                    row = {k: r[k] for k in ("id", "name", "kind", "members", "created", "seq", "dev_n", "test_n",
                                             "dev_predictions", "test_predictions", "extra")}
                    row["dev_per_id"], row["test_per_id"] = (s.to_json() if s else None for s in (dev, test))
                    row.update({k: _dumps(v) for k, v in _split_metrics(QA, dev, test).items()})
                    _insert(con, "entries", row)
                for e in events:
                    pair = {s: None if e[f"{s}_em"] is None else {"em": e[f"{s}_em"], "f1": e[f"{s}_f1"]}
                            for s in SPLITS}
                    half = {s: None if e[f"{s}_em"] is None else {"em": e[f"{s}_em"]} for s in ("public", "private")}
                    _insert(con, "events", {
                        **{k: e[k] for k in ("seq", "name", "kind", "created", "replaced")},
                        "dev_metrics": _dumps(pair["dev"]), "public_metrics": _dumps(half["public"]),
                        "private_metrics": _dumps(half["private"]), "test_metrics": _dumps(pair["test"])})
                con.execute("DROP TABLE entries_v1")
                con.execute("DROP TABLE events_v1")
                _write_meta(con, QA, METRICS)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _read(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        con = self._connect(create=False)
        if con is None:
            return []
        try:
            if not self._has_schema(con):
                return []
            con.row_factory = sqlite3.Row
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    # ---------------------------------------------------------------- the board's scheme
    def _info(self) -> tuple[Scheme, tuple[str, ...]]:
        meta = {r["key"]: json.loads(r["value"]) for r in self._read("SELECT key, value FROM meta")}
        scheme = Scheme.of(meta.get("scheme"))
        return scheme, tuple(meta.get("metrics") or scheme.default_metrics())

    @property
    def scheme(self) -> Scheme:
        """The board's scheme (QA for an empty board): fixed by the first add."""
        return self._info()[0]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The board's metric list, primary first (QA: em, f1): fixed by the first add."""
        return self._info()[1]

    # ---------------------------------------------------------------- writing
    def add_entry(
        self,
        name: str,
        kind: str = "submission",
        members: Sequence[str] = (),
        dev_per_id=None,
        test_per_id=None,
        extra: Mapping | None = None,
        created=None,
        dev_predictions: Mapping | None = None,
        test_predictions: Mapping | None = None,
        *,
        scheme: Scheme | Mapping | None = None,
        metrics: Sequence[str] | None = None,
    ) -> int:
        """Add (or replace, by ``name``) one entry; returns its id (kept when replacing).

        ``dev_per_id``/``test_per_id`` are the per-example statistics of ``scheme`` (default QA):
        ``{id: row}`` -- for QA ``{id: (em, f1)}`` in 0..1 as ``qa_scores`` gives them -- or an
        ``(ids, stats[n, S])`` pair (``harness.clf.metrics.example_stats``); the metrics are
        computed from them. The first add fixes the board's scheme and ``metrics`` (primary first;
        default ``scheme.default_metrics()``); an entry of another scheme raises. ``created`` is
        unix seconds, a datetime or an ISO string (default: now). ``dev_predictions``
        (``{id: answer or label}``) feed :meth:`compare`.
        """
        if not name or not str(name).strip():
            raise HarnessError("a leaderboard entry needs a name")
        if kind not in KINDS:
            raise HarnessError(f"unknown entry kind '{kind}'", hint=f"one of {', '.join(KINDS)}")
        if isinstance(members, str):
            members = [members]
        scheme = Scheme.of(scheme)
        metrics = scheme.default_metrics() if metrics is None else scheme.check_metrics(metrics)
        dev = _check_stats(dev_per_id, scheme, f"entry '{name}' dev scores")
        test = _check_stats(test_per_id, scheme, f"entry '{name}' test scores")
        scores = {k: _dumps(v) for k, v in _split_metrics(scheme, dev, test).items()}
        ts = _created(created)
        row = {
            "name": str(name), "kind": kind, "members": json.dumps([str(m) for m in members]), "created": ts,
            "dev_n": len(dev) if dev else None, "test_n": len(test) if test else None, **scores,
            "dev_per_id": dev.to_json() if dev else None, "test_per_id": test.to_json() if test else None,
            "dev_predictions": _dumps_predictions(dev_predictions),
            "test_predictions": _dumps_predictions(test_predictions),
            "extra": json.dumps(dict(extra or {}), ensure_ascii=False, default=str),
        }
        con = self._connect(create=True)
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                board = dict(con.execute("SELECT key, value FROM meta WHERE key = 'scheme'").fetchall())
                if not board:
                    _write_meta(con, scheme, metrics)
                elif Scheme.of(json.loads(board["scheme"])) != scheme:
                    raise HarnessError(
                        f"this leaderboard ranks {Scheme.of(json.loads(board['scheme'])).describe()} entries; "
                        f"entry '{name}' is {scheme.describe()}",
                        hint=f"one board per competition: delete {self.path} to reset it")
                replaced = con.execute("SELECT 1 FROM entries WHERE name = ?", (row["name"],)).fetchone() is not None
                row["seq"] = _insert(con, "events", {"name": row["name"], "kind": kind, "created": ts,
                                                     "replaced": int(replaced), **scores})
                cols = list(row)
                con.execute(
                    f"INSERT INTO entries ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                    f"ON CONFLICT(name) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in cols if c != 'name')}",
                    [row[c] for c in cols],
                )
                entry_id = con.execute("SELECT id FROM entries WHERE name = ?", (row["name"],)).fetchone()[0]
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()
        return int(entry_id)

    def remove(self, name: str) -> bool:
        """Drop an entry (its history events stay, for the chart). True if it existed."""
        con = self._connect(create=False)
        if con is None:
            return False
        try:
            if not self._has_schema(con):
                return False
            con.execute("BEGIN IMMEDIATE")
            gone = con.execute("DELETE FROM entries WHERE name = ?", (name,)).rowcount > 0
            con.execute("COMMIT")
            return gone
        finally:
            con.close()

    # ---------------------------------------------------------------- reading
    def __len__(self) -> int:
        rows = self._read("SELECT COUNT(*) AS n FROM entries")
        return int(rows[0]["n"]) if rows else 0

    def names(self) -> list[str]:
        return [r["name"] for r in self._read("SELECT name FROM entries ORDER BY seq")]

    def _row(self, name: str) -> dict:
        rows = self._read("SELECT * FROM entries WHERE name = ?", (name,))
        if not rows:
            known = self.names()
            raise HarnessError(f"no leaderboard entry named '{name}'",
                               hint=f"known: {', '.join(known[-10:])}" if known else "the leaderboard is empty")
        return _parse_row(rows[0])

    def entry(self, name: str) -> dict:
        """One entry with everything stored, parsed: ``dev_per_id``/``test_per_id`` as ``{id: stats
        row}`` (QA: ``(em, f1)``), the metric dicts, and each metric flat as ``dev_<metric>``,
        ``public_<metric>``, ``private_<metric>``, ``test_<metric>`` (None where not scored)."""
        r, names = self._row(name), self.scheme.names
        for split in SPLITS:
            stats = Stats.from_json(r[f"{split}_per_id"])
            r[f"{split}_per_id"] = stats.as_dict() if stats is not None else None
        for column in _METRIC_COLUMNS:
            prefix = column.split("_")[0]
            for metric in names:
                r[f"{prefix}_{metric}"] = (r[column] or {}).get(metric)
        return r

    def events(self) -> pd.DataFrame:
        """Every add, oldest first (replaced versions included): ``dev_<metric>``/``test_<metric>``
        for the board's metrics and ``public_``/``private_<primary>``."""
        metrics = self.metrics
        scores = _score_columns(metrics)
        out = []
        for e in self._read("SELECT * FROM events ORDER BY seq"):
            e = _parse_row(e)
            row = {k: e[k] for k in ("seq", "name", "kind", "created", "replaced")}
            for col in scores:
                prefix, metric = col.split("_", 1)
                row[col] = (e[f"{prefix}_metrics"] or {}).get(metric)
            out.append(row)
        return pd.DataFrame(out, columns=["seq", "name", "kind", "created", "replaced", *scores]).astype(
            dict.fromkeys(scores, float))

    def _load(self) -> list[dict]:
        rows = self._read("SELECT id, name, kind, members, created, seq, dev_n, test_n, dev_metrics, public_metrics, "
                          "private_metrics, test_metrics, dev_per_id, test_per_id, extra FROM entries")
        return [_parse_row(r) for r in rows]

    def entries(self, by: str | None = None, split: str = "dev", intervals: bool = True) -> pd.DataFrame:
        """The ranked board as a DataFrame, best first.

        Ranked by ``split`` metric ``by`` (one of :attr:`metrics`; default the primary), ties
        broken by the board's other metrics in order, then to the earlier entry. With
        ``split="test"`` only entries with test scores are ranked. Columns are named after the
        board's metrics (QA: ``em``, ``f1``, ``em_lo``, ..., ``dev_em``, ``public_em``, ...).
        ``change`` is the rank now against the rank before the newest add ("new" for an entry
        that add created, "+k" moved up k places, "-k" down, "=" unchanged). ``<metric>_lo``/
        ``_hi`` are paired-bootstrap 95% bounds over examples; ``ci_lo``/``ci_hi`` those of ``by``.
        """
        scheme, metrics = self._info()
        by = _check_by(by, metrics, scheme)
        _check_choice(split, SPLITS, "split")
        rows = self._load()
        intervals_cols = [f"{m}_{end}" for m in metrics for end in ("lo", "hi")]
        scores = _score_columns(metrics)
        columns = ["rank", "change", "name", "kind", "members", "n", *metrics, *intervals_cols, *scores,
                   "created", "id", "extra"]
        ranked = [r for r in rows if r[f"{split}_metrics"] is not None]
        if not ranked:
            return pd.DataFrame(columns=columns)
        ranked = _rank(ranked, by, metrics, split)
        before = self._ranks_before(by, metrics, split)
        newest = max(r["seq"] for r in rows)
        bounds: dict[str, list[Interval]] = {}
        if intervals:
            stats = [Stats.from_json(r[f"{split}_per_id"]) for r in ranked]
            reps = Bootstrap(_union_ids(stats)).metric_replicates(scheme, stats)
            bounds = {m: Bootstrap.interval(reps[m]) for m in metrics}
        out = []
        for i, r in enumerate(ranked, 1):
            if r["name"] not in before:
                change = "new" if r["seq"] == newest else "="
            else:
                change = _change(before[r["name"]] - i)
            row = {"rank": i, "change": change, "name": r["name"], "kind": r["kind"], "members": r["members"],
                   "n": r[f"{split}_n"], **{m: r[f"{split}_metrics"].get(m) for m in metrics}}
            for m in metrics:
                iv = bounds[m][i - 1] if bounds else Interval(math.nan, math.nan)
                row[f"{m}_lo"], row[f"{m}_hi"] = iv.lo, iv.hi
            for col in scores:
                prefix, metric = col.split("_", 1)
                row[col] = (r[f"{prefix}_metrics"] or {}).get(metric)
            out.append({**row, "created": r["created"], "id": r["id"], "extra": r["extra"]})
        df = pd.DataFrame(out, columns=columns)
        num = [*metrics, *intervals_cols, *scores]
        df[num] = df[num].astype(float)
        df["ci_lo"], df["ci_hi"] = df[f"{by}_lo"], df[f"{by}_hi"]
        return df

    def _ranks_before(self, by: str, metrics: Sequence[str], split: str) -> dict[str, int]:
        """Ranks of the board as it stood just before the newest add (from the event history)."""
        events = self._read("SELECT * FROM events ORDER BY seq")
        live = set(self.names())
        if not events:
            return {}
        latest: dict[str, dict] = {}
        for e in events[:-1]:
            if e["name"] in live:
                latest[e["name"]] = _parse_row(e)
        ranked = _rank([e for e in latest.values() if e[f"{split}_metrics"] is not None], by, metrics, split)
        return {e["name"]: i for i, e in enumerate(ranked, 1)}

    def top_two(self, by: str | None = None, split: str = "dev") -> TopTwo | None:
        """Paired-bootstrap interval of (best - second best) on ``by``; None with fewer than two entries."""
        scheme, metrics = self._info()
        by = _check_by(by, metrics, scheme)
        _check_choice(split, SPLITS, "split")
        ranked = _rank([r for r in self._load() if r[f"{split}_metrics"] is not None], by, metrics, split)
        if len(ranked) < 2:
            return None
        a, b = ranked[0], ranked[1]
        sa, sb = Stats.from_json(a[f"{split}_per_id"]), Stats.from_json(b[f"{split}_per_id"])
        diff, ci = Bootstrap(_union_ids([sa, sb])).difference(sa, sb, by, scheme)
        return TopTwo(a["name"], b["name"], by, split, diff, ci)

    def difference(self, a: str, b: str, by: str | None = None, split: str = "dev") -> tuple[float, Interval]:
        """Paired-bootstrap difference a - b of two named entries on metric ``by`` (any metric of the
        task; default the board's primary) over the examples both have, and its 95% interval."""
        scheme, metrics = self._info()
        by = metrics[0] if by is None else scheme.check_metrics(by)[0]
        _check_choice(split, SPLITS, "split")
        sa, sb = (Stats.from_json(self._row(x)[f"{split}_per_id"]) for x in (a, b))
        if sa is None or sb is None:
            raise HarnessError(f"both entries need {split} scores to be compared")
        return Bootstrap(_union_ids([sa, sb])).difference(sa, sb, by, scheme)

    # ---------------------------------------------------------------- compare
    def compare(
        self,
        a: str,
        b: str,
        gold_answers: Mapping[str, Sequence[str]] | None = None,
        predictions_a: Mapping[str, str] | None = None,
        predictions_b: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """The dev examples where exactly one of entries ``a`` and ``b`` is right, and which.

        QA: right = EM 1; columns ``id``, ``right`` (the name of the entry that is right),
        ``em_a``, ``em_b``, ``answer_a``, ``answer_b`` (stored dev predictions unless given) and
        ``gold`` (" | "-joined references, when ``gold_answers`` is given). Classification: right
        = the predicted label is the gold one; columns ``id``, ``right``, ``answer_a``,
        ``answer_b`` and ``gold`` (the gold label, read from the stored statistics unless given).
        Rows follow the order of ``a``'s examples. A regression board raises.
        """
        scheme = self.scheme
        if scheme.kind == "regression":
            raise HarnessError("compare needs a classification or QA board: on a regression board no "
                               "prediction is simply right or wrong",
                               hint="`harness leaderboard` shows the ranking with paired-bootstrap intervals")
        ea, eb = self._row(a), self._row(b)
        sa, sb = Stats.from_json(ea["dev_per_id"]), Stats.from_json(eb["dev_per_id"])
        if sa is None or sb is None:
            raise HarnessError(f"entry '{a if sa is None else b}' has no dev scores to compare")
        preds_a = predictions_a if predictions_a is not None else (ea["dev_predictions"] or {})
        preds_b = predictions_b if predictions_b is not None else (eb["dev_predictions"] or {})
        qa = scheme.task == "qa"
        right_a, right_b = (_right(s, scheme) for s in (sa, sb))
        gold = gold_answers
        if not qa and gold is None:
            gold = {q: _label_name(scheme, int(np.argmax(row)) // scheme.n_labels) for q, row in zip(sa.ids, sa.values)}
        rows = []
        for qid in sa.ids:
            if qid not in right_b or right_a[qid] == right_b[qid]:
                continue
            row = {"id": qid, "right": a if right_a[qid] > right_b[qid] else b}
            if qa:
                row.update(em_a=right_a[qid], em_b=right_b[qid])
            row.update(answer_a=preds_a.get(qid), answer_b=preds_b.get(qid))
            if gold is not None:
                refs = gold.get(qid)
                row["gold"] = " | ".join(refs) if isinstance(refs, (list, tuple)) else refs
            rows.append(row)
        columns = ["id", "right", *(["em_a", "em_b"] if qa else []), "answer_a", "answer_b"]
        columns += ["gold"] if gold is not None else []
        return pd.DataFrame(rows, columns=columns)

    # ---------------------------------------------------------------- export
    def export(self, out_dir: str | Path, by: str | None = None, split: str = "dev") -> dict[str, Path]:
        """Write ``leaderboard.md`` (the ranked table) and ``leaderboard.html`` (scores over time)."""
        scheme, metrics = self._info()
        by = _check_by(by, metrics, scheme)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        df = self.entries(by=by, split=split)
        top = self.top_two(by=by, split=split)
        title = f"Leaderboard ({split}, ranked by {metric_label(by)})"
        primary = metric_label(metrics[0])
        lines = [f"# {title}", "", f"{len(df)} entries, exported {_fmt_time(time.time())}.", ""]
        if df.empty:
            lines.append("_No entries yet._")
        else:
            table = display_table(df, by=by, split=split, width=None)
            lines += _markdown_table(table)
            if top:
                lines += ["", top.format()]
            lines += ["", f"Public / private {primary}: the dev {scheme.unit} split 50/50 by a fixed hash of the "
                      f"id; a public {primary} far above the private {primary} suggests over-fitting the public part.",
                      f"95% intervals: paired bootstrap over {scheme.unit} ({RESAMPLES} resamples, fixed seed)."]
        md = out / "leaderboard.md"
        md.write_text("\n".join(lines) + "\n", encoding="utf-8")
        page = out / "leaderboard.html"
        page.write_text(_html_page(title, self.events(), df, by, split, top, metrics[0], scheme.unit),
                        encoding="utf-8")
        return {"markdown": md, "html": page}


# --------------------------------------------------------------------------- helpers
def _check_choice(value: str, choices: Sequence[str], what: str) -> None:
    if value not in choices:
        raise HarnessError(f"unknown {what} '{value}'", hint=f"one of {', '.join(choices)}")


def _check_by(by: str | None, metrics: Sequence[str], scheme: Scheme) -> str:
    """``by`` if it is one of the board's metrics (None: the primary), else HarnessError listing them."""
    if by is None:
        return metrics[0]
    if by not in metrics:
        raise HarnessError(f"unknown metric '{by}' for this {scheme.describe()} leaderboard",
                           hint=f"rank by one of: {', '.join(metrics)}")
    return by


def _score_columns(metrics: Sequence[str]) -> list[str]:
    """dev_<m>..., public_<primary>, private_<primary>, test_<m>... (QA: dev_em, dev_f1, public_em, ...)."""
    return [*(f"dev_{m}" for m in metrics), f"public_{metrics[0]}", f"private_{metrics[0]}",
            *(f"test_{m}" for m in metrics)]


def _right(stats: Stats, scheme: Scheme) -> dict[str, float]:
    """1.0 where an example is right (QA: its EM; classification: pred == gold), else 0.0."""
    if scheme.task == "qa":
        right = stats.values[:, 0]
    else:
        c = scheme.n_labels
        right = stats.values[:, [k * c + k for k in range(c)]].sum(axis=1)
    return dict(zip(stats.ids, right.tolist()))


def _label_name(scheme: Scheme, index: int) -> str:
    return scheme.labels[index] if scheme.labels else str(index)


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}


def _fetch(con: sqlite3.Connection, source: str) -> list[dict]:
    cur = con.execute(f"SELECT * FROM {source}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _insert(con: sqlite3.Connection, table: str, row: Mapping) -> int:
    cols = list(row)
    return con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       [row[c] for c in cols]).lastrowid


def _write_meta(con: sqlite3.Connection, scheme: Scheme, metrics: Sequence[str]) -> None:
    con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("scheme", json.dumps(scheme.as_dict())), ("metrics", json.dumps(list(metrics)))])


def _dumps(obj) -> str | None:
    return None if obj is None else json.dumps(obj, ensure_ascii=False)


def _jsonable(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return int(value) if isinstance(value, numbers.Integral) else float(value)
    return str(value)


def _dumps_predictions(preds: Mapping | None) -> str | None:
    return None if preds is None else json.dumps({str(k): _jsonable(v) for k, v in preds.items()}, ensure_ascii=False)


def _parse_row(row: sqlite3.Row) -> dict:
    """A stored row as a dict, its JSON parsed (the per-example statistics stay JSON text)."""
    r = dict(row)
    if "members" in r:
        r["members"] = json.loads(r["members"]) if r["members"] else []
    for key in (*_METRIC_COLUMNS, "dev_predictions", "test_predictions"):
        if key in r:
            r[key] = json.loads(r[key]) if r[key] else None
    if "extra" in r:
        r["extra"] = json.loads(r["extra"]) if r["extra"] else {}
    return r


def _desc(value) -> float:
    """Sort key for "higher is better"; a missing (or undefined) score ranks last."""
    return math.inf if value is None or math.isnan(value) else -value


def _rank(rows: list[dict], by: str, metrics: Sequence[str], split: str) -> list[dict]:
    order = [by, *(m for m in metrics if m != by)]
    return sorted(rows, key=lambda r: (*(_desc(r[f"{split}_metrics"].get(m)) for m in order), r["created"], r["name"]))


def _change(delta: int) -> str:
    return "=" if delta == 0 else f"{delta:+d}"


def _union_ids(stats) -> list[str]:
    """The sorted union of the ids of several statistics sets (the bootstrap's example list)."""
    seen: set[str] = set()
    for s in stats:
        if s is not None:
            seen.update(s.ids if isinstance(s, Stats) else s)
    return sorted(seen)


def _db_path(con: sqlite3.Connection) -> str:
    row = con.execute("PRAGMA database_list").fetchone()
    return row[2] if row else "?"


def shorten(items: Sequence[str], width: int = 28) -> str:
    """``a, b, +3`` style summary of a member list within about ``width`` characters."""
    items = list(items)
    if not items:
        return "-"
    shown: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        tail = f", +{rest}" if rest else ""
        candidate = ", ".join(shown + [item]) + tail
        if len(candidate) > width and shown:
            return ", ".join(shown) + f", +{len(items) - i}"
        if len(candidate) > width:
            return item[: max(4, width - len(tail) - 1)] + "…" + tail
        shown.append(item)
    return ", ".join(shown)


def _num(x, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _df_metrics(df: pd.DataFrame) -> list[str]:
    """The board metrics of an :meth:`Leaderboard.entries` frame, primary first (from its ``<m>_lo`` columns)."""
    return [c[:-3] for c in df.columns if c.endswith("_lo") and c != "ci_lo"] or list(METRICS)


def display_table(df: pd.DataFrame, by: str | None = None, split: str = "dev", width: int | None = 28) -> pd.DataFrame:
    """The board as strings, one column per figure, in the order the CLI prints them."""
    metrics = _df_metrics(df)
    by, primary = by or metrics[0], metrics[0]
    has_test = df[f"test_{primary}"].notna().any()
    has_dev = df[f"dev_{primary}"].notna().any()
    ci_label = f"{split} {metric_label(by)} 95% CI"
    table = pd.DataFrame({
        "rank": df["rank"].astype(str),
        "change": df["change"],
        "name": df["name"],
        "members": [shorten(m, width) if width else ", ".join(m) or "-" for m in df["members"]],
    })
    order = ["dev", "test"] if split == "dev" else ["test", "dev"]
    for s in order:
        if s == "dev" and not has_dev or s == "test" and not has_test:
            continue
        for m in metrics:
            table[f"{s} {metric_label(m)}"] = [_num(x) for x in df[f"{s}_{m}"]]
        if s == split:
            table[ci_label] = [f"[{_num(lo, 1)}, {_num(hi, 1)}]" for lo, hi in zip(df["ci_lo"], df["ci_hi"])]
        if s == "dev":
            for half in ("public", "private"):
                table[f"{half} {metric_label(primary)}"] = [_num(x) for x in df[f"{half}_{primary}"]]
    table["created"] = [_fmt_time(t) for t in df["created"]]
    return table


def _markdown_table(table: pd.DataFrame) -> list[str]:
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    right = {c for c in table.columns if c not in ("name", "members", "change", "created")}
    lines = ["| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---:" if c in right else "---" for c in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in table.itertuples(index=False)]
    return lines


# --------------------------------------------------------------------------- the HTML chart
def _series(metric: str) -> list[tuple[str, str, str, str]]:
    """column, label, colour, marker of the chart's series (legend order; drawn in reverse so dev stays on top)."""
    label = metric_label(metric)
    return [(f"dev_{metric}", f"dev {label}", "#1f77b4", "dot"),
            (f"test_{metric}", f"test {label}", "#ff7f0e", "square"),
            (f"public_{metric}", f"public {label}", "#2ca02c", "ring"),
            (f"private_{metric}", f"private {label}", "#d62728", "ring")]


def _marker(cx: float, cy: float, colour: str, shape: str, tip: str = "") -> str:
    title = f"<title>{tip}</title>" if tip else ""
    if shape == "square":
        return (f'<rect x="{cx - 5.5:.1f}" y="{cy - 5.5:.1f}" width="11" height="11" fill="{colour}" '
                f'fill-opacity="0.85">{title}</rect>')
    fill = colour if shape == "dot" else "white"
    return (f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="{fill}" stroke="{colour}" '
            f'stroke-width="1.8">{title}</circle>')


def _svg_chart(events: pd.DataFrame, metric: str = "em", width: int = 860, height: int = 380) -> str:
    esc = html.escape
    if events.empty:
        return "<p>No entries yet.</p>"
    series = _series(metric)
    left, right, top, bottom = 56, 150, 20, 48
    pw, ph = width - left - right, height - top - bottom
    t = events["created"].astype(float).to_numpy()
    t0, t1 = float(t.min()), float(t.max())
    if t1 - t0 < 1e-9:
        t0, t1 = t0 - 1, t1 + 1
    pad = (t1 - t0) * 0.04  # keep the first and last markers off the frame
    t0, t1 = t0 - pad, t1 + pad
    scores = pd.concat([events[c] for c, *_ in series]).astype(float).dropna()
    floor = 0.0 if not len(scores) or scores.min() >= 0 else -100.0  # MCC and correlations go below 0
    lo = max(floor, math.floor((scores.min() - 2) / 10) * 10) if len(scores) else 0.0
    hi = min(100.0, math.ceil((scores.max() + 2) / 10) * 10) if len(scores) else 100.0
    if hi <= lo:
        lo, hi = max(floor, lo - 10), min(100.0, hi + 10)

    def x(v: float) -> float:
        return left + (v - t0) / (t1 - t0) * pw

    def y(v: float) -> float:
        return top + (1 - (v - lo) / (hi - lo)) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>']
    step = 5 if hi - lo <= 30 else 10 if hi - lo <= 60 else 20
    v = lo
    while v <= hi + 1e-9:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    for k in range(5):
        tv = t0 + (t1 - t0) * k / 4
        fmt = "%H:%M:%S" if t1 - t0 < 600 else "%m-%d %H:%M" if t1 - t0 < 7 * 86400 else "%Y-%m-%d"
        label = datetime.fromtimestamp(tv).strftime(fmt)
        parts.append(f'<text x="{x(tv):.1f}" y="{top + ph + 18}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle" fill="#555">time added</text>')
    scale = "0-100" if floor == 0 else "-100 to 100"
    parts.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" fill="#555" '
                 f'transform="rotate(-90 14 {top + ph / 2})">score ({scale})</text>')

    # best dev score so far, as a step line
    best, pts = -math.inf, []
    for tv, score in sorted(zip(t, events[f"dev_{metric}"].astype(float))):
        if not math.isnan(score) and score > best:
            if pts:
                pts.append((x(tv), y(best)))
            best = score
            pts.append((x(tv), y(best)))
    if pts:
        pts.append((x(float(t.max())), y(best)))
        parts.append('<polyline fill="none" stroke="#1f77b4" stroke-opacity="0.45" stroke-width="2" '
                     f'stroke-dasharray="5 3" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')

    shown = [s for s in series if not events[s[0]].astype(float).isna().all()]
    for col, label, colour, shape in reversed(shown):
        for (_, ev), val in zip(events.iterrows(), events[col].astype(float)):
            if math.isnan(val):
                continue
            tip = esc(f"{ev['name']} ({ev['kind']}{', replaced later' if _replaced_later(events, ev) else ''}) "
                      f"{label} {val:.2f} at {_fmt_time(float(ev['created']))}")
            parts.append(_marker(x(float(ev["created"])), y(val), colour, shape, tip))
    legend_y = top + 10
    for col, label, colour, shape in shown:
        lx = left + pw + 14
        parts.append(_marker(lx, legend_y, colour, shape))
        parts.append(f'<text x="{lx + 10}" y="{legend_y + 4}">{esc(label)}</text>')
        legend_y += 20
    if pts:
        lx = left + pw + 8
        parts.append(f'<line x1="{lx}" x2="{lx + 14}" y1="{legend_y}" y2="{legend_y}" stroke="#1f77b4" '
                     'stroke-opacity="0.45" stroke-width="2" stroke-dasharray="5 3"/>')
        parts.append(f'<text x="{lx + 20}" y="{legend_y + 4}">best dev {esc(metric_label(metric))}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _replaced_later(events: pd.DataFrame, ev) -> bool:
    return bool(((events["name"] == ev["name"]) & (events["seq"] > ev["seq"])).any())


def _html_page(title: str, events: pd.DataFrame, df: pd.DataFrame, by: str, split: str, top: TopTwo | None,
               metric: str = "em", unit: str = "questions") -> str:
    esc = html.escape
    label = metric_label(metric)
    table_html = "<p>No entries yet.</p>"
    if not df.empty:
        table = display_table(df, by=by, split=split, width=None)
        head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>"
                       for row in table.itertuples(index=False))
        table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    note = f"<p>{esc(top.format())}</p>" if top else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }}
th {{ background: #f0f0f0; }}
td:nth-child(2), td:nth-child(3), td:nth-child(4) {{ text-align: left; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>{esc(title)}</h1>
<h2>Scores over time</h2>
{_svg_chart(events, metric)}
<p class="note">One marker per submission added (hover for its name); replaced versions stay in the history.
Dots: dev {esc(label)}; squares: test {esc(label)} (when the test labels are known); rings: {esc(label)} on the
simulated public and private halves of the dev {unit}; dashed: the best dev {esc(label)} so far.</p>
<h2>Ranking</h2>
{table_html}
{note}
</body></html>
"""


# --------------------------------------------------------------------------- one-call recording
def record_submission(
    ws,
    name: str,
    members: Sequence[str],
    dev_predictions: Mapping[str, str] | None = None,
    dev_gold=None,
    test_predictions: Mapping[str, str] | None = None,
    test_gold=None,
    extra: Mapping | None = None,
    kind: str = "submission",
    lang: str | None = None,
    created=None,
) -> int | None:
    """Score QA predictions with ``qa_scores`` and add (or replace) entry ``name`` on ``ws``'s board.

    ``dev_gold``/``test_gold`` are lists of :class:`~harness.data.example.Example`; a side without
    gold (or a test file without answers) is simply not scored. Returns the entry id, or None
    (and adds nothing) when neither side could be scored. Gold with only some questions
    unlabelled raises :class:`HarnessError`.
    """
    from harness.qa.metrics import qa_scores

    def refs(gold) -> dict[str, tuple[str, ...]] | None:
        if gold is None or not any(ex.labelled for ex in gold):
            return None
        from harness.scoring import _gold_references

        return _gold_references(gold)

    dev_refs, test_refs = refs(dev_gold), refs(test_gold)
    dev_per_id = test_per_id = dev_answers = test_answers = None
    if dev_predictions is not None and dev_refs:
        dev_per_id = qa_scores(dev_predictions, dev_refs, lang=lang)["per_id"]
        dev_answers = {q: dev_predictions.get(q) or "" for q in dev_refs}
    if test_predictions is not None and test_refs:
        test_per_id = qa_scores(test_predictions, test_refs, lang=lang)["per_id"]
        test_answers = {q: test_predictions.get(q) or "" for q in test_refs}
    if dev_per_id is None and test_per_id is None:
        return None  # nothing scorable (e.g. a test-only submission without test answers)
    return Leaderboard.for_workspace(ws).add_entry(
        name, kind=kind, members=list(members), dev_per_id=dev_per_id, test_per_id=test_per_id,
        extra=extra, created=created, dev_predictions=dev_answers, test_predictions=test_answers,
    )


def record_classification(
    ws,
    name: str,
    members: Sequence[str],
    labels: Sequence[str] | None,
    metric: str,
    dev_predictions: Mapping[str, str | float] | None = None,
    dev_gold: Mapping[str, str | float] | None = None,
    test_predictions: Mapping[str, str | float] | None = None,
    test_gold: Mapping[str, str | float] | None = None,
    extra: Mapping | None = None,
    kind: str = "submission",
    created=None,
) -> int | None:
    """Score classification (or regression) predictions and add (or replace) entry ``name``.

    ``labels`` are the class names in index order (None: regression, predictions and gold are
    numbers); ``metric`` is the competition's metric, the board's primary (the second is
    :meth:`Scheme.default_metrics`'s choice). Predictions and gold map id -> label name (or
    value); the gold ids are the examples scored. A classification id without a prediction
    counts as wrong (it is scored as the class after the gold one); a regression one raises, as
    does a label that is not one of ``labels``. Returns the entry id, or None (and adds nothing)
    when neither side has gold (and predictions).
    """
    from harness.clf.metrics import example_stats

    scheme = Scheme.of({"task": "classification", "n_labels": None if labels is None else len(labels),
                        "labels": labels})
    metrics = scheme.default_metrics(metric)
    index = {str(label): i for i, label in enumerate(labels or ())}

    def label_index(value, qid, what: str) -> int:
        if str(value) not in index:
            raise HarnessError(f"{what} label {value!r} of {qid!r} is not one of the labels",
                               hint=f"labels: {', '.join(index)}")
        return index[str(value)]

    def side(preds, gold, what: str):
        if preds is None or not gold:
            return None, None
        ids = [str(q) for q in gold]
        if labels is None:
            missing = [q for q in gold if preds.get(q) is None]
            if missing:
                raise HarnessError(f"{what}: no prediction for {len(missing)} of {len(gold)} examples "
                                   f"(e.g. {missing[0]!r})", hint="a regression entry needs a value for every example")
            try:
                pred, true = [float(preds[q]) for q in gold], [float(v) for v in gold.values()]
            except (TypeError, ValueError) as e:
                raise HarnessError(f"{what}: regression predictions and gold must be numbers ({e})") from None
            kept = dict(zip(ids, pred))
        else:
            true = [label_index(v, q, f"{what} gold") for q, v in gold.items()]
            pred = [(g + 1) % len(labels) if preds.get(q) is None else label_index(preds[q], q, f"{what} predicted")
                    for q, g in zip(gold, true)]
            kept = {str(q): preds.get(q) for q in gold}
        return (ids, example_stats(np.asarray(pred), np.asarray(true), scheme.n_labels)), kept

    dev_stats, dev_kept = side(dev_predictions, dev_gold, f"entry '{name}' dev")
    test_stats, test_kept = side(test_predictions, test_gold, f"entry '{name}' test")
    if dev_stats is None and test_stats is None:
        return None  # nothing scorable (e.g. a test-only submission without test labels)
    return Leaderboard.for_workspace(ws).add_entry(
        name, kind=kind, members=list(members), dev_per_id=dev_stats, test_per_id=test_stats, extra=extra,
        created=created, dev_predictions=dev_kept, test_predictions=test_kept, scheme=scheme, metrics=metrics,
    )
