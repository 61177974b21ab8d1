"""The local leaderboard: every submission (or run) scored per example, ranked, compared, exported.

A board ranks entries by *the task's metric*, recomputed from the per-example **sufficient
statistics** each entry stores (a float matrix ``stats[n, S]``, one row per question / example);
the board's **scheme** (:mod:`harness.scores`) says what the columns mean. Each board holds one
scheme and a metric list, primary first (QA: em, f1; CoLA e.g. mcc, accuracy): both are fixed by
the first add, and adding an entry of another scheme raises (one board per competition). Every
metric is on the 0-100 scale (MCC and correlations: -100..100).

The board is one package, split by job and imported one way (store -> the others):

* :mod:`harness.board.stats` -- statistics, no SQLite: :class:`~harness.board.stats.Stats` (one
  entry's statistics), the paired :class:`~harness.board.stats.Bootstrap` and its intervals,
  :class:`~harness.board.stats.TopTwo`, the public/private split :func:`~harness.board.stats.is_public`;
* :mod:`harness.board.schema` -- the SQLite schema and the migration of old boards;
* :mod:`harness.board.ranking` -- sort keys, rank changes, which metric ranks;
* :mod:`harness.board.export` -- the board as text and pictures (the CLI's table, Markdown, HTML);
* this module -- the :class:`Leaderboard` store: add, read, rank, compare, export.

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

What the board shows, all recomputed from the stored statistics (details in
:mod:`harness.board.stats`):

* **95% intervals** -- a paired bootstrap over examples with a fixed seed, shared by all entries:
  reproducible, and the difference of two entries is resampled *paired*.
* **public / private** -- dev ids split 50/50 by a salted hash of the id, like a Kaggle
  public/private board: an entry tuned on the public part shows a public score well above its
  private score (the board's primary metric).
* **test** -- when the test labels are known entries carry test scores too: a local private
  leaderboard (``split="test"``).

Adding: :meth:`Leaderboard.add_entry` takes an entry's per-example statistics and their scheme
(the submit verb computes them with the task: ``harness.pipeline.record_entry``). The board is a
read-side view over what was recorded; it never imports a task.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from harness.board import ranking
from harness.board.export import _fmt_time, _html_page, _markdown_table, display_table
from harness.board.schema import (
    METRIC_COLUMNS,
    SCHEMA,
    SPLITS,
    dumps,
    has_schema,
    insert,
    migrate,
    split_metrics,
    write_meta,
)
from harness.board.stats import RESAMPLES, Bootstrap, Interval, Stats, TopTwo, _check_stats, _union_ids
from harness.common.errors import HarnessError
from harness.common.io import storage_error
from harness.scores import Scheme, metric_label, scheme_from_dict

FILENAME = "board.sqlite"
KINDS = ("submission", "dev-submission", "run")
BUSY_TIMEOUT_MS = 60_000

def _created(created) -> float:
    if created is None:
        return time.time()
    if isinstance(created, datetime):
        return created.timestamp()
    if isinstance(created, str):
        return datetime.fromisoformat(created).timestamp()
    return float(created)


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
        """The board of a :class:`~harness.common.workspace.Workspace`: ``leaderboard/board.sqlite``."""
        return cls(Path(ws.leaderboard) / FILENAME)

    # ---------------------------------------------------------------- connections
    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not self.path.exists():
            if not create:
                return None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise storage_error(e, self.path.parent, "create") from None
        if not create and not os.access(self.path.parent, os.W_OK):
            # a board on a read-only disk (or folder) can still be read: no WAL, no locks, no migration
            return sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, isolation_level=None)
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._wal(con)
            con.execute("PRAGMA synchronous = NORMAL")
            if has_schema(con):
                migrate(con)
            elif create:
                con.executescript(SCHEMA)  # IF NOT EXISTS: racing creators are harmless
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

    def _read(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        con = self._connect(create=False)
        if con is None:
            return []
        try:
            if not has_schema(con):
                return []
            con.row_factory = sqlite3.Row
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    # ---------------------------------------------------------------- the board's scheme
    def _info(self) -> tuple[Scheme, tuple[str, ...]]:
        meta = {r["key"]: json.loads(r["value"]) for r in self._read("SELECT key, value FROM meta")}
        scheme = scheme_from_dict(meta.get("scheme"))
        return scheme, tuple(meta.get("metrics") or scheme.default_metrics())

    @property
    def scheme(self) -> Scheme:
        """The board's scheme (QA for an empty board): fixed by the first add."""
        return self._info()[0]

    def set_result(self, result: Mapping) -> None:
        """Record what ``result.csv`` now holds (``{"name", "sha256"}``) for a submission that adds no entry."""
        con = self._connect(create=True)
        try:
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('result_csv', ?)", (json.dumps(dict(result)),))
        finally:
            con.close()

    def result_csv(self) -> dict | None:
        """What ``result.csv`` should hold: ``{"name", "sha256"}`` of the latest test submission."""
        rows = self._read("SELECT value FROM meta WHERE key = 'result_csv'")
        return json.loads(rows[0]["value"]) if rows else None

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
        result: Mapping | None = None,
    ) -> int:
        """Add (or replace, by ``name``) one entry; returns its id (kept when replacing).

        ``dev_per_id``/``test_per_id`` are the per-example statistics of ``scheme`` (default QA):
        ``{id: row}`` -- for QA ``{id: (em, f1)}`` in 0..1 as ``qa_scores`` gives them -- or an
        ``(ids, stats[n, S])`` pair (``harness.tasks.clf.metrics.example_stats``); the metrics are
        computed from them. The first add fixes the board's scheme and ``metrics`` (primary first;
        default ``scheme.default_metrics()``); an entry of another scheme raises. ``created`` is
        unix seconds, a datetime or an ISO string (default: now). ``dev_predictions``
        (``{id: answer or label}``) feed :meth:`compare`. ``result`` (``{"name", "sha256"}``) records,
        in the same transaction, that ``result.csv`` now holds this entry's submission
        (:meth:`result_csv`).
        """
        if not name or not str(name).strip():
            raise HarnessError("a leaderboard entry needs a name")
        if kind not in KINDS:
            raise HarnessError(f"unknown entry kind '{kind}'", hint=f"one of {', '.join(KINDS)}")
        if isinstance(members, str):
            members = [members]
        scheme = scheme_from_dict(scheme)
        metrics = scheme.default_metrics() if metrics is None else scheme.check_metrics(metrics)
        dev = _check_stats(dev_per_id, scheme, f"entry '{name}' dev scores")
        test = _check_stats(test_per_id, scheme, f"entry '{name}' test scores")
        scores = {k: dumps(v) for k, v in split_metrics(scheme, dev, test).items()}
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
                    write_meta(con, scheme, metrics)
                elif scheme_from_dict(json.loads(board["scheme"])) != scheme:
                    raise HarnessError(
                        f"this leaderboard ranks {scheme_from_dict(json.loads(board['scheme'])).describe()} entries; "
                        f"entry '{name}' is {scheme.describe()}",
                        hint=f"one board per competition: delete {self.path} to reset it")
                replaced = con.execute("SELECT 1 FROM entries WHERE name = ?", (row["name"],)).fetchone() is not None
                row["seq"] = insert(con, "events", {"name": row["name"], "kind": kind, "created": ts,
                                                     "replaced": int(replaced), **scores})
                cols = list(row)
                con.execute(
                    f"INSERT INTO entries ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                    f"ON CONFLICT(name) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in cols if c != 'name')}",
                    [row[c] for c in cols],
                )
                entry_id = con.execute("SELECT id FROM entries WHERE name = ?", (row["name"],)).fetchone()[0]
                if result is not None:
                    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('result_csv', ?)",
                                (json.dumps(dict(result)),))
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
            if not has_schema(con):
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
        for column in METRIC_COLUMNS:
            prefix = column.split("_")[0]
            for metric in names:
                r[f"{prefix}_{metric}"] = (r[column] or {}).get(metric)
        return r

    def events(self) -> pd.DataFrame:
        """Every add, oldest first (replaced versions included): ``dev_<metric>``/``test_<metric>``
        for the board's metrics and ``public_``/``private_<primary>``."""
        metrics = self.metrics
        scores = ranking.score_columns(metrics)
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
        by = ranking.check_by(by, metrics, scheme)
        _check_choice(split, SPLITS, "split")
        rows = self._load()
        intervals_cols = [f"{m}_{end}" for m in metrics for end in ("lo", "hi")]
        scores = ranking.score_columns(metrics)
        columns = ["rank", "change", "name", "kind", "members", "n", *metrics, *intervals_cols, *scores,
                   "created", "id", "extra"]
        ranked = [r for r in rows if r[f"{split}_metrics"] is not None]
        if not ranked:
            return pd.DataFrame(columns=columns)
        ranked = ranking.rank(ranked, by, metrics, split)
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
                change = ranking.change(before[r["name"]] - i)
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
        ranked = ranking.rank([e for e in latest.values() if e[f"{split}_metrics"] is not None], by, metrics, split)
        return {e["name"]: i for i, e in enumerate(ranked, 1)}

    def top_two(self, by: str | None = None, split: str = "dev") -> TopTwo | None:
        """Paired-bootstrap interval of (best - second best) on ``by``; None with fewer than two entries."""
        scheme, metrics = self._info()
        by = ranking.check_by(by, metrics, scheme)
        _check_choice(split, SPLITS, "split")
        ranked = ranking.rank([r for r in self._load() if r[f"{split}_metrics"] is not None], by, metrics, split)
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
        if scheme.correct(np.zeros((1, scheme.n_stats))) is None:
            raise HarnessError(f"compare needs a board whose entries are right or wrong per example (a "
                               f"classification or QA board): on a {scheme.describe()} board no prediction is "
                               "simply right or wrong",
                               hint="`harness leaderboard` shows the ranking with paired-bootstrap intervals")
        ea, eb = self._row(a), self._row(b)
        sa, sb = Stats.from_json(ea["dev_per_id"]), Stats.from_json(eb["dev_per_id"])
        if sa is None or sb is None:
            raise HarnessError(f"entry '{a if sa is None else b}' has no dev scores to compare")
        preds_a = predictions_a if predictions_a is not None else (ea["dev_predictions"] or {})
        preds_b = predictions_b if predictions_b is not None else (eb["dev_predictions"] or {})
        right_a, right_b = (dict(zip(s.ids, scheme.correct(s.values).tolist())) for s in (sa, sb))
        gold = gold_answers
        stored_gold = scheme.gold(sa.values)
        if gold is None and stored_gold is not None:
            gold = dict(zip(sa.ids, stored_gold))
        scores = stored_gold is None  # per-example scores (QA's EM) rather than labels: show them
        rows = []
        for qid in sa.ids:
            if qid not in right_b or right_a[qid] == right_b[qid]:
                continue
            row = {"id": qid, "right": a if right_a[qid] > right_b[qid] else b}
            if scores:
                row.update(em_a=right_a[qid], em_b=right_b[qid])
            row.update(answer_a=preds_a.get(qid), answer_b=preds_b.get(qid))
            if gold is not None:
                refs = gold.get(qid)
                row["gold"] = " | ".join(refs) if isinstance(refs, (list, tuple)) else refs
            rows.append(row)
        columns = ["id", "right", *(["em_a", "em_b"] if scores else []), "answer_a", "answer_b"]
        columns += ["gold"] if gold is not None else []
        return pd.DataFrame(rows, columns=columns)

    # ---------------------------------------------------------------- export
    def export(self, out_dir: str | Path, by: str | None = None, split: str = "dev") -> dict[str, Path]:
        """Write ``leaderboard.md`` (the ranked table) and ``leaderboard.html`` (scores over time)."""
        scheme, metrics = self._info()
        by = ranking.check_by(by, metrics, scheme)
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
    for key in (*METRIC_COLUMNS, "dev_predictions", "test_predictions"):
        if key in r:
            r[key] = json.loads(r[key]) if r[key] else None
    if "extra" in r:
        r["extra"] = json.loads(r["extra"]) if r["extra"] else {}
    return r


def _db_path(con: sqlite3.Connection) -> str:
    row = con.execute("PRAGMA database_list").fetchone()
    return row[2] if row else "?"
