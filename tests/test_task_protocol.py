"""A third task kind, built from the Task protocol alone, runs through the shared commands unchanged:
init, train, predict, submit (an ensemble with fitted weights), leaderboard, score."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.scores import MeanScheme
from harness.submission import ScoreReport, read_submission
from harness.tasks.base import DemoSpec, Task, get_task, register_task
from harness.weights import search_weights

SCHEME = MeanScheme(("accuracy",), "examples")


@dataclass(frozen=True)
class Line:
    id: str
    text: str
    label: str | None

    @property
    def labelled(self) -> bool:
        return self.label is not None


@dataclass
class Rows:
    input_ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray | None
    token_type_ids: np.ndarray | None = None
    example_ids: list = field(default_factory=list)

    def __len__(self):
        return len(self.input_ids)

    def label_arrays(self):
        return {"labels": self.labels}


@dataclass
class Logits:
    example_ids: list
    logits: np.ndarray


def _probs(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class KeywordTask:
    """Does a line mention fruit? Labels "no"/"yes"; JSON Lines in, id,label out; accuracy."""

    kind = "toy-keyword"
    unit = "lines"
    layouts = ("jsonl",)
    read_options = frozenset()
    fold_rule = "round robin"
    metric_names = ("accuracy",)
    default_metric = "accuracy"
    submission_columns = ("id", "label")
    param_defaults = {"max_length": 32}
    unused_params = frozenset({"doc_stride", "max_query_length", "max_offset", "split_chars", "max_answer_length",
                               "n_best", "null_threshold", "vocab_size"})
    decoding_params = frozenset()
    ensemble_options = {}
    model_class = "AutoModelForSequenceClassification"
    LABELS = ["no", "yes"]

    def read(self, location, layout, **options):
        rows = [json.loads(x) for x in Path(location).read_text().splitlines() if x.strip()]
        return [Line(str(r["id"]), r["text"], r.get("label")) for r in rows]

    def detect_layout(self, path):
        return "jsonl"

    def texts(self, examples):
        return [ex.text for ex in examples]

    def label_info(self, examples):
        return {"labels": self.LABELS}

    def reference(self, example):
        return example.label

    def metrics(self, info):
        return self.metric_names

    def head(self, info):
        return {"num_labels": 2}

    def check_config(self, cfg):
        pass

    def encode(self, tokenizer, examples, cfg, train, info, cache_dir=None):
        ids = tokenizer([ex.text for ex in examples], truncation=True, max_length=cfg.windows.max_length)["input_ids"]
        lengths = np.array([len(x) for x in ids], np.int32)
        input_ids = np.zeros((len(ids), int(lengths.max())), np.int32)
        for i, x in enumerate(ids):
            input_ids[i, :len(x)] = x
        labels = np.array([self.LABELS.index(ex.label) for ex in examples]) if train else None
        return Rows(input_ids, lengths, labels, example_ids=[ex.id for ex in examples])

    def predict(self, model, rows, info, batch_size, accelerator=None, progress=False):
        from harness.train.batching import forward_batches

        out = np.zeros((len(rows), 2), np.float32)
        for index, logits in forward_batches(model, rows, batch_size, accelerator, progress):
            out[index] = logits
        return Logits(list(rows.example_ids), out)

    def _predictions(self, logits):
        return {q: self.LABELS[int(k)] for q, k in zip(logits.example_ids, logits.logits.argmax(axis=1))}

    def evaluate(self, logits, examples, cfg, info):
        preds = self._predictions(logits)
        return {**self.score(preds, examples, info), "predictions": preds}

    def save_logits(self, path, logits, meta):
        from harness.runs import write_npz

        return write_npz(path, {"logits": logits.logits, "ids": np.asarray(logits.example_ids, dtype=str)},
                         dict(meta), "toy-logits", 1)

    def load_logits(self, path):
        from harness.runs import read_npz

        arrays, _ = read_npz(path, "toy-logits", 1, "toy logits")
        return Logits([str(x) for x in arrays["ids"]], arrays["logits"])

    def merge_folds(self, parts, example_ids, meta):
        out = np.zeros((len(example_ids), 2), np.float32)
        for index, logits in parts:
            out[np.asarray(index)] = logits.logits
        return Logits(list(example_ids), out)

    def folds(self, examples, k, seed, splits=None):
        return np.arange(len(examples)) % k

    def tune_decoding(self, logits, examples, cfg, space, metric):
        return None

    def ensemble(self, members, examples, weights, cfg, options):
        ids = [ex.id for ex in examples]
        w = np.ones(len(members)) if weights is None else np.asarray(weights, float)
        total = sum(wi * _probs(m.logits[[m.example_ids.index(q) for q in ids]]) for wi, m in zip(w, members))
        return self._predictions(Logits(ids, total))

    def fit_weights(self, members, examples, metric, method, cfg, options):
        weights, singles = search_weights(lambda w: self.score(self.ensemble(members, examples, w, cfg, options),
                                                               examples, {})[metric], len(members), method)
        return weights, {"members": singles}

    def score(self, preds, examples, info):
        gold = [ex for ex in examples if ex.labelled]
        return {"accuracy": 100.0 * float(np.mean([preds.get(ex.id) == ex.label for ex in gold]))}

    def board_stats(self, preds, examples, info):
        gold = [ex for ex in examples or () if ex.labelled]
        if not gold:
            return None
        return SCHEME, [ex.id for ex in gold], np.array([[float(preds.get(ex.id) == ex.label)] for ex in gold])

    def score_file(self, path, gold, id_column, answer_column, info=None):
        preds, _ = read_submission(path, id_column=id_column, answer_column=answer_column)
        return ScoreReport(scores=self.score(preds, gold, {}), n_gold=len(gold),
                           n_scored=sum(ex.id in preds for ex in gold), unit=self.unit)

    def demo(self):
        return DemoSpec("toy", write_lines, "jsonl", "en")


FRUIT = ["apple", "pear", "plum", "fig"]
OTHER = ["table", "river", "cloud", "stone", "lamp", "road"]


def write_lines(out_dir, seed=0, n=(160, 60, 60)):
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, k = {}, 0
    for split, size in zip(("train", "dev", "test"), n):
        rows = []
        for _ in range(size):
            words = rng.sample(OTHER, 3)
            yes = rng.random() < 0.5
            if yes:
                words[rng.randrange(3)] = rng.choice(FRUIT)
            rows.append({"id": f"l{k}", "text": " ".join(words), "label": "yes" if yes else "no"})
            k += 1
        gold = out_dir / f"{split}.jsonl"
        gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files[split] = gold
        if split == "test":
            files["test_gold"] = gold
            files["test"] = out_dir / "test_nolabel.jsonl"
            files["test"].write_text("".join(json.dumps({**r, "label": None}) + "\n" for r in rows))
    return files


@pytest.fixture(scope="module")
def toy_task():
    return register_task(KeywordTask())


def test_the_toy_kind_satisfies_the_protocol(toy_task):
    assert isinstance(toy_task, Task) and get_task("toy-keyword") is toy_task

    class Incomplete:
        kind = "broken"

    with pytest.raises(TypeError, match="lacks"):
        register_task(Incomplete())


@pytest.mark.slow
def test_a_third_task_kind_runs_through_the_shared_commands(toy_task, tmp_path):
    files = write_lines(tmp_path / "data")
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, ["-w", str(tmp_path), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = run("init", "toy", "--task", "toy-keyword", "--train", str(files["train"]), "--dev", str(files["dev"]),
              "--test", str(files["test"]), "--test-gold", str(files["test_gold"]))
    assert "language: en" in out and "train 160" in out
    for name, seed in (("a", 1), ("b", 2)):
        out = run("train", "--recipe", "tiny", "--name", name, "--set", "epochs=4", "--set", "lr=1e-3",
                  "--set", f"seed={seed}", "--set", "batch_size=16")
        assert "epoch 4:" in out and f"run {name}: dev Acc" in out
    out = run("submit", "--runs", "a,b", "--fit-weights", "--name", "mix")
    assert "result.csv" in out
    preds, _ = read_submission(tmp_path / "result.csv", id_column="id", answer_column="label")
    gold = toy_task.read(files["test_gold"], "jsonl")
    assert set(preds) == {ex.id for ex in gold} and set(preds.values()) <= {"yes", "no"}
    accuracy = 100 * np.mean([preds[ex.id] == ex.label for ex in gold])
    board = run("leaderboard", "--split", "test")
    assert "mix" in board and f"{accuracy:.2f}" in board
    scored = run("score", str(tmp_path / "result.csv"), "--gold", str(files["test_gold"]), "--task", "toy-keyword")
    assert f"Acc {accuracy:.2f}" in scored
