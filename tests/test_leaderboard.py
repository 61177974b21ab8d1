"""The local leaderboard: ranking, rank changes, bootstrap intervals, public/private, compare, export, CLI."""

from __future__ import annotations

import multiprocessing
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from harness.board.stats import Bootstrap, is_public
from harness.board.store import Leaderboard
from harness.cli import main
from harness.pipeline import record_entry
from harness.scores import QA
from harness.tasks.base import get_task
from harness.tasks.qa.example import Example


def record_submission(ws, name, members, dev_predictions=None, dev_gold=None, test_predictions=None, test_gold=None,
                      extra=None, created=None):
    """What `harness submit` records: the QA task's per-question EM/F1, handed to the board."""
    return record_entry(ws, get_task("qa"), name, members, dev_predictions, dev_gold, test_predictions, test_gold,
                        {}, "em", extra=extra, created=created)
from harness.common.workspace import Workspace

IDS = [f"q{i:03d}" for i in range(40)]


def vec(em_bits, f1=None, ids=IDS):
    """{id: (em, f1)} from 0/1 EM bits (F1 defaults to EM)."""
    f1 = f1 if f1 is not None else em_bits
    return {q: (float(e), float(f)) for q, e, f in zip(ids, em_bits, f1)}


def right_on(k, n=len(IDS), f1_wrong=0.0):
    """Right on the first k questions; the others get F1 ``f1_wrong``."""
    return vec([1] * k + [0] * (n - k), [1.0] * k + [f1_wrong] * (n - k))


@pytest.fixture
def board(tmp_path):
    return Leaderboard(Workspace(tmp_path).leaderboard)


def test_ranked_by_em_then_f1_and_by_f1(board):
    board.add_entry("a", members=["r1"], dev_per_id=right_on(20, f1_wrong=0.1), created=1)   # EM 50, F1 55
    board.add_entry("b", members=["r2"], dev_per_id=right_on(20, f1_wrong=0.5), created=2)   # EM 50, F1 75
    board.add_entry("c", members=["r3"], dev_per_id=right_on(24, f1_wrong=0.0), created=3)   # EM 60, F1 60
    df = board.entries(by="em")
    assert list(df["name"]) == ["c", "b", "a"]
    assert list(df["rank"]) == [1, 2, 3]
    assert df.loc[0, "em"] == pytest.approx(60.0) and df.loc[1, "f1"] == pytest.approx(75.0)
    assert list(board.entries(by="f1")["name"]) == ["b", "c", "a"]
    assert board.path.name == "board.sqlite" and board.path.parent.name == "leaderboard"


def test_rank_change_after_a_better_entry_and_replacement(board):
    board.add_entry("a", dev_per_id=right_on(20), created=1)
    board.add_entry("b", dev_per_id=right_on(10), created=2)
    assert dict(zip(*board.entries()[["name", "change"]].T.values)) == {"a": "=", "b": "new"}
    board.add_entry("c", dev_per_id=right_on(30), created=3)
    df = board.entries()
    assert list(df["name"]) == ["c", "a", "b"]
    assert list(df["change"]) == ["new", "-1", "-1"]
    # re-adding b with a better score replaces it (same id, one row) and moves it up two places
    old_id = int(df.loc[df["name"] == "b", "id"].iloc[0])
    new_id = board.add_entry("b", dev_per_id=right_on(35), created=4)
    df = board.entries()
    assert new_id == old_id and len(df) == 3
    assert list(df["name"]) == ["b", "c", "a"]
    assert list(df["change"]) == ["+2", "-1", "-1"]
    assert len(board.events()) == 4  # history keeps the replaced version


