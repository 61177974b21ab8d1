"""The local leaderboard: every submission (or run) scored per question, ranked, compared, exported.

One SQLite file, ``<workspace>/leaderboard/board.sqlite`` (delete it to reset the board):

    entries   one row per name (re-adding a name replaces its row, keeping its id): members,
              aggregate dev/test EM and F1 (0-100), public/private dev EM, the per-question
              EM/F1 vectors (JSON ``{id: [em, f1]}``, 0..1) and the dev/test predictions
    events    one row per ``add_entry`` call, never rewritten: the history behind the rank-change
              column and the scores-over-time chart

The file is opened in WAL mode with a busy timeout, each call on a fresh connection and every
write in one ``BEGIN IMMEDIATE`` transaction, so several processes may add entries at once.

Statistics (all recomputed from the stored vectors):

* **95% intervals** -- a paired bootstrap over questions: one ``(RESAMPLES, n)`` index matrix
  drawn with a fixed seed and shared by all entries, so intervals are reproducible and the
  difference of two entries is resampled *paired* (the same questions in each replicate).
* **public / private** -- dev question ids are split 50/50 by a salted hash of the id alone
  (stable as entries come and go), like a Kaggle public/private board: an entry tuned on the
  public part shows a public EM well above its private EM.
* **test** -- when the test answers are known (``test_gold`` in the competition) entries carry
  test scores too: a local private leaderboard (``split="test"``).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError

FILENAME = "board.sqlite"
KINDS = ("submission", "run")
SPLITS = ("dev", "test")
METRICS = ("em", "f1")
RESAMPLES = 1000
SEED = 20240607
PUBLIC_SALT = "harness-public-v1"
BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    members         TEXT NOT NULL,      -- JSON list of run / trial names
    created         REAL NOT NULL,      -- unix seconds
    seq             INTEGER NOT NULL,   -- events.seq of the add that wrote this row
    dev_n           INTEGER, dev_em REAL, dev_f1 REAL,
    public_em       REAL, private_em REAL,
    test_n          INTEGER, test_em REAL, test_f1 REAL,
    dev_per_id      TEXT,               -- JSON {"ids": [...], "em": [...], "f1": [...]} (0..1)
    test_per_id     TEXT,
    dev_predictions TEXT,               -- JSON {id: answer}
    test_predictions TEXT,
    extra           TEXT                -- JSON object
);
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created    REAL NOT NULL,
    replaced   INTEGER NOT NULL,        -- 1 when the add replaced an entry of the same name
    dev_em REAL, dev_f1 REAL, public_em REAL, private_em REAL, test_em REAL, test_f1 REAL
);
"""

_SCORE_COLUMNS = ("dev_n", "dev_em", "dev_f1", "public_em", "private_em", "test_n", "test_em", "test_f1")


# --------------------------------------------------------------------------- public/private split
def is_public(qid: str, salt: str = PUBLIC_SALT) -> bool:
    """Whether dev question ``qid`` belongs to the simulated public board (a fixed 50/50 hash split)."""
    digest = hashlib.sha256(f"{salt}\0{qid}".encode()).digest()
    return digest[0] < 128


def _mean_em(per_id: Mapping[str, Sequence[float]], ids) -> float | None:
    values = [per_id[q][0] for q in ids]
    return 100.0 * sum(values) / len(values) if values else None


# --------------------------------------------------------------------------- per-question vectors
def _check_per_id(per_id: Mapping | None, what: str) -> dict[str, tuple[float, float]] | None:
    if per_id is None:
        return None
    out: dict[str, tuple[float, float]] = {}
    for qid, pair in per_id.items():
        try:
            em, f1 = (float(x) for x in pair)
        except (TypeError, ValueError):
            raise HarnessError(f"{what}: question {qid!r} needs an (em, f1) pair, got {pair!r}") from None
        if not (0.0 <= em <= 1.0 and 0.0 <= f1 <= 1.0):
            raise HarnessError(f"{what}: question {qid!r} has scores {pair!r} outside 0..1",
                               hint="per-question scores are 0..1 (qa_scores()['per_id'])")
        out[str(qid)] = (em, f1)
    if not out:
        raise HarnessError(f"{what}: no questions scored")
    return out


