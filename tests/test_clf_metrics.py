"""harness.tasks.clf.metrics: hand-computed cases, agreement with sklearn/scipy, the sufficient-statistics identity."""

from __future__ import annotations

import ast
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from harness.common.errors import HarnessError
from harness.scores import CLASSIFICATION_METRICS, REGRESSION_METRICS, example_stats, rankdata, stats_metrics
from harness.tasks.clf.metrics import accuracy, clf_scores, f1_binary, macro_f1, mcc, pearson, spearman

SEEDS = range(5)
SIZES = (1, 2, 3, 5, 10, 37, 200, 500)


def _assert_scores_equal(got: dict, want: dict, tol: float = 1e-9) -> None:
    assert set(got) == set(want)
    for key in want:
        assert float(got[key]) == pytest.approx(float(want[key]), abs=tol), key


# ------------------------------------------------------------------ hand-computed cases

def test_binary_confusion_by_hand():
    # gold 1 1 1 1 0 0 0 0
    # pred 1 1 1 0 1 0 0 0  -> tp=3, fn=1, fp=1, tn=3
    gold = [1, 1, 1, 1, 0, 0, 0, 0]
    pred = [1, 1, 1, 0, 1, 0, 0, 0]
    assert accuracy(pred, gold) == pytest.approx(6 / 8)
    # F1 = 2tp / (2tp + fp + fn) = 6 / 8
    assert f1_binary(pred, gold) == pytest.approx(0.75)
    # class 0: tp=3 (tn), same counts -> 0.75; macro = 0.75
    assert macro_f1(pred, gold) == pytest.approx(0.75)
    # MCC = (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (9 - 1) / sqrt(4^4) = 0.5
    assert mcc(pred, gold) == pytest.approx(0.5)
    # positive=0 scores the other class: tp=3, fp=1, fn=1 -> 0.75 as well
    assert f1_binary(pred, gold, positive=0) == pytest.approx(0.75)
    assert clf_scores(pred, gold, 2) == pytest.approx(
        {"accuracy": 75.0, "f1": 75.0, "macro_f1": 75.0, "mcc": 50.0, "n": 8})


def test_asymmetric_binary_by_hand():
    # gold 1 1 1 1 0 0, pred 1 1 0 0 0 1 -> tp=2, fn=2, fp=1, tn=1
    gold, pred = [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1]
    assert accuracy(pred, gold) == pytest.approx(0.5)
    assert f1_binary(pred, gold) == pytest.approx(4 / 7)  # 4 / (4 + 1 + 2)
    # class 0: M00 = 1, predicted 0 three times, gold 0 twice -> 2 / 5
    assert macro_f1(pred, gold) == pytest.approx((4 / 7 + 0.4) / 2)
    # tp tn - fp fn = 2 - 2 = 0: defined (non-zero denominator) and exactly 0
    assert mcc(pred, gold) == 0.0


def test_multiclass_mcc_and_macro_f1_by_hand():
    # gold 0 0 1 1 2 2, pred 0 1 1 1 2 0: correct c = 4 of s = 6
    # t (gold counts) = [2, 2, 2], p (pred counts) = [2, 3, 1], sum p_k t_k = 4 + 6 + 2 = 12
    # MCC = (4*6 - 12) / sqrt((36 - 14) (36 - 12)) = 12 / sqrt(22 * 24)
    gold, pred = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    assert mcc(pred, gold) == pytest.approx(12 / math.sqrt(22 * 24))
    assert accuracy(pred, gold) == pytest.approx(4 / 6)
    # per-class F1 = 2 M_kk / (p_k + t_k): 2/4, 4/5, 2/3
    assert macro_f1(pred, gold) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    scores = clf_scores(pred, gold, 3)
    assert "f1" not in scores
    assert scores["mcc"] == pytest.approx(100 * 12 / math.sqrt(22 * 24))


def test_macro_f1_ignores_labels_absent_from_both_sides():
    # n_labels = 3 but label 2 never occurs: class 0 F1 = 2*1/(1+2), class 1 F1 = 2*2/(3+2)
    gold, pred = [0, 1, 0, 1], [0, 1, 1, 1]
    want = (2 / 3 + 0.8) / 2
    assert macro_f1(pred, gold, n_labels=3) == pytest.approx(want)
    assert macro_f1(pred, gold) == pytest.approx(want)
    assert clf_scores(pred, gold, 3)["macro_f1"] == pytest.approx(100 * want)
    # a label only predicted counts (F1 0): class 2 predicted once, never gold
    assert macro_f1([0, 2], [0, 1]) == pytest.approx((1.0 + 0.0 + 0.0) / 3)