def test_bootstrap_interval_contains_estimate_and_narrows():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 2000):
        ids = [f"q{i}" for i in range(n)]
        per_id = vec(rng.integers(0, 2, n), ids=ids)
        boot = Bootstrap(ids)
        v, m = boot.vectors(per_id, 0)
        (ci,) = boot.interval(boot.replicates(v[:, None], m[:, None]))
        point = 100 * v.mean()
        assert ci.lo <= point <= ci.hi
        widths.append(ci.hi - ci.lo)
    assert widths[1] < widths[0] / 4  # ~ 1/sqrt(n): 10x narrower expected


def test_entries_carry_intervals_around_their_scores(board):
    board.add_entry("a", dev_per_id=right_on(25, f1_wrong=0.3))
    row = board.entries().iloc[0]
    assert row["em_lo"] <= row["em"] <= row["em_hi"] and row["em_lo"] < row["em_hi"]
    assert row["f1_lo"] <= row["f1"] <= row["f1_hi"]
    assert board.entries(by="f1").iloc[0]["ci_lo"] == row["f1_lo"]


def test_top_two_identical_entries_do_not_differ(board):
    bits = [i % 3 == 0 for i in range(len(IDS))]
    board.add_entry("a", dev_per_id=vec(bits))
    board.add_entry("b", dev_per_id=vec(bits))
    top = board.top_two()
    assert not top.differ and top.diff == 0.0
    assert top.format().startswith("top two differ: no (diff 95% CI [0.00, 0.00]")


def test_top_two_all_right_vs_half_right_differ(board):
    board.add_entry("half", dev_per_id=vec([i % 2 for i in range(len(IDS))]))
    board.add_entry("all", dev_per_id=right_on(len(IDS)))
    top = board.top_two()
    assert (top.first, top.second) == ("all", "half")
    assert top.differ and top.diff == pytest.approx(50.0) and top.ci.lo > 0
    assert top.format().startswith("top two differ: yes (diff 95% CI [")


def _add_many(args):
    path, tag = args
    board = Leaderboard(path)
    for i in range(20):
        board.add_entry(f"{tag}-{i}", members=[tag], dev_per_id=right_on(i % len(IDS)))