def _aggregate(per_id: dict[str, tuple[float, float]] | None) -> tuple[int | None, float | None, float | None]:
    if per_id is None:
        return None, None, None
    n = len(per_id)
    return n, 100.0 * sum(e for e, _ in per_id.values()) / n, 100.0 * sum(f for _, f in per_id.values()) / n


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


class Scores:
    """One entry's per-question scores as parallel arrays (what the board stores and resamples)."""

    __slots__ = ("ids", "em", "f1")

    def __init__(self, ids: list[str], em, f1):
        self.ids = ids
        self.em = np.asarray(em, dtype=np.float64)
        self.f1 = np.asarray(f1, dtype=np.float64)

    @classmethod
    def from_json(cls, text: str | None) -> Scores | None:
        if not text:
            return None
        d = json.loads(text)
        return cls(d["ids"], d["em"], d["f1"])

    @classmethod
    def from_mapping(cls, per_id: Mapping[str, Sequence[float]]) -> Scores:
        return cls(list(per_id), [p[0] for p in per_id.values()], [p[1] for p in per_id.values()])

    def column(self, k: int) -> np.ndarray:
        return self.em if k == 0 else self.f1

    def as_dict(self) -> dict[str, tuple[float, float]]:
        return {q: (float(e), float(f)) for q, e, f in zip(self.ids, self.em, self.f1)}

    def __len__(self) -> int:
        return len(self.ids)


def _as_scores(per_id) -> Scores | None:
    if per_id is None or isinstance(per_id, Scores):
        return per_id
    return Scores.from_mapping(per_id)


