"""The local leaderboard on classification and regression boards (metrics from per-example statistics)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from harness.board.stats import is_public
from harness.board.store import Leaderboard
from harness.cli import main
from harness.common.errors import HarnessError
from harness.common.workspace import Workspace
from harness.pipeline import record_entry
from harness.scores import ConfusionScheme
from harness.tasks.base import get_task
from harness.tasks.clf.example import TextExample
from harness.tasks.clf.metrics import clf_scores


def record_classification(ws, name, members, labels, metric, dev_predictions=None, dev_gold=None,
                          test_predictions=None, test_gold=None, created=None):
    """What `harness submit` records: the task's per-example statistics, handed to the board."""
    def examples(gold):
        return [TextExample(id=q, text=q, label=v) for q, v in gold.items()] if gold else None

    return record_entry(ws, get_task("classification"), name, members, dev_predictions, examples(dev_gold),
                        test_predictions, examples(test_gold), {"labels": labels}, metric, created=created)

LABELS = ["neg", "pos"]
IDS = [f"e{i}" for i in range(6)]
GOLD = dict(zip(IDS, ["pos", "pos", "pos", "pos", "neg", "neg"]))
# A predicts "pos" everywhere: right on e0-e3, accuracy 4/6, MCC 0 (a constant prediction), F1 2*4/(6+4) = 80
A = dict.fromkeys(IDS, "pos")
# B: right on e0, e4, e5: accuracy 3/6; tp 1, fn 3, tn 2, fp 0: MCC (1*2 - 0*3) / sqrt(1*4*2*5) = 2/sqrt(40)
B = dict(zip(IDS, ["pos", "neg", "neg", "neg", "neg", "neg"]))
MCC_B = 100 * 2 / np.sqrt(40)


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path)


def add_ab(ws, metric="mcc"):
    record_classification(ws, "A", ["run-a"], LABELS, metric, A, GOLD, created=1)
    record_classification(ws, "B", ["run-b"], LABELS, metric, B, GOLD, created=2)
    return Leaderboard.for_workspace(ws)


def test_hand_computed_metrics_and_the_two_rankings(ws):
    board = add_ab(ws)
    assert board.scheme == ConfusionScheme(2, ("neg", "pos")) and board.metrics == ("mcc", "accuracy")
    by_mcc = board.entries()
    assert list(by_mcc["name"]) == ["B", "A"]
    a = by_mcc.set_index("name").loc["A"]
    b = by_mcc.set_index("name").loc["B"]
    assert a["mcc"] == 0.0 and a["accuracy"] == pytest.approx(100 * 4 / 6) and a["n"] == 6
    assert b["mcc"] == pytest.approx(MCC_B) and b["accuracy"] == pytest.approx(50.0)
    assert list(board.entries(by="accuracy")["name"]) == ["A", "B"]
    for column in ("mcc_lo", "mcc_hi", "accuracy_lo", "accuracy_hi", "dev_mcc", "dev_accuracy", "public_mcc",
                   "private_mcc", "test_mcc", "test_accuracy", "ci_lo", "ci_hi"):
        assert column in by_mcc.columns
    e = board.entry("A")
    assert e["dev_f1"] == pytest.approx(80.0) and e["dev_macro_f1"] is not None and e["test_mcc"] is None
    assert e["dev_predictions"] == A


def test_intervals_contain_the_point_values(ws):
    df = add_ab(ws).entries()
    for _, row in df.iterrows():
        for metric in ("mcc", "accuracy"):
            assert row[f"{metric}_lo"] <= row[metric] <= row[f"{metric}_hi"]
    a = df.set_index("name").loc["A"]
    assert a["mcc_lo"] == a["mcc_hi"] == 0.0  # a constant prediction has MCC 0 in every replicate
    b = df.set_index("name").loc["B"]
    assert b["accuracy_lo"] < b["accuracy_hi"] and (b["ci_lo"], b["ci_hi"]) == (b["mcc_lo"], b["mcc_hi"])


def test_difference_with_itself_is_zero_and_top_two(ws):
    board = add_ab(ws)
    for metric in ("mcc", "accuracy", "macro_f1"):
        diff, ci = board.difference("B", "B", by=metric)
        assert diff == 0.0 and (ci.lo, ci.hi) == (0.0, 0.0)
    diff, ci = board.difference("B", "A")  # the primary: MCC
    assert diff == pytest.approx(MCC_B) and ci.lo <= diff <= ci.hi
    top = board.top_two()
    assert (top.first, top.second, top.metric) == ("B", "A", "mcc")
    assert f"B - A dev MCC +{MCC_B:.2f}" in top.format()


