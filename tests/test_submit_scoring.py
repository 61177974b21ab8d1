"""harness.submission (CSV write/read) and QA file scoring (harness.tasks.qa.scoring)."""

from __future__ import annotations

import csv
import os
import stat

import pytest
from conftest import shared_file
from harness.submission import ScoreReport
from harness.tasks.qa.scoring import score_file, score_predictions

from harness.common.errors import HarnessError
from harness.submission import read_submission, write_submission
from harness.tasks.qa.example import Example

TRICKY = {
    "1": "台北市",
    "2": "Smith, John",
    "3": 'the "Big" Apple',
    "4": "line one\nline two",
    "5": "NA",
    "6": "",
    "7": "，逗號,comma",
    "8": "  spaced  ",
}


# ------------------------------------------------------------------ submit

def test_round_trip_keeps_every_answer_exactly(tmp_path):
    path = write_submission(tmp_path / "sub" / "deep" / "out.csv", TRICKY, list(TRICKY))
    assert path.is_file()
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # no BOM
    assert raw.startswith(b"ID,Answer\r\n")
    answers, problems = read_submission(path)
    assert answers == TRICKY and problems == []
    # any RFC 4180 reader sees the same rows
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ID", "Answer"] and rows[1:] == [[k, v] for k, v in TRICKY.items()]


def test_ids_order_missing_answers_and_custom_columns(tmp_path):
    path = write_submission(tmp_path / "s.csv", {"b": "B"}, ["c", "b", "a"],
                            id_column="id", answer_column="answer")
    with path.open(encoding="utf-8", newline="") as f:
        assert list(csv.reader(f)) == [["id", "answer"], ["c", ""], ["b", "B"], ["a", ""]]
    answers, _ = read_submission(path, id_column="id", answer_column="answer")
    assert answers == {"c": "", "b": "B", "a": ""}


def test_answer_for_unknown_id_is_an_error_naming_ids(tmp_path):
    answers = {f"x{i}": "?" for i in range(7)} | {"a": "A"}
    with pytest.raises(HarnessError) as err:
        write_submission(tmp_path / "s.csv", answers, ["a"])
    msg = str(err.value)
    assert "7 answer(s)" in msg and "'x0'" in msg and "'x4'" in msg and "'x5'" not in msg
    assert "and 2 more" in msg
    assert not list(tmp_path.iterdir())  # nothing written


def test_atomic_write_leaves_no_temp_file_and_replaces(tmp_path, monkeypatch):
    target = tmp_path / "s.csv"
    target.write_text("old content", encoding="utf-8")
    write_submission(target, {"a": "A"}, ["a"])
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # an ordinary file's mode
    assert read_submission(target)[0] == {"a": "A"}

    # a failure at the last step keeps the previous file whole and removes the temp file
    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("harness.common.io.os.replace", failing_replace)
    with pytest.raises(HarnessError, match="disk full"):
        write_submission(target, {"a": "new"}, ["a"])
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]
    assert read_submission(target)[0] == {"a": "A"}


def test_strip_commas(tmp_path):
    path = write_submission(tmp_path / "s.csv", {"1": "1,000，人", "2": "a, b"}, ["1", "2"],
                            strip_commas=True)
    assert read_submission(path)[0] == {"1": "1000人", "2": "a b"}
    assert b'"' not in path.read_bytes()  # nothing left that needs quoting