class Bootstrap:
    """Paired bootstrap over a fixed question list: one index matrix shared by every vector.

    ``counts[b, j]`` is how often question ``j`` was drawn in replicate ``b`` (from a
    ``(resamples, n)`` matrix of indices drawn once with ``seed``), so a replicate mean of every
    entry is one matrix product. Vectors may leave questions out (``mask``): a replicate mean is
    then taken over the drawn questions the vector has.
    """

    def __init__(self, ids: Sequence[str], resamples: int = RESAMPLES, seed: int = SEED):
        self.ids = list(ids)
        self.pos = {q: j for j, q in enumerate(self.ids)}
        self._aligned: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        n = len(self.ids)
        rng = np.random.default_rng(seed)
        self.counts = np.zeros((resamples, n), dtype=np.float32)
        chunk = max(1, 2_000_000 // max(n, 1))  # index rows drawn per step, to bound memory
        for start in range(0, resamples if n else 0, chunk):
            rows = min(chunk, resamples - start)
            index = rng.integers(0, n, size=(rows, n))
            flat = (index + n * np.arange(rows)[:, None]).ravel()
            self.counts[start:start + rows] = np.bincount(flat, minlength=rows * n).reshape(rows, n)

    def vectors(self, per_id: Scores | Mapping[str, Sequence[float]], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Column ``k`` (0 = EM, 1 = F1) of ``per_id`` aligned to ``ids``, and the has-a-value mask."""
        scores = _as_scores(per_id)
        if scores.ids == self.ids:
            return scores.column(k).copy(), np.ones(len(self.ids))
        key = tuple(scores.ids)  # entries usually share one id order: align it once
        if key not in self._aligned:
            index = np.fromiter((self.pos.get(q, -1) for q in scores.ids), dtype=np.int64, count=len(scores))
            self._aligned[key] = (index >= 0, index[index >= 0])
        keep, target = self._aligned[key]
        v = np.zeros(len(self.ids))
        m = np.zeros(len(self.ids))
        v[target] = scores.column(k)[keep]
        m[target] = 1.0
        return v, m

    def replicates(self, values: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Replicate means (0-100) for ``values``/``masks`` of shape (n, E): shape (resamples, E)."""
        num = (self.counts @ (values * masks).astype(np.float32)).astype(np.float64)
        den = (self.counts @ masks.astype(np.float32)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * num / den

    @staticmethod
    def interval(replicates: np.ndarray, level: float = 0.95) -> list[Interval]:
        tail = 100 * (1 - level) / 2
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
        return [Interval(float(a), float(b)) for a, b in zip(np.atleast_1d(lo), np.atleast_1d(hi))]

    def difference(self, a, b, k: int, level: float = 0.95) -> tuple[float, Interval]:
        """Point difference a - b (0-100) over the questions both have, and its paired 95% interval."""
        va, ma = self.vectors(a, k)
        vb, mb = self.vectors(b, k)
        both = ma * mb
        if not both.any():
            return math.nan, Interval(math.nan, math.nan)
        diff = (va - vb) * both
        point = 100.0 * diff.sum() / both.sum()
        reps = self.replicates(diff[:, None], both[:, None])
        return float(point), self.interval(reps, level)[0]


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
                f"{self.first} - {self.second} {self.split} {self.metric.upper()} {self.diff:+.2f})")


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
            if create and not self._has_schema(con):
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

    # ---------------------------------------------------------------- writing
    def add_entry(
        self,
        name: str,
        kind: str = "submission",
        members: Sequence[str] = (),
        dev_per_id: Mapping[str, Sequence[float]] | None = None,
        test_per_id: Mapping[str, Sequence[float]] | None = None,
        extra: Mapping | None = None,
        created=None,
        dev_predictions: Mapping[str, str] | None = None,
        test_predictions: Mapping[str, str] | None = None,
    ) -> int:
        """Add (or replace, by ``name``) one entry; returns its id (kept when replacing).

        ``dev_per_id``/``test_per_id`` are ``{id: (em, f1)}`` in 0..1 as ``qa_scores`` gives them;
        aggregates are computed from them. ``created`` is unix seconds, a datetime or an ISO
        string (default: now). ``dev_predictions`` (``{id: answer}``) feed :meth:`compare`.
        """
        if not name or not str(name).strip():
            raise HarnessError("a leaderboard entry needs a name")
        if kind not in KINDS:
            raise HarnessError(f"unknown entry kind '{kind}'", hint=f"one of {', '.join(KINDS)}")
        if isinstance(members, str):
            members = [members]
        dev = _check_per_id(dev_per_id, f"entry '{name}' dev scores")
        test = _check_per_id(test_per_id, f"entry '{name}' test scores")
        dev_n, dev_em, dev_f1 = _aggregate(dev)
        test_n, test_em, test_f1 = _aggregate(test)
        public_em = private_em = None
        if dev:
            public_em = _mean_em(dev, [q for q in dev if is_public(q)])
            private_em = _mean_em(dev, [q for q in dev if not is_public(q)])
        ts = _created(created)
        row = {
            "name": str(name), "kind": kind, "members": json.dumps([str(m) for m in members]), "created": ts,
            "dev_n": dev_n, "dev_em": dev_em, "dev_f1": dev_f1, "public_em": public_em, "private_em": private_em,
            "test_n": test_n, "test_em": test_em, "test_f1": test_f1,
            "dev_per_id": _dumps_per_id(dev), "test_per_id": _dumps_per_id(test),
            "dev_predictions": _dumps_predictions(dev_predictions),
            "test_predictions": _dumps_predictions(test_predictions),
            "extra": json.dumps(dict(extra or {}), ensure_ascii=False, default=str),
        }
        con = self._connect(create=True)
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                replaced = con.execute("SELECT 1 FROM entries WHERE name = ?", (row["name"],)).fetchone() is not None
                seq = con.execute(
                    "INSERT INTO events (name, kind, created, replaced, dev_em, dev_f1, public_em, private_em, "
                    "test_em, test_f1) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row["name"], kind, ts, int(replaced), dev_em, dev_f1, public_em, private_em, test_em, test_f1),
                ).lastrowid
                row["seq"] = seq
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

    def entry(self, name: str) -> dict:
        """One entry with everything stored (vectors and predictions parsed)."""
        rows = self._read("SELECT * FROM entries WHERE name = ?", (name,))
        if not rows:
            known = self.names()
            raise HarnessError(f"no leaderboard entry named '{name}'",
                               hint=f"known: {', '.join(known[-10:])}" if known else "the leaderboard is empty")
        return _parse_row(rows[0])

    def events(self) -> pd.DataFrame:
        """Every add, oldest first (replaced versions included)."""
        rows = self._read("SELECT * FROM events ORDER BY seq")
        cols = ["seq", "name", "kind", "created", "replaced", "dev_em", "dev_f1", "public_em", "private_em",
                "test_em", "test_f1"]
        return pd.DataFrame([dict(r) for r in rows], columns=cols).astype({"dev_em": float, "test_em": float})

    def _load(self) -> list[dict]:
        rows = self._read("SELECT id, name, kind, members, created, seq, dev_n, dev_em, dev_f1, public_em, "
                          "private_em, test_n, test_em, test_f1, dev_per_id, test_per_id, extra FROM entries")
        return [_parse_row(r, vectors=False) for r in rows]

    def entries(self, by: str = "em", split: str = "dev", intervals: bool = True) -> pd.DataFrame:
        """The ranked board as a DataFrame, best first.

        Ranked by ``split`` EM then F1 (``by="em"``) or F1 then EM, ties to the earlier entry.
        With ``split="test"`` only entries with test scores are ranked. ``change`` is the rank
        now against the rank before the newest add ("new" for an entry that add created,
        "+k" moved up k places, "-k" down, "=" unchanged). ``ci_lo``/``ci_hi`` bound the
        ``by`` metric (``em_lo``/``em_hi`` always EM) with a paired bootstrap over questions.
        """
        _check_choice(by, METRICS, "by")
        _check_choice(split, SPLITS, "split")
        rows = self._load()
        columns = ["rank", "change", "name", "kind", "members", "n", "em", "f1", "em_lo", "em_hi", "f1_lo", "f1_hi",
                   "dev_em", "dev_f1", "public_em", "private_em", "test_em", "test_f1", "created", "id", "extra"]
        ranked = [r for r in rows if r[f"{split}_em"] is not None]
        if not ranked:
            return pd.DataFrame(columns=columns)
        ranked = _rank(ranked, by, split)
        before = self._ranks_before(by, split)
        newest = max(r["seq"] for r in rows)
        if intervals:
            scores = [Scores.from_json(r[f"{split}_per_id"]) for r in ranked]
            boot = Bootstrap(_union_ids(scores))
            for k, metric in enumerate(METRICS):
                vecs = [boot.vectors(sc, k) for sc in scores]
                values = np.stack([v for v, _ in vecs], axis=1)
                masks = np.stack([m for _, m in vecs], axis=1)
                for r, iv in zip(ranked, boot.interval(boot.replicates(values, masks))):
                    r[f"{metric}_lo"], r[f"{metric}_hi"] = iv.lo, iv.hi
        out = []
        for i, r in enumerate(ranked, 1):
            if r["name"] not in before:
                change = "new" if r["seq"] == newest else "="
            else:
                change = _change(before[r["name"]] - i)
            out.append({
                "rank": i, "change": change, "name": r["name"], "kind": r["kind"], "members": r["members"],
                "n": r[f"{split}_n"], "em": r[f"{split}_em"], "f1": r[f"{split}_f1"],
                "em_lo": r.get("em_lo", math.nan), "em_hi": r.get("em_hi", math.nan),
                "f1_lo": r.get("f1_lo", math.nan), "f1_hi": r.get("f1_hi", math.nan),
                "dev_em": r["dev_em"], "dev_f1": r["dev_f1"], "public_em": r["public_em"],
                "private_em": r["private_em"], "test_em": r["test_em"], "test_f1": r["test_f1"],
                "created": r["created"], "id": r["id"], "extra": r["extra"],
            })
        df = pd.DataFrame(out, columns=columns)
        num = ["em", "f1", "em_lo", "em_hi", "f1_lo", "f1_hi", "dev_em", "dev_f1", "public_em", "private_em",
               "test_em", "test_f1"]
        df[num] = df[num].astype(float)
        df["ci_lo"], df["ci_hi"] = df[f"{by}_lo"], df[f"{by}_hi"]
        return df

    def _ranks_before(self, by: str, split: str) -> dict[str, int]:
        """Ranks of the board as it stood just before the newest add (from the event history)."""
        events = self._read("SELECT * FROM events ORDER BY seq")
        live = set(self.names())
        if not events:
            return {}
        latest: dict[str, dict] = {}
        for e in events[:-1]:
            if e["name"] in live:
                latest[e["name"]] = dict(e)
        ranked = _rank([e for e in latest.values() if e[f"{split}_em"] is not None], by, split)
        return {e["name"]: i for i, e in enumerate(ranked, 1)}

    def top_two(self, by: str = "em", split: str = "dev") -> TopTwo | None:
        """Paired-bootstrap interval of (best - second best) on ``by``; None with fewer than two entries."""
        _check_choice(by, METRICS, "by")
        _check_choice(split, SPLITS, "split")
        ranked = _rank([r for r in self._load() if r[f"{split}_em"] is not None], by, split)
        if len(ranked) < 2:
            return None
        a, b = ranked[0], ranked[1]
        sa, sb = Scores.from_json(a[f"{split}_per_id"]), Scores.from_json(b[f"{split}_per_id"])
        diff, ci = Bootstrap(_union_ids([sa, sb])).difference(sa, sb, METRICS.index(by))
        return TopTwo(a["name"], b["name"], by, split, diff, ci)

    def difference(self, a: str, b: str, by: str = "em", split: str = "dev") -> tuple[float, Interval]:
        """Paired-bootstrap difference a - b of two named entries (0-100) and its 95% interval."""
        ea, eb = self.entry(a), self.entry(b)
        pa, pb = ea[f"{split}_per_id"], eb[f"{split}_per_id"]
        if not pa or not pb:
            raise HarnessError(f"both entries need {split} scores to be compared")
        boot = Bootstrap(_union_ids([pa, pb]))
        return boot.difference(pa, pb, METRICS.index(by))

    # ---------------------------------------------------------------- compare
    def compare(
        self,
        a: str,
        b: str,
        gold_answers: Mapping[str, Sequence[str]] | None = None,
        predictions_a: Mapping[str, str] | None = None,
        predictions_b: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """The dev questions where entries ``a`` and ``b`` disagree on EM, and who is right.

        Columns: ``id``, ``right`` (the name of the entry with EM 1), ``em_a``, ``em_b``,
        ``answer_a``, ``answer_b`` (stored dev predictions unless given) and ``gold`` (" | "-joined
        references, when ``gold_answers`` is given). Rows follow the order of ``a``'s questions.
        """
        ea, eb = self.entry(a), self.entry(b)
        pa, pb = ea["dev_per_id"], eb["dev_per_id"]
        if not pa or not pb:
            missing = a if not pa else b
            raise HarnessError(f"entry '{missing}' has no dev scores to compare")
        preds_a = predictions_a if predictions_a is not None else (ea["dev_predictions"] or {})
        preds_b = predictions_b if predictions_b is not None else (eb["dev_predictions"] or {})
        rows = []
        for qid, (em_a, _) in pa.items():
            if qid not in pb:
                continue
            em_b = pb[qid][0]
            if em_a == em_b:
                continue
            row = {"id": qid, "right": a if em_a > em_b else b, "em_a": em_a, "em_b": em_b,
                   "answer_a": preds_a.get(qid), "answer_b": preds_b.get(qid)}
            if gold_answers is not None:
                refs = gold_answers.get(qid)
                row["gold"] = None if refs is None else " | ".join([refs] if isinstance(refs, str) else refs)
            rows.append(row)
        columns = ["id", "right", "em_a", "em_b", "answer_a", "answer_b"]
        columns += ["gold"] if gold_answers is not None else []
        return pd.DataFrame(rows, columns=columns)

    # ---------------------------------------------------------------- export
    def export(self, out_dir: str | Path, by: str = "em", split: str = "dev") -> dict[str, Path]:
        """Write ``leaderboard.md`` (the ranked table) and ``leaderboard.html`` (scores over time)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        df = self.entries(by=by, split=split)
        top = self.top_two(by=by, split=split)
        title = f"Leaderboard ({split}, ranked by {by.upper()})"
        lines = [f"# {title}", "", f"{len(df)} entries, exported {_fmt_time(time.time())}.", ""]
        if df.empty:
            lines.append("_No entries yet._")
        else:
            table = display_table(df, by=by, split=split, width=None)
            lines += _markdown_table(table)
            if top:
                lines += ["", top.format()]
            lines += ["", "Public / private EM: the dev questions split 50/50 by a fixed hash of the id; "
                      "a public EM far above the private EM suggests over-fitting the public part.",
                      f"95% intervals: paired bootstrap over questions ({RESAMPLES} resamples, fixed seed)."]
        md = out / "leaderboard.md"
        md.write_text("\n".join(lines) + "\n", encoding="utf-8")
        page = out / "leaderboard.html"
        page.write_text(_html_page(title, self.events(), df, by, split, top), encoding="utf-8")
        return {"markdown": md, "html": page}


# --------------------------------------------------------------------------- helpers
def _check_choice(value: str, choices: Sequence[str], what: str) -> None:
    if value not in choices:
        raise HarnessError(f"unknown {what} '{value}'", hint=f"one of {', '.join(choices)}")


def _dumps_per_id(per_id: dict | None) -> str | None:
    if per_id is None:
        return None
    return json.dumps({"ids": list(per_id), "em": [e for e, _ in per_id.values()],
                       "f1": [f for _, f in per_id.values()]}, ensure_ascii=False)


def _dumps_predictions(preds: Mapping | None) -> str | None:
    return None if preds is None else json.dumps({str(k): str(v) for k, v in preds.items()}, ensure_ascii=False)


def _parse_row(row: sqlite3.Row, vectors: bool = True) -> dict:
    """A stored row as a dict; with ``vectors=False`` the per-question scores stay JSON text."""
    r = dict(row)
    r["members"] = json.loads(r["members"]) if r.get("members") else []
    for key in ("dev_per_id", "test_per_id"):
        if key in r and vectors:
            scores = Scores.from_json(r[key])
            r[key] = scores.as_dict() if scores is not None else None
    for key in ("dev_predictions", "test_predictions"):
        if key in r:
            r[key] = json.loads(r[key]) if r[key] else None
    if "extra" in r:
        r["extra"] = json.loads(r["extra"]) if r["extra"] else {}
    return r


def _rank(rows: list[dict], by: str, split: str) -> list[dict]:
    first, second = (f"{split}_em", f"{split}_f1") if by == "em" else (f"{split}_f1", f"{split}_em")
    return sorted(rows, key=lambda r: (-(r[first] or 0.0), -(r[second] or 0.0), r["created"], r["name"]))


def _change(delta: int) -> str:
    return "=" if delta == 0 else f"{delta:+d}"


def _union_ids(per_ids) -> list[str]:
    """The sorted union of the question ids of several score sets (the bootstrap's question list)."""
    seen: set[str] = set()
    for p in per_ids:
        if p is not None:
            seen.update(p.ids if isinstance(p, Scores) else p)
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


def display_table(df: pd.DataFrame, by: str = "em", split: str = "dev", width: int | None = 28) -> pd.DataFrame:
    """The board as strings, one column per figure, in the order the CLI prints them."""
    has_test = df["test_em"].notna().any()
    has_dev = df["dev_em"].notna().any()
    ci_label = f"{split} {by.upper()} 95% CI"
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
        table[f"{s} EM"] = [_num(x) for x in df[f"{s}_em"]]
        table[f"{s} F1"] = [_num(x) for x in df[f"{s}_f1"]]
        if s == split:
            table[ci_label] = [f"[{_num(lo, 1)}, {_num(hi, 1)}]" for lo, hi in zip(df["ci_lo"], df["ci_hi"])]
        if s == "dev":
            table["public EM"] = [_num(x) for x in df["public_em"]]
            table["private EM"] = [_num(x) for x in df["private_em"]]
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
_SERIES = [  # column, label, colour, marker (legend order; drawn in reverse so dev EM stays on top)
    ("dev_em", "dev EM", "#1f77b4", "dot"),
    ("test_em", "test EM", "#ff7f0e", "square"),
    ("public_em", "public EM", "#2ca02c", "ring"),
    ("private_em", "private EM", "#d62728", "ring"),
]


def _marker(cx: float, cy: float, colour: str, shape: str, tip: str = "") -> str:
    title = f"<title>{tip}</title>" if tip else ""
    if shape == "square":
        return (f'<rect x="{cx - 5.5:.1f}" y="{cy - 5.5:.1f}" width="11" height="11" fill="{colour}" '
                f'fill-opacity="0.85">{title}</rect>')
    fill = colour if shape == "dot" else "white"
    return (f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="{fill}" stroke="{colour}" '
            f'stroke-width="1.8">{title}</circle>')


def _svg_chart(events: pd.DataFrame, width: int = 860, height: int = 380) -> str:
    esc = html.escape
    if events.empty:
        return "<p>No entries yet.</p>"
    left, right, top, bottom = 56, 150, 20, 48
    pw, ph = width - left - right, height - top - bottom
    t = events["created"].astype(float).to_numpy()
    t0, t1 = float(t.min()), float(t.max())
    if t1 - t0 < 1e-9:
        t0, t1 = t0 - 1, t1 + 1
    pad = (t1 - t0) * 0.04  # keep the first and last markers off the frame
    t0, t1 = t0 - pad, t1 + pad
    scores = pd.concat([events[c] for c, *_ in _SERIES]).astype(float).dropna()
    lo = max(0.0, math.floor((scores.min() - 2) / 10) * 10) if len(scores) else 0.0
    hi = min(100.0, math.ceil((scores.max() + 2) / 10) * 10) if len(scores) else 100.0
    if hi <= lo:
        lo, hi = max(0.0, lo - 10), min(100.0, hi + 10)

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
    parts.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" fill="#555" '
                 f'transform="rotate(-90 14 {top + ph / 2})">score (0-100)</text>')

    # best dev EM so far, as a step line
    best, pts = -math.inf, []
    for tv, em in sorted(zip(t, events["dev_em"].astype(float))):
        if not math.isnan(em) and em > best:
            if pts:
                pts.append((x(tv), y(best)))
            best = em
            pts.append((x(tv), y(best)))
    if pts:
        pts.append((x(float(t.max())), y(best)))
        parts.append('<polyline fill="none" stroke="#1f77b4" stroke-opacity="0.45" stroke-width="2" '
                     f'stroke-dasharray="5 3" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')

    shown = [s for s in _SERIES if not events[s[0]].astype(float).isna().all()]
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
        parts.append(f'<text x="{lx + 20}" y="{legend_y + 4}">best dev EM</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _replaced_later(events: pd.DataFrame, ev) -> bool:
    return bool(((events["name"] == ev["name"]) & (events["seq"] > ev["seq"])).any())


def _html_page(title: str, events: pd.DataFrame, df: pd.DataFrame, by: str, split: str, top: TopTwo | None) -> str:
    esc = html.escape
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
{_svg_chart(events)}
<p class="note">One marker per submission added (hover for its name); replaced versions stay in the history.
Dots: dev EM; squares: test EM (when the test answers are known); rings: EM on the simulated public and
private halves of dev; dashed: the best dev EM so far.</p>
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
    """Score predictions with ``qa_scores`` and add (or replace) entry ``name`` on ``ws``'s board.

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