def test_public_and_private_halves(ws):
    ids = [f"x{i}" for i in range(40)]
    gold = {q: LABELS[i % 2] for i, q in enumerate(ids)}
    preds = {q: gold[q] if is_public(q) else LABELS[1 - LABELS.index(gold[q])] for q in ids}  # right on public only
    record_classification(ws, "overfit", [], LABELS, "accuracy", preds, gold)
    board = Leaderboard.for_workspace(ws)
    assert board.metrics == ("accuracy", "f1")
    row = board.entries().iloc[0]
    assert row["public_accuracy"] == 100.0 and row["private_accuracy"] == 0.0
    public = [q for q in ids if is_public(q)]
    e = board.entry("overfit")
    expect = clf_scores([LABELS.index(preds[q]) for q in public], [LABELS.index(gold[q]) for q in public], 2)
    assert e["public_mcc"] == pytest.approx(expect["mcc"]) and e["public_f1"] == pytest.approx(expect["f1"])


def test_missing_predictions_count_as_wrong_and_bad_labels_raise(ws):
    partial = {q: A[q] for q in IDS[1:]}  # no prediction for e0 (gold pos)
    record_classification(ws, "partial", [], LABELS, "mcc", partial, GOLD, test_predictions=A, test_gold=GOLD)
    e = Leaderboard.for_workspace(ws).entry("partial")
    assert e["dev_accuracy"] == pytest.approx(50.0) and e["test_accuracy"] == pytest.approx(100 * 4 / 6)
    assert e["dev_predictions"]["e0"] is None and e["dev_n"] == 6 and e["test_n"] == 6
    with pytest.raises(HarnessError, match="not one of the labels"):
        record_classification(ws, "bad", [], LABELS, "mcc", {**A, "e1": "maybe"}, GOLD)
    with pytest.raises(HarnessError, match="unknown metric"):
        record_classification(ws, "bad", [], LABELS, "pearson", A, GOLD)
    assert record_classification(ws, "nothing", [], LABELS, "mcc", None, None, A, None) is None
    assert len(Leaderboard.for_workspace(ws)) == 1


def test_multiclass_defaults_and_compare(ws):
    labels = ["a", "b", "c"]
    gold = {"1": "a", "2": "b", "3": "c", "4": "a"}
    record_classification(ws, "x", [], labels, "accuracy", {"1": "a", "2": "b", "3": "a", "4": "a"}, gold)
    record_classification(ws, "y", [], labels, "accuracy", {"1": "b", "2": "b", "3": "c", "4": "a"}, gold)
    board = Leaderboard.for_workspace(ws)
    assert board.metrics == ("accuracy", "macro_f1")
    df = board.compare("x", "y")
    assert list(df["id"]) == ["1", "3"] and list(df["right"]) == ["x", "y"]
    assert list(df["answer_a"]) == ["a", "a"] and list(df["answer_b"]) == ["b", "c"]
    assert list(df["gold"]) == ["a", "c"]  # decoded from the stored statistics


def test_compare_lists_examples_where_exactly_one_is_right(ws):
    df = add_ab(ws).compare("A", "B")
    assert list(df["id"]) == ["e1", "e2", "e3", "e4", "e5"]
    assert list(df["right"]) == ["A", "A", "A", "B", "B"]
    assert list(df.columns) == ["id", "right", "answer_a", "answer_b", "gold"]
    assert (df.loc[0, "answer_a"], df.loc[0, "answer_b"], df.loc[0, "gold"]) == ("pos", "neg", "pos")


def test_regression_board(ws):
    gold = {f"s{i}": float(i) for i in range(1, 6)}
    record_classification(ws, "perfect", [], None, "pearson", dict(gold), gold, created=1)
    # dx = (-1, -2, 1, 0, 2), dy = (-2, -1, 0, 1, 2): r = 8 / sqrt(10 * 10) = 0.8 (ranks: the same)
    record_classification(ws, "swapped", [], None, "pearson", dict(zip(gold, [2.0, 1.0, 4.0, 3.0, 5.0])), gold,
                          created=2)
    board = Leaderboard.for_workspace(ws)
    assert board.scheme.describe() == "regression" and board.metrics == ("pearson", "spearman")
    df = board.entries()
    assert list(df["name"]) == ["perfect", "swapped"]
    assert df.loc[1, "pearson"] == pytest.approx(80.0) and df.loc[1, "spearman"] == pytest.approx(80.0)
    assert df.loc[0, "pearson_lo"] <= 100.0 <= df.loc[0, "pearson_hi"] + 1e-9
    assert board.entry("swapped")["dev_combined"] == pytest.approx(80.0)
    assert board.entry("swapped")["dev_predictions"]["s1"] == 2.0
    diff, ci = board.difference("swapped", "swapped")
    assert diff == 0.0 and (ci.lo, ci.hi) == (0.0, 0.0)
    with pytest.raises(HarnessError, match="classification or QA board"):
        board.compare("perfect", "swapped")
    with pytest.raises(HarnessError, match="no prediction for 1 of 5"):
        record_classification(ws, "gap", [], None, "pearson", {"s1": 1.0, "s2": 2.0, "s3": 3.0, "s4": 4.0}, gold)