def test_read_reports_duplicates_missing_column_and_odd_rows(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("\ufeffID,Answer\n1,first\n2,NA\n1,second\n\n,orphan\n3\n", encoding="utf-8")
    answers, problems = read_submission(path)
    assert answers == {"1": "first", "2": "NA", "3": ""}
    assert [(p.kind, p.id, p.line) for p in problems] == [
        ("duplicate", "1", 4), ("empty_id", "", 6), ("short_row", "3", 7)]

    path.write_text("Id,Prediction\n1,x\n", encoding="utf-8")
    with pytest.raises(HarnessError, match="header found: Id,Prediction"):
        read_submission(path)
    assert read_submission(path, answer_column="prediction")[0] == {"1": "x"}  # case-insensitive
    with pytest.raises(HarnessError, match="not found"):
        read_submission(tmp_path / "nope.csv")
    path.write_bytes("ID,Answer\n1,台北\n".encode("big5"))
    with pytest.raises(HarnessError, match="not UTF-8"):
        read_submission(path)


# ------------------------------------------------------------------ scoring

GOLD = [
    Example("q1", "?", "", answers=("Denver Broncos",), answer_starts=(0,)),
    Example("q2", "?", "", answers=("台北市", "台北"), answer_starts=(0, 0)),
    Example("q3", "?", "", answers=("1990年",), answer_starts=(0,)),
    Example("q4", "?", "", answers=(), answer_starts=()),  # SQuAD v2 no-answer
    Example("q5", "?", "", answers=("the Eiffel Tower",), answer_starts=(0,)),
]


def test_gold_scored_against_itself_is_perfect(tmp_path):
    pred = {ex.id: (ex.answers[0] if ex.answers else "") for ex in GOLD}
    report = score_predictions(pred, GOLD)
    assert (report.em, report.f1, report.n_gold, report.n_scored) == (100.0, 100.0, 5, 5)
    path = write_submission(tmp_path / "gold.csv", pred, [ex.id for ex in GOLD])
    assert score_file(path, GOLD).f1 == 100.0


def test_gold_file_against_itself_real_drcd(tmp_path):
    from harness.tasks.qa.readers import read_squad

    gold = read_squad(shared_file("drcd/DRCD_dev.json"))
    path = write_submission(tmp_path / "drcd.csv", {ex.id: ex.answers[0] for ex in gold},
                            [ex.id for ex in gold])
    report = score_file(path, gold)
    assert (report.em, report.f1, report.n_gold) == (100.0, 100.0, len(gold))
    assert not (report.missing_ids or report.extra_ids or report.duplicate_ids)


def test_perturbed_predictions_hand_computed():
    pred = {
        "q1": "Denver",  # EM 0; [denver] vs [denver, broncos]: P = 1, R = 1/2, F1 = 2/3
        "q2": "台北市政府",  # EM 0; vs 台北市: run 3, P = 3/5, R = 1 -> 0.75; vs 台北: P = 2/5, R = 1 -> 4/7
        "q3": "1990年。",  # EM 1 (。 removed), F1 1
        "q4": "",  # no-answer predicted empty: EM 1, F1 1
        "q5": "Eiffel",  # EM 0; [eiffel] vs [eiffel, tower]: F1 2/3
    }
    report = score_predictions(pred, GOLD)
    assert report.em == pytest.approx(100 * 2 / 5)  # 40.00
    assert report.f1 == pytest.approx(100 * (2 / 3 + 0.75 + 1 + 1 + 2 / 3) / 5)  # 81.67
    assert report.per_id["q2"] == (0.0, pytest.approx(0.75))
    lines = report.format().splitlines()
    assert lines[:3] == ["EM  40.00", "F1  81.67", "questions: 5 gold, 5 with a prediction"]


def test_missing_extra_duplicate_ids_reported(tmp_path):
    path = tmp_path / "s.csv"
    rows = ["ID,Answer", "q1,Denver Broncos", "q1,Denver", "q2,台北"] + [f"x{i},?" for i in range(12)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = score_file(path, GOLD)
    assert report.n_scored == 2 and report.missing_ids == ["q3", "q4", "q5"]
    assert report.extra_ids == [f"x{i}" for i in range(12)]
    assert report.duplicate_ids == ["q1"]
    # q1 keeps its first answer: EM 1; q2 EM 1; q3, q5 missing -> 0; q4 missing -> "" = right
    assert report.em == pytest.approx(60.0)
    text = report.format()
    assert "missing predictions: 3: q3, q4, q5" in text
    assert "ids not in gold (ignored): 12: x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 ... and 2 more" in text
    assert "duplicate ids (first answer kept): 1: q1" in text


def test_unlabelled_gold_is_an_error():
    gold = GOLD + [Example("t1", "?", "ctx", labelled=False)]
    with pytest.raises(HarnessError, match="gold file has no answers"):
        score_predictions({}, gold)
    assert isinstance(score_predictions({}, GOLD), ScoreReport)