def test_degenerate_classification_is_zero_not_nan():
    # no positives anywhere: F1 undefined -> 0; a constant side makes MCC undefined -> 0
    assert f1_binary([0, 0, 0], [0, 0, 0]) == 0.0
    assert mcc([0, 0, 0], [0, 0, 0]) == 0.0
    assert mcc([1, 1, 1], [0, 1, 0]) == 0.0
    assert accuracy([0, 0, 0], [0, 0, 0]) == 1.0
    assert macro_f1([0, 0, 0], [0, 0, 0]) == 1.0  # only label 0 present, F1 = 1
    # perfect and inverted predictions
    assert mcc([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert mcc([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)


def test_pearson_and_spearman_by_hand():
    # x = 1 2 3, y = 1 2 4: dx = (-1, 0, 1), dy = (-4/3, -1/3, 5/3)
    # sum dx dy = 3, sum dx^2 = 2, sum dy^2 = 42/9 -> r = 3 / sqrt(2 * 42/9) = sqrt(27/28)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(math.sqrt(27 / 28))
    assert spearman([1, 2, 3], [1, 2, 4]) == pytest.approx(1.0)  # monotone
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties: ranks x = (1, 2.5, 2.5, 4), ranks y = (1, 3, 2, 4); centred (-1.5, 0, 0, 1.5) and
    # (-1.5, .5, -.5, 1.5): cross 4.5, squares 4.5 and 5 -> rho = 4.5 / sqrt(22.5) = sqrt(0.9)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))
    scores = clf_scores([1, 2, 3], [1, 2, 4], None)
    assert scores["pearson"] == pytest.approx(100 * math.sqrt(27 / 28))
    assert scores["spearman"] == pytest.approx(100.0)
    assert scores["combined"] == pytest.approx(50 * (math.sqrt(27 / 28) + 1))
    assert scores["n"] == 3


def test_constant_sides_give_zero():
    for x, y in [([0.1, 0.1, 0.1], [1, 2, 3]), ([1, 2, 3], [2, 2, 2]), ([5.0], [3.0]), ([1, 1], [1, 1])]:
        assert pearson(x, y) == 0.0
        assert spearman(x, y) == 0.0
        assert clf_scores(x, y, None) == {"pearson": 0.0, "spearman": 0.0, "combined": 0.0, "n": len(x)}


def test_rankdata_by_hand():
    # sorted: 5 (rank 1), 10 (rank 2), 20 20 20 (ranks 3, 4, 5 -> 4)
    assert rankdata([10, 20, 20, 5, 20]).tolist() == [2.0, 4.0, 4.0, 1.0, 4.0]
    assert rankdata([3.5]).tolist() == [1.0]
    assert rankdata([]).tolist() == []
    assert rankdata([2, 1]).dtype == np.float64


@pytest.mark.parametrize("module", ["harness.tasks.clf.metrics", "harness.scores"])
def test_module_imports_numpy_only(module):
    import importlib

    tree = ast.parse(Path(importlib.import_module(module).__file__).read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots <= {"__future__", "collections", "dataclasses", "numpy", "harness"}, roots


# ------------------------------------------------------------------ agreement with sklearn / scipy

def _label_pairs(seeds):
    """(pred, gold, C) cases: uniform, skewed, labels missing on one side, constant sides."""
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for n in SIZES:
            for c in range(2, 6):
                gold = rng.integers(0, c, n)
                yield rng.integers(0, c, n), gold, c
                noisy = np.where(rng.random(n) < 0.7, gold, rng.integers(0, c, n))  # mostly right
                yield noisy, gold, c
                yield rng.integers(0, max(1, c - 1), n), rng.choice(c, n, p=_skewed(c)), c
                yield np.full(n, c - 1), gold, c


def _skewed(c: int) -> np.ndarray:
    p = np.array([4.0] + [1.0] * (c - 1))
    return p / p.sum()


def test_classification_matches_sklearn():
    sklearn = pytest.importorskip("sklearn")
    import sklearn.metrics as skm

    seeds = range(3)  # sklearn's per-call overhead dominates this file's run time
    checked = 0
    with warnings.catch_warnings(), sklearn.config_context(skip_parameter_validation=True):
        warnings.simplefilter("ignore")
        for pred, gold, c in _label_pairs(seeds):
            assert accuracy(pred, gold) == pytest.approx(skm.accuracy_score(gold, pred), abs=1e-12)
            want_macro = skm.f1_score(gold, pred, average="macro", zero_division=0)
            assert macro_f1(pred, gold) == pytest.approx(want_macro, abs=1e-12)
            assert macro_f1(pred, gold, n_labels=c) == pytest.approx(want_macro, abs=1e-12)
            want_mcc = skm.matthews_corrcoef(gold, pred)
            assert mcc(pred, gold) == pytest.approx(want_mcc, abs=1e-12)
            want = {"accuracy": skm.accuracy_score(gold, pred), "macro_f1": want_macro, "mcc": want_mcc}
            if c == 2:
                want_f1 = skm.f1_score(gold, pred, average="binary", pos_label=1, zero_division=0)
                assert f1_binary(pred, gold) == pytest.approx(want_f1, abs=1e-12)
                want["f1"] = want_f1
                want_f1_neg = skm.f1_score(gold, pred, average="binary", pos_label=0, zero_division=0)
                assert f1_binary(pred, gold, positive=0) == pytest.approx(want_f1_neg, abs=1e-12)
            want = {k: 100 * v for k, v in want.items()}
            want["n"] = len(gold)
            _assert_scores_equal(clf_scores(pred, gold, c), want)
            checked += 1
    assert checked == len(seeds) * len(SIZES) * 4 * 4


def test_string_labels_match_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    names = np.array(["neg", "neu", "pos"])
    gold, pred = names[rng.integers(0, 3, 60)], names[rng.integers(0, 3, 60)]
    assert macro_f1(pred, gold) == pytest.approx(skm.f1_score(gold, pred, average="macro"))
    assert mcc(pred, gold) == pytest.approx(skm.matthews_corrcoef(gold, pred))
    assert f1_binary(pred, gold, positive="pos") == pytest.approx(
        skm.f1_score(gold, pred, labels=["pos"], average="macro"))


def _float_pairs():
    """(x, y) cases: continuous, correlated, heavy ties, constant sides."""
    for seed in SEEDS:
        rng = np.random.default_rng(100 + seed)
        for n in SIZES:
            x = rng.normal(size=n)
            yield x, rng.normal(size=n)
            yield x, 2 * x + rng.normal(scale=0.5, size=n) + 10
            yield rng.integers(0, 4, n).astype(float), rng.integers(0, 6, n) / 5  # many ties
            yield np.round(rng.uniform(0, 5, n), 1), np.full(n, 2.5)
            yield np.full(n, 0.1), x


def test_regression_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x, y in _float_pairs():
            if len(x) < 2:
                want_p = want_s = 0.0  # scipy refuses n = 1; a single point is constant
            else:
                want_p = float(stats.pearsonr(x, y)[0])
                want_s = float(stats.spearmanr(x, y)[0])
                want_p, want_s = (0.0 if math.isnan(v) else v for v in (want_p, want_s))
            assert pearson(x, y) == pytest.approx(want_p, abs=1e-9)
            assert spearman(x, y) == pytest.approx(want_s, abs=1e-9)
            _assert_scores_equal(clf_scores(x, y, None), {
                "pearson": 100 * want_p, "spearman": 100 * want_s,
                "combined": 50 * (want_p + want_s), "n": len(x)})
            checked += 1
    assert checked == len(SEEDS) * len(SIZES) * 5


def test_rankdata_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        for n in SIZES:
            for x in (rng.normal(size=n), rng.integers(0, 3, n), np.round(rng.uniform(size=n), 1), np.ones(n)):
                assert np.array_equal(rankdata(x), stats.rankdata(x, method="average"))
    big = np.random.default_rng(0).integers(0, 1000, 200_000)  # vectorised: instant
    assert np.array_equal(rankdata(big), stats.rankdata(big))


# ------------------------------------------------------------------ sufficient statistics

def _task_data(rng, n, c):
    if c is None:
        x = rng.normal(size=n)
        return np.round(x + rng.normal(scale=0.7, size=n), 1), np.round(x, 1)  # rounded: ties
    gold = rng.integers(0, c, n)
    return np.where(rng.random(n) < 0.6, gold, rng.integers(0, c, n)), gold


TASKS = (2, 3, 5, None)


@pytest.mark.parametrize("c", TASKS)
def test_stats_full_sample_equals_clf_scores(c):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        for n in SIZES:
            pred, gold = _task_data(rng, n, c)
            stats = example_stats(pred, gold, c)
            assert stats.dtype == np.float64
            assert stats.shape == (n, 10 if c is None else c * c)
            got = stats_metrics(stats.sum(0), n, c)
            assert all(np.shape(v) == () for v in got.values())
            _assert_scores_equal(got, clf_scores(pred, gold, c))


def test_classification_stats_are_confusion_one_hots():
    stats = example_stats([0, 2, 1], [1, 2, 0], 3)
    want = np.zeros((3, 9))
    want[0, 1 * 3 + 0] = want[1, 2 * 3 + 2] = want[2, 0 * 3 + 1] = 1  # cell gold*C + pred
    assert np.array_equal(stats, want)


def test_regression_stats_columns():
    x, y = np.array([1.0, 2.0, 4.0]), np.array([3.0, 3.0, 9.0])
    stats = example_stats(x, y, None)
    dx, dy = x - x.mean(), y - y.mean()
    rx, ry = np.array([1.0, 2.0, 3.0]) - 2, np.array([1.5, 1.5, 3.0]) - 2
    want = np.stack([dx, dy, dx * dx, dy * dy, dx * dy, rx, ry, rx * rx, ry * ry, rx * ry], axis=1)
    assert np.allclose(stats, want, atol=1e-15)
    assert np.allclose(stats.sum(0)[[0, 1, 5, 6]], 0.0)


@pytest.mark.parametrize("c", TASKS)
def test_weighted_sums_equal_scores_of_repeated_rows(c):
    for seed in SEEDS:
        rng = np.random.default_rng(1000 + seed)
        for n in (1, 4, 30, 300):
            pred, gold = _task_data(rng, n, c)
            stats = example_stats(pred, gold, c)
            weights = [rng.multinomial(n, np.full(n, 1 / n)),  # a bootstrap replicate
                       rng.integers(0, 4, n),
                       np.full(n, 3)]
            for w in weights:
                if w.sum() == 0:
                    continue
                got = stats_metrics(w @ stats, w.sum(), c)
                want = clf_scores(np.repeat(pred, w), np.repeat(gold, w), c)
                if c is None and not np.all(w == w[0]):
                    # spearman of a resample uses the full-sample ranks of its rows (documented
                    # approximation): it is the Pearson correlation of those ranks
                    r = np.repeat(rankdata(pred), w), np.repeat(rankdata(gold), w)
                    want["spearman"] = 100 * pearson(*r)
                    want["combined"] = (want["pearson"] + want["spearman"]) / 2
                _assert_scores_equal(got, want)


def test_uniform_repeats_keep_spearman_exact():
    # repeating every row k times maps each average rank r to k r - (k-1)/2 (affine), so the
    # full-sample-rank approximation is exact there, ties included
    x, y = np.array([1.0, 2.0, 2.0, 5.0, 3.0]), np.array([2.0, 1.0, 1.0, 4.0, 4.0])
    got = stats_metrics(3 * example_stats(x, y, None).sum(0), 15, None)
    assert float(got["spearman"]) == pytest.approx(100 * spearman(np.repeat(x, 3), np.repeat(y, 3)))


@pytest.mark.parametrize("c", TASKS)
def test_stats_metrics_is_vectorised(c):
    rng = np.random.default_rng(42)
    n = 50
    pred, gold = _task_data(rng, n, c)
    stats = example_stats(pred, gold, c)
    counts = rng.multinomial(n, np.full(n, 1 / n), size=6)
    counts[2] = 0  # an empty replicate
    got = stats_metrics(counts @ stats, counts.sum(1), c)
    assert set(got) == set(clf_scores(pred, gold, c))
    for key, values in got.items():
        assert values.shape == (6,)
        for b in range(6):
            one = stats_metrics(counts[b] @ stats, counts[b].sum(), c)[key]
            np.testing.assert_allclose(values[b], one, rtol=0, atol=1e-12)
    for key in got:
        if key != "n":
            assert np.isnan(got[key][2]) and not np.isnan(got[key][[0, 1, 3, 4, 5]]).any()
    assert got["n"][2] == 0
    # any leading shape
    grid = stats_metrics((counts @ stats).reshape(2, 3, -1), counts.sum(1).reshape(2, 3), c)
    for key in got:
        np.testing.assert_array_equal(grid[key].ravel(), got[key])


def test_constant_resample_is_zero_not_noise():
    # a replicate that draws one row many times: constant on both sides -> 0, not rounding noise
    # (values picked so that for row 1, weight 7, both one-pass variances and the covariance come
    # out as +2.8e-17 rounding noise: without the constancy tolerance pearson would be 1.0)
    x, y = np.array([0.41, 0.91, 0.04, 0.82]), np.array([0.42, 0.83, 0.01, 0.37])
    stats = example_stats(x, y, None)
    for i in range(4):
        for k in (3, 7):
            w = np.zeros(4)
            w[i] = k
            got = stats_metrics(w @ stats, k, None)
            assert {key: float(v) for key, v in got.items()} == {
                "pearson": 0.0, "spearman": 0.0, "combined": 0.0, "n": float(k)}
    # only y constant (rows 1 and 2 of another sample share y = 0.4): still 0
    stats = example_stats([0.1, 0.7, 0.3, 0.9], [0.2, 0.4, 0.4, 0.8], None)
    got = stats_metrics(stats[1] + stats[2], 2, None)
    assert float(got["pearson"]) == 0.0 and float(got["spearman"]) == 0.0


def test_undefined_classification_stats_are_zero():
    # every row the same cell: MCC and the absent positive class's F1 are undefined -> 0
    got = stats_metrics(np.array([5.0, 0, 0, 0]), 5, 2)
    assert {k: float(v) for k, v in got.items()} == {
        "accuracy": 100.0, "f1": 0.0, "macro_f1": 100.0, "mcc": 0.0, "n": 5.0}


# ------------------------------------------------------------------ metric selection and errors

def test_metric_selection():
    pred, gold = [0, 1, 1], [0, 1, 0]
    assert set(clf_scores(pred, gold, 2, metrics=["mcc"])) == {"mcc", "n"}
    assert set(clf_scores(pred, gold, 2, metrics="f1")) == {"f1", "n"}
    assert set(clf_scores(pred, gold, 2)) == {*CLASSIFICATION_METRICS, "n"}
    assert set(clf_scores(pred, gold, 3)) == {*CLASSIFICATION_METRICS, "n"} - {"f1"}
    assert set(clf_scores([1.0, 2.0], [2.0, 3.0], None)) == {*REGRESSION_METRICS, "combined", "n"}
    assert set(clf_scores([1.0, 2.0], [2.0, 3.0], None, metrics=["combined"])) == {"combined", "n"}


@pytest.mark.parametrize("n_labels, metrics, valid", [
    (2, ["accuracy", "bleu"], "accuracy, f1, macro_f1, mcc"),
    (3, ["f1"], "accuracy, macro_f1, mcc"),  # binary F1 only for 2 classes
    (None, ["mcc"], "pearson, spearman, combined"),
])
def test_unknown_metric_names_the_valid_ones(n_labels, metrics, valid):
    pred, gold = ([0, 1], [1, 1]) if n_labels else ([0.5, 1.0], [1.0, 2.0])
    with pytest.raises(HarnessError) as err:
        clf_scores(pred, gold, n_labels, metrics=metrics)
    assert valid in str(err.value)
    assert metrics[-1] in err.value.message


@pytest.mark.parametrize("call", [
    lambda: clf_scores([], [], 2),
    lambda: clf_scores([], [], None),
    lambda: clf_scores([0, 1], [0], 2),
    lambda: clf_scores([0.5], [0.5, 1.0], None),
    lambda: clf_scores([0, 3], [0, 1], 3),  # label out of range
    lambda: clf_scores([0, -1], [0, 1], 2),
    lambda: clf_scores([0, 0.5], [0, 1], 2),  # not a label index
    lambda: clf_scores(["a", "b"], ["a", "b"], 2),
    lambda: clf_scores([0, 1], [0, 1], 1),  # fewer than 2 classes
    lambda: clf_scores([np.nan, 1.0], [0.0, 1.0], None),
    lambda: example_stats([0, 1], [0], 2),
    lambda: example_stats([0, 2], [0, 1], 2),
    lambda: example_stats([], [], None),
    lambda: accuracy([1, 2], [1]),
    lambda: mcc([], []),
    lambda: pearson([1.0, 2.0], [1.0]),
    lambda: stats_metrics(np.zeros(9), 3, 2),  # 3x3 sums for a binary task
    lambda: stats_metrics(np.zeros(4), 3, None),
    lambda: stats_metrics(np.zeros((4, 10)), np.zeros(3), None),  # count shape
])
def test_errors(call):
    with pytest.raises(HarnessError):
        call()