def test_two_processes_writing_at_once(tmp_path):
    path = tmp_path / "leaderboard"
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ctx.Pool(2) as pool:
        pool.map(_add_many, [(path, "p"), (path, "q")])
    board = Leaderboard(path)
    assert len(board) == 40 and len(board.events()) == 40
    with sqlite3.connect(board.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert list(board.entries()["rank"]) == list(range(1, 41))


def test_public_private_split_is_stable_and_about_half():
    ids = [f"question-{i}" for i in range(4000)]
    first = [is_public(q) for q in ids]
    assert first == [is_public(q) for q in ids]
    assert 0.46 < sum(first) / len(ids) < 0.54


def test_public_and_private_em_columns(board):
    public_only = {q: (float(is_public(q)), float(is_public(q))) for q in IDS}
    board.add_entry("overfit", dev_per_id=public_only)
    row = board.entries().iloc[0]
    assert row["public_em"] == 100.0 and row["private_em"] == 0.0


def test_compare_lists_exactly_the_disagreeing_ids(board):
    a_bits = [1, 1, 0, 0, 1, 0] + [1] * (len(IDS) - 6)
    b_bits = [1, 0, 1, 0, 0, 0] + [1] * (len(IDS) - 6)
    board.add_entry("a", dev_per_id=vec(a_bits), dev_predictions={q: f"A{q}" for q in IDS})
    board.add_entry("b", dev_per_id=vec(b_bits), dev_predictions={q: f"B{q}" for q in IDS})
    gold = {q: [f"gold {q}", "alt"] for q in IDS}
    df = board.compare("a", "b", gold_answers=gold)
    assert list(df["id"]) == ["q001", "q002", "q004"]
    assert list(df["right"]) == ["a", "b", "a"]
    assert list(df["answer_a"]) == ["Aq001", "Aq002", "Aq004"] and df.loc[0, "answer_b"] == "Bq001"
    assert df.loc[0, "gold"] == "gold q001 | alt"
    assert "gold" not in board.compare("a", "b").columns


def test_export_writes_markdown_and_html(board, tmp_path):
    board.add_entry("a", members=["r1", "r2"], dev_per_id=right_on(20), test_per_id=right_on(18), created=100)
    board.add_entry("b", members=["r3"], dev_per_id=right_on(30), created=200)
    paths = board.export(tmp_path / "out")
    md = paths["markdown"].read_text()
    page = paths["html"].read_text()
    assert "| rank | change | name |" in md and "| 1 | new | b |" in md
    assert "top two differ:" in md
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and page.count("<circle") >= 6
    assert "<title>a (submission" in page


def test_record_submission_scores_and_stores_predictions(tmp_path):
    ws = Workspace(tmp_path)
    dev = [Example(id="d1", question="q", context="the cat sat", answers=("cat",), answer_starts=(4,)),
           Example(id="d2", question="q", context="a dog ran", answers=("dog",), answer_starts=(2,))]
    test = [Example(id="t1", question="q", context="c", labelled=False)]
    entry_id = record_submission(ws, "sub1", ["run-a"], {"d1": "the cat", "d2": "dog ran"}, dev,
                                 {"t1": "x"}, test, {"note": 1})
    e = Leaderboard.for_workspace(ws).entry("sub1")
    assert e["id"] == entry_id and e["dev_em"] == 50.0 and e["test_em"] is None
    assert e["dev_per_id"]["d2"][0] == 0.0 and e["dev_per_id"]["d2"][1] == pytest.approx(2 / 3)
    assert e["dev_predictions"] == {"d1": "the cat", "d2": "dog ran"} and e["extra"] == {"note": 1}
    assert record_submission(ws, "nothing", ["r"], None, None, {"t1": "x"}, test, None) is None


def test_cli_leaderboard_without_a_competition(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["-w", str(tmp_path), "leaderboard"])
    assert result.exit_code == 0 and "the leaderboard is empty" in result.output
    assert not (tmp_path / "leaderboard").exists()  # looking does not create the board

    board = Leaderboard(Workspace(tmp_path).leaderboard)
    board.add_entry("half", members=["run-1", "run-2", "run-3", "a-very-long-run-name-indeed"],
                    dev_per_id=vec([i % 2 for i in range(len(IDS))]), created=1,
                    dev_predictions={q: "h" for q in IDS})
    board.add_entry("all", members=["run-9"], dev_per_id=right_on(len(IDS)), created=2,
                    dev_predictions={q: "a" for q in IDS})
    result = runner.invoke(main, ["-w", str(tmp_path), "leaderboard"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("rank"))
    for column in ("change", "name", "members", "dev EM", "dev F1", "95% CI", "public EM", "private EM", "created"):
        assert column in header
    assert any(line.split()[:3] == ["1", "new", "all"] for line in lines)
    assert "top two differ: yes" in result.output

    result = runner.invoke(main, ["-w", str(tmp_path), "leaderboard", "--by", "f1"])
    assert result.exit_code == 0 and "ranked by dev F1" in result.output

    result = runner.invoke(main, ["-w", str(tmp_path), "leaderboard", "compare", "all", "half"])
    assert result.exit_code == 0, result.output
    assert "20 dev questions disagree" in result.output and "q000" in result.output and "q001" not in result.output

    result = runner.invoke(main, ["-w", str(tmp_path), "leaderboard", "export", "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "leaderboard.md").exists() and (tmp_path / "x" / "leaderboard.html").exists()

    result = runner.invoke(main, ["-w", str(tmp_path), "leaderboard", "compare", "all", "nope"])
    assert result.exit_code == 2 and "no leaderboard entry named 'nope'" in result.output


_OLD_SCHEMA = """
CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, members TEXT NOT NULL,
    created REAL NOT NULL, seq INTEGER NOT NULL, dev_n INTEGER, dev_em REAL, dev_f1 REAL,
    public_em REAL, private_em REAL, test_n INTEGER, test_em REAL, test_f1 REAL,
    dev_per_id TEXT, test_per_id TEXT, dev_predictions TEXT, test_predictions TEXT, extra TEXT
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, kind TEXT NOT NULL, created REAL NOT NULL,
    replaced INTEGER NOT NULL, dev_em REAL, dev_f1 REAL, public_em REAL, private_em REAL, test_em REAL, test_f1 REAL
);
"""


def test_a_board_of_the_previous_schema_opens_and_keeps_working(tmp_path):
    import json

    path = tmp_path / "leaderboard" / "board.sqlite"
    path.parent.mkdir()
    ids = IDS[:4]
    with sqlite3.connect(path) as con:
        con.executescript(_OLD_SCHEMA)
        for seq, (name, em) in enumerate([("old", [1, 0, 0, 0]), ("older", [1, 1, 0, 0])], 1):
            f1 = [0.5 * e + 0.5 for e in em]
            dev_em, dev_f1 = 25.0 * sum(em), 100 * sum(f1) / 4
            con.execute("INSERT INTO events (name, kind, created, replaced, dev_em, dev_f1, public_em, private_em) "
                        "VALUES (?, 'submission', ?, 0, ?, ?, 1.0, 2.0)", (name, seq, dev_em, dev_f1))
            con.execute(
                "INSERT INTO entries (name, kind, members, created, seq, dev_n, dev_em, dev_f1, public_em, "
                "private_em, dev_per_id, dev_predictions, extra) "
                "VALUES (?, 'submission', '[\"r\"]', ?, ?, 4, ?, ?, 1.0, 2.0, ?, ?, '{}')",
                (name, seq, seq, dev_em, dev_f1, json.dumps({"ids": ids, "em": em, "f1": f1}),
                 json.dumps({q: f"{name}-{q}" for q in ids})))
    board = Leaderboard(path.parent)
    df = board.entries()
    assert list(df["name"]) == ["older", "old"] and list(df["em"]) == [50.0, 25.0]
    assert df.loc[0, "f1"] == pytest.approx(75.0) and df.loc[0, "em_lo"] <= 50.0 <= df.loc[0, "em_hi"]
    old = board.entry("old")
    assert old["dev_per_id"][ids[0]] == (1.0, 1.0) and old["dev_predictions"][ids[1]] == "old-q001"
    public = [q for q in ids if is_public(q)]
    assert old["public_em"] == (100.0 * (ids[0] in public) / len(public) if public else None)  # recomputed
    events = board.events()
    assert list(events["dev_em"]) == [25.0, 50.0] and list(events["public_em"]) == [1.0, 1.0]
    assert board.scheme == QA and board.metrics == ("em", "f1")
    assert list(board.compare("older", "old")["id"]) == ["q001"]
    board.add_entry("new", dev_per_id=vec([1, 1, 1, 0], ids=ids))
    assert list(board.entries()["name"]) == ["new", "older", "old"] and len(board.events()) == 3
    with sqlite3.connect(path) as con:
        columns = {r[1] for r in con.execute("PRAGMA table_info(entries)")}
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "dev_em" not in columns and "dev_metrics" in columns and {"meta", "entries", "events"} <= tables
    assert not {"entries_v1", "events_v1"} & tables


def test_qa_intervals_are_the_bootstrap_of_the_plain_means(board):
    per_id = right_on(23, f1_wrong=0.4)
    board.add_entry("a", dev_per_id=per_id)
    row = board.entries().iloc[0]
    boot = Bootstrap(sorted(IDS))
    v, m = boot.vectors(per_id, 0)
    (ci,) = boot.interval(boot.replicates(v[:, None], m[:, None]))
    assert (row["em_lo"], row["em_hi"]) == pytest.approx((ci.lo, ci.hi))