def test_one_scheme_per_board(ws):
    board = add_ab(ws)
    with pytest.raises(HarnessError, match="ranks 2-class classification") as info:
        board.add_entry("qa", dev_per_id={"q1": (1.0, 1.0)})
    assert "one board per competition" in info.value.hint and "board.sqlite" in info.value.hint
    with pytest.raises(HarnessError, match="entry 'three' is 3-class"):
        record_classification(ws, "three", [], ["a", "b", "c"], "mcc", {"1": "a"}, {"1": "a"})
    with pytest.raises(HarnessError, match="is regression"):
        record_classification(ws, "reg", [], None, "pearson", {"1": 1.0, "2": 2.0}, {"1": 1.0, "2": 3.0})
    with pytest.raises(HarnessError, match="unknown metric 'em'"):
        board.entries(by="em")
    assert len(board) == 2


def test_generic_add_entry_takes_ids_and_a_stats_matrix(tmp_path):
    board = Leaderboard(tmp_path / "lb")
    stats = np.zeros((4, 4))
    stats[[0, 1, 2, 3], [0, 3, 3, 1]] = 1.0  # cells gold*2+pred: (0,0) (1,1) (1,1) (0,1)
    board.add_entry("s", dev_per_id=(["a", "b", "c", "d"], stats), scheme={"task": "classification", "n_labels": 2},
                    metrics=["accuracy", "mcc"])
    assert board.metrics == ("accuracy", "mcc") and board.entries().loc[0, "accuracy"] == 75.0
    assert board.compare("s", "s").empty
    with pytest.raises(HarnessError, match="needs 4"):
        board.add_entry("t", dev_per_id=(["a"], np.zeros((1, 2))), scheme={"task": "classification", "n_labels": 2})


def test_export_and_chart_show_the_metric_names(ws, tmp_path):
    paths = add_ab(ws).export(tmp_path / "out")
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    assert "ranked by MCC" in md and "| dev MCC | dev Acc | dev MCC 95% CI | public MCC | private MCC |" in md
    assert "over examples" in md and "best dev MCC" in page and "<svg" in page


def test_cli_classification_board(ws):
    add_ab(ws)
    runner = CliRunner()
    result = runner.invoke(main, ["-w", str(ws.root), "leaderboard"])
    assert result.exit_code == 0, result.output
    assert "ranked by dev MCC (6 examples)" in result.output
    header = next(line for line in result.output.splitlines() if line.lstrip().startswith("rank"))
    for column in ("dev MCC", "dev Acc", "dev MCC 95% CI", "public MCC", "private MCC"):
        assert column in header
    assert next(line for line in result.output.splitlines() if line.lstrip().startswith("1 ")).split()[2] == "B"

    result = runner.invoke(main, ["-w", str(ws.root), "leaderboard", "--by", "accuracy"])
    assert result.exit_code == 0 and "ranked by dev Acc" in result.output

    result = runner.invoke(main, ["-w", str(ws.root), "leaderboard", "--by", "em"])
    assert result.exit_code == 2 and "unknown metric 'em'" in result.output and "mcc, accuracy" in result.output

    result = runner.invoke(main, ["-w", str(ws.root), "leaderboard", "compare", "A", "B"])
    assert result.exit_code == 0, result.output
    assert "5 dev examples where exactly one is right (A right on 3, B right on 2)" in result.output
    assert "MCC difference A - B" in result.output and "A label" in result.output

    result = runner.invoke(main, ["-w", str(ws.root), "leaderboard", "--by", "accuracy", "export",
                                  "--out", str(ws.root / "x")])
    assert result.exit_code == 0, result.output
    assert "ranked by Acc" in (ws.root / "x" / "leaderboard.md").read_text()
