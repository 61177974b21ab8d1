"""The leaderboard's SQLite schema, the low-level row helpers, and the migration of boards of the
previous, QA-only schema (columns ``dev_em``, ``dev_f1``, ...) in place."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

import numpy as np

from harness.board.stats import Stats, is_public
from harness.scores import QA, Scheme

SPLITS = ("dev", "test")
METRIC_COLUMNS = ("dev_metrics", "public_metrics", "private_metrics", "test_metrics")

SCHEMA = """
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




def has_schema(con: sqlite3.Connection) -> bool:
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {"entries", "events"} <= names


def split_metrics(scheme: Scheme, dev: Stats | None, test: Stats | None) -> dict[str, dict | None]:
    """The four metric dicts of an entry: dev, its public and private halves, test."""
    out = dict.fromkeys(METRIC_COLUMNS)
    if dev is not None:
        public = np.array([is_public(q) for q in dev.ids], dtype=bool)
        out["dev_metrics"] = dev.metrics(scheme)
        out["public_metrics"] = dev.metrics(scheme, public)
        out["private_metrics"] = dev.metrics(scheme, ~public)
    if test is not None:
        out["test_metrics"] = test.metrics(scheme)
    return out



def migrate(con: sqlite3.Connection) -> None:
    """Rewrite a board of the previous, QA-only schema (``dev_em``, ``dev_f1``, ... columns) in place."""
    if "dev_em" not in columns(con, "entries"):
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        if "dev_em" in columns(con, "entries"):  # unless a racing process just did it
            entries, events = fetch(con, "entries ORDER BY id"), fetch(con, "events ORDER BY seq")
            con.execute("ALTER TABLE entries RENAME TO entries_v1")
            con.execute("ALTER TABLE events RENAME TO events_v1")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            for r in entries:
                dev, test = Stats.from_json(r["dev_per_id"]), Stats.from_json(r["test_per_id"])
                row = {k: r[k] for k in ("id", "name", "kind", "members", "created", "seq", "dev_n", "test_n",
                                         "dev_predictions", "test_predictions", "extra")}
                row["dev_per_id"], row["test_per_id"] = (s.to_json() if s else None for s in (dev, test))
                row.update({k: dumps(v) for k, v in split_metrics(QA, dev, test).items()})
                insert(con, "entries", row)
            for e in events:
                pair = {s: None if e[f"{s}_em"] is None else {"em": e[f"{s}_em"], "f1": e[f"{s}_f1"]}
                        for s in SPLITS}
                half = {s: None if e[f"{s}_em"] is None else {"em": e[f"{s}_em"]} for s in ("public", "private")}
                insert(con, "events", {
                    **{k: e[k] for k in ("seq", "name", "kind", "created", "replaced")},
                    "dev_metrics": dumps(pair["dev"]), "public_metrics": dumps(half["public"]),
                    "private_metrics": dumps(half["private"]), "test_metrics": dumps(pair["test"])})
            con.execute("DROP TABLE entries_v1")
            con.execute("DROP TABLE events_v1")
            write_meta(con, QA, QA.default_metrics())
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise



def columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}


def fetch(con: sqlite3.Connection, source: str) -> list[dict]:
    cur = con.execute(f"SELECT * FROM {source}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def insert(con: sqlite3.Connection, table: str, row: Mapping) -> int:
    cols = list(row)
    return con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       [row[c] for c in cols]).lastrowid


def write_meta(con: sqlite3.Connection, scheme: Scheme, metrics: Sequence[str]) -> None:
    con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("scheme", json.dumps(scheme.as_dict())), ("metrics", json.dumps(list(metrics)))])


def dumps(obj) -> str | None:
    return None if obj is None else json.dumps(obj, ensure_ascii=False)
