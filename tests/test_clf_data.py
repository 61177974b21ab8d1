"""Classification data: readers (CSV/TSV/JSONL/HF), ``label_set`` and the review demo generator.

Real GLUE/Yelp files from ../shared/data skip when absent; the Hugging Face tests never need the
network (a fake data set stands in for the Hub, and the offline error must come fast).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import shared_file

from harness.common.errors import DataError, HarnessError
from harness.tasks.clf import readers
from harness.tasks.clf.demo import clf_demo_is_stale, generate_clf_demo
from harness.tasks.clf.example import TextExample
from harness.tasks.clf.readers import detect_text_layout, hf_split, label_set, read_texts

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# ---- CSV / TSV -----------------------------------------------------------------------------------

def test_csv_quoting_bom_ids_and_labels_as_written(tmp_path):
    path = _write(tmp_path / "t.csv", 'id,text,label\n'
                                      'a1,"Hello, world",positive\n'
                                      'a2,"She said ""hi""\nthen left", negative \n'
                                      '\n'
                                      'a3,plain,1.0\n'
                                      'a4,other,3.0\n', encoding="utf-8-sig")
    examples = read_texts(path)
    assert [e.id for e in examples] == ["a1", "a2", "a3", "a4"]
    assert examples[0].text == "Hello, world"
    assert examples[1].text == 'She said "hi"\nthen left'
    assert [e.label for e in examples] == ["positive", "negative", "1.0", "3.0"]  # stripped, not normalised
    assert all(e.labelled and e.text_pair is None and e.group == "" for e in examples)
    assert examples[2].meta == {"row": 2}
    assert examples[0] == TextExample("a1", "Hello, world", label="positive")  # meta is not compared


def test_tsv_keeps_quotes_as_text(tmp_path):
    path = _write(tmp_path / "sst.tsv", 'sentence\tlabel\n"quoted" start and a " stray quote\t1\nplain one \t0\n')
    examples = read_texts(path, text_column="sentence")
    assert examples[0].text == '"quoted" start and a " stray quote'
    assert examples[1].text == "plain one "  # texts are not stripped
    assert [e.id for e in examples] == ["0", "1"]  # no id column -> row numbers


def test_headerless_tsv_with_columns(tmp_path):
    path = _write(tmp_path / "cola.tsv", "gj04\t1\t\tThe sailors rode the breeze.\ngj04\t0\t*\tThe rope stretched "
                                         "the weights.\n")
    for columns in ("source,label,mark,sentence", ["source", "label", "mark", "sentence"]):
        examples = read_texts(path, columns=columns, text_column="sentence")
        assert [(e.id, e.text, e.label) for e in examples] == [
            ("0", "The sailors rode the breeze.", "1"), ("1", "The rope stretched the weights.", "0")]
    numbered = read_texts(path, header=False, text_column="3", label_column="1")
    assert [e.label for e in numbered] == ["1", "0"]


def test_header_true_with_columns_renames(tmp_path):
    path = _write(tmp_path / "t.csv", "A,B\nhello,x\nworld,y\n")
    examples = read_texts(path, columns="text,label", header=True)
    assert [(e.text, e.label) for e in examples] == [("hello", "x"), ("world", "y")]


def test_headerless_file_read_with_header_explains(tmp_path):
    path = _write(tmp_path / "cola.tsv", "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n"
                                         "gj04\t1\t\tThe weights made the rope stretch.\n")
    with pytest.raises(DataError, match="first row looks like data") as e:
        read_texts(path)
    assert "columns=" in e.value.hint


def test_pair_columns_and_group(tmp_path):
    path = _write(tmp_path / "pairs.csv", "idx,sentence1,sentence2,label,topic\n"
                                          "7,A man sleeps.,Someone rests.,entailment,t1\n"
                                          "9,A dog barks.,A cat meows.,contradiction,t2\n")
    examples = read_texts(path, text_column="sentence1", text_pair_column="sentence2", id_column="idx",
                          group_column="topic")
    assert [(e.id, e.text, e.text_pair, e.label, e.group) for e in examples] == [
        ("7", "A man sleeps.", "Someone rests.", "entailment", "t1"),
        ("9", "A dog barks.", "A cat meows.", "contradiction", "t2")]


def test_empty_pair_text_is_an_error(tmp_path):
    path = _write(tmp_path / "pairs.csv", "sentence1,sentence2,label\na,b,0\nc, ,1\nd,,0\n")
    with pytest.raises(DataError, match=r"empty 'sentence2' in 2 row\(s\): row 1 \(line 3\), row 2 \(line 4\)"):
        read_texts(path, text_column="sentence1", text_pair_column="sentence2")


def test_huge_cell(tmp_path):
    big = "word " * 60_000  # 300 KB, above the csv module's default field limit
    path = _write(tmp_path / "big.csv", f'text,label\n"{big}",1\n')
    assert read_texts(path)[0].text == big


def test_field_count_mismatch(tmp_path):
    path = _write(tmp_path / "bad.tsv", "text\tlabel\nfine\t1\ntab\tinside\t0\nshort\n")
    with pytest.raises(DataError, match=r"2 row\(s\) do not have 2 fields \(text, label\): line 3: 3; line 4: 1") as e:
        read_texts(path)
    assert "tab" in e.value.hint


def test_trailing_delimiter_is_tolerated(tmp_path):
    path = _write(tmp_path / "t.csv", "text,label\nhello,1,\nworld,0\n")
    assert [e.label for e in read_texts(path)] == ["1", "0"]


def test_txt_suffix_sniffs_tab(tmp_path):
    path = _write(tmp_path / "t.txt", "text\tlabel\na, b\t1\n")
    assert read_texts(path)[0].text == "a, b"


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_texts(path)


# ---- labels, ids, empty texts, columns --------------------------------------------------------------

def test_missing_label_column_means_unlabelled(tmp_path):
    path = _write(tmp_path / "test.csv", "id,text\nx,one\ny,two\n")
    examples = read_texts(path)
    assert [e.id for e in examples] == ["x", "y"] and not any(e.labelled for e in examples)


def test_all_blank_labels_mean_unlabelled(tmp_path):
    path = _write(tmp_path / "test.csv", "id,text,label\nx,one,\ny,two, \n")
    assert not any(e.labelled for e in read_texts(path))


def test_some_blank_labels_is_an_error(tmp_path):
    path = _write(tmp_path / "t.csv", "text,label\na,1\nb,\nc,0\nd, \n")
    with pytest.raises(DataError, match=r"2 of 4 row\(s\) have no 'label' but the others do: "
                                        r"row 1 \(line 3\), row 3 \(line 5\)"):
        read_texts(path)


def test_regression_labels(tmp_path):
    path = _write(tmp_path / "stsb.tsv", "text\tlabel\na\t3.8\nb\t 0 \nc\t5\n")
    assert [e.label for e in read_texts(path, regression=True)] == [3.8, 0.0, 5.0]
    assert [e.label for e in read_texts(path)] == ["3.8", "0", "5"]
    bad = _write(tmp_path / "bad.tsv", "text\tlabel\na\t3.8\nb\thigh\n")
    with pytest.raises(DataError, match=r"row 1 \(line 3\): 'label' value 'high' is not a finite number"):
        read_texts(bad, regression=True)


def test_duplicate_ids(tmp_path):
    path = _write(tmp_path / "t.csv", "id,text,label\nx,a,1\ny,b,1\nx,c,0\ny,d,0\nz,e,1\n")
    with pytest.raises(DataError, match=r"2 duplicate id\(s\) in 'id': 'x' \(row 0 \(line 2\), row 2 \(line 4\)\); "
                                        r"'y' \(row 1 \(line 3\), row 3 \(line 5\)\)"):
        read_texts(path)
    assert [e.id for e in read_texts(path, id_column=None)] == ["0", "1", "2", "3", "4"]


def test_blank_id(tmp_path):
    path = _write(tmp_path / "t.csv", "id,text,label\nx,a,1\n ,b,1\n")
    with pytest.raises(DataError, match=r"empty 'id' \(id\) in 1 row\(s\): row 1 \(line 3\)"):
        read_texts(path)


def test_empty_text_lists_rows(tmp_path):
    rows = "".join(f"{'' if i % 2 else 'ok'},1\n" for i in range(16))
    path = _write(tmp_path / "t.csv", "text,label\n" + rows)
    with pytest.raises(DataError, match=r"empty 'text' in 8 row\(s\): row 1 \(line 3\), row 3 \(line 5\), "
                                        r"row 5 .* row 9 \(line 11\) \.\.\. \(3 more\)"):
        read_texts(path)


def test_missing_column_names_file_column_and_columns(tmp_path):
    path = _write(tmp_path / "reviews.csv", "review,stars\ngreat,5\n")
    with pytest.raises(DataError) as e:
        read_texts(path)
    message = str(e.value)
    assert "reviews.csv" in message and "'text'" in message and "['review', 'stars']" in message
    assert "did you mean text_column='review'" in message
    assert "--text-column" in e.value.hint and "--label-column" in e.value.hint
    with pytest.raises(DataError, match=r"no text pair column 'hypothesis'; the columns are \['review', 'stars'\]"):
        read_texts(path, text_column="review", text_pair_column="hypothesis")
    with pytest.raises(DataError, match="no group column 'topic'"):
        read_texts(path, text_column="review", group_column="topic")
    assert read_texts(path, text_column="review", label_column="stars")[0].label == "5"


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no rows"):
        read_texts(_write(tmp_path / "h.csv", "text,label\n"))
    with pytest.raises(DataError, match="empty file"):
        read_texts(_write(tmp_path / "e.csv", ""))
    with pytest.raises(DataError, match="data file not found"):
        read_texts(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unknown layout 'xml'"):
        read_texts(tmp_path / "nope.csv", layout="xml")


# ---- JSON Lines ------------------------------------------------------------------------------------

def test_jsonl(tmp_path):
    lines = ['{"id": 10, "text": "first", "label": 1}', "", '{"id": 11, "text": "second", "label": 2.5}',
             "   ", '{"id": 12, "text": "third", "label": " pos "}']
    path = _write(tmp_path / "t.jsonl", "\n".join(lines) + "\n", encoding="utf-8-sig")
    examples = read_texts(path)
    assert [(e.id, e.text, e.label) for e in examples] == [("10", "first", "1"), ("11", "second", "2.5"),
                                                            ("12", "third", "pos")]


def test_jsonl_errors(tmp_path):
    path = _write(tmp_path / "bad.ndjson", '{"text": "a", "label": 1}\n\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"bad.ndjson: invalid JSON at line 3, column \d+"):
        read_texts(path)
    path = _write(tmp_path / "list.jsonl", '{"text": "a"}\n["text", "b"]\n')
    with pytest.raises(DataError, match="line 2 is a JSON list, not an object"):
        read_texts(path)
    path = _write(tmp_path / "partial.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n')
    with pytest.raises(DataError, match=r"1 of 2 row\(s\) have no 'label'.*row 1 \(line 2\)"):
        read_texts(path)
    path = _write(tmp_path / "nested.jsonl", '{"text": ["a", "b"], "label": "x"}\n')
    with pytest.raises(DataError, match="'text' is a list, not a single value"):
        read_texts(path)


def test_json_array(tmp_path):
    path = _write(tmp_path / "t.json", json.dumps([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]))
    assert [e.label for e in read_texts(path)] == ["x", "y"]


# ---- layout detection, label_set --------------------------------------------------------------------

def test_detect_text_layout(tmp_path):
    assert detect_text_layout("x.CSV") == "csv" and detect_text_layout("x.tsv") == "csv"
    assert detect_text_layout("x.jsonl") == "jsonl" and detect_text_layout("x.ndjson") == "jsonl"
    assert detect_text_layout("glue") == "hf" and detect_text_layout("Yelp/yelp_review_full") == "hf"
    with pytest.raises(DataError, match="data file not found"):
        detect_text_layout(str(tmp_path / "a" / "b" / "c"))
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="cannot tell the layout"):
        detect_text_layout(tmp_path / "data.parquet")


def test_label_set():
    def ex(label):
        return TextExample("i", "t", label=label)

    assert label_set([ex("10"), ex("2"), ex("1"), ex(None), ex("2")]) == ["1", "2", "10"]
    assert label_set([ex("positive"), ex("negative"), ex("neutral")]) == ["negative", "neutral", "positive"]
    assert label_set([ex("1.0"), ex("10"), ex("2")]) == ["1.0", "10", "2"]  # not all integers: as text
    assert label_set([ex("-1"), ex("0"), ex("1")]) == ["-1", "0", "1"]
    assert label_set([ex(None)]) == []
    with pytest.raises(DataError, match="regression"):
        label_set([ex(0.5), ex(1.5)])


# ---- Hugging Face (no network: a fake data set stands in for the Hub) --------------------------------

def _fake_hub(monkeypatch, table: dict, features: dict | None = None) -> list:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load(name, split, config, cache_dir):
        calls.append((name, split, config))
        feats = datasets.Features(features) if features else None
        return datasets.Dataset.from_dict(table, features=feats)

    monkeypatch.setattr(readers, "_load_hf", fake_load)
    return calls


def test_hf_glue_sst2_columns_split_and_test_labels(monkeypatch):
    datasets = pytest.importorskip("datasets")
    features = {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"]),
                "idx": datasets.Value("int32")}
    calls = _fake_hub(monkeypatch, {"sentence": ["good .", "bad ."], "label": [1, 0], "idx": [0, 1]}, features)
    examples = read_texts("glue", config="sst2", split="dev")
    assert calls == [("glue", "validation", "sst2")]
    assert [(e.id, e.text, e.label) for e in examples] == [("0", "good .", "1"), ("1", "bad .", "0")]
    _fake_hub(monkeypatch, {"sentence": ["a .", "b ."], "label": [-1, -1], "idx": [0, 1]}, features)
    assert not any(e.labelled for e in read_texts("glue", config="sst2", split="test"))


def test_hf_glue_pairs_and_stsb_regression(monkeypatch):
    calls = _fake_hub(monkeypatch, {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [3.8, 0.0],
                                    "idx": [5, 6]})
    examples = read_texts("glue", config="stsb", split="train")
    assert [(e.id, e.text, e.text_pair, e.label) for e in examples] == [("5", "a", "c", 3.8), ("6", "b", "d", 0.0)]
    _fake_hub(monkeypatch, {"premise": ["p"], "hypothesis": ["h"], "label": [2], "idx": [0]})
    assert read_texts("glue", config="mnli", split="dev")[0].text_pair == "h"
    _fake_hub(monkeypatch, {"question1": ["q1"], "question2": ["q2"], "label": [1], "idx": [0]})
    assert read_texts("glue", config="qqp")[0].label == "1"
    assert calls == [("glue", "train", "stsb")]


def test_hf_split_names():
    assert hf_split("glue", "sst2", "dev") == "validation"
    assert hf_split("glue", "mnli", "dev") == "validation_matched"
    assert hf_split("glue", "mnli", "test") == "test_matched"
    assert hf_split("glue", "mnli", "dev_mismatched") == "validation_mismatched"
    assert hf_split("glue", "mnli", "validation_mismatched") == "validation_mismatched"
    assert hf_split("glue", "mnli_mismatched", "dev") == "validation"  # that config has validation/test only
    assert hf_split("Yelp/yelp_review_full", None, "test") == "test"


def test_hf_yelp_and_unknown_sets(monkeypatch):
    datasets = pytest.importorskip("datasets")
    features = {"label": datasets.ClassLabel(names=["1 star", "2 star", "3 stars", "4 stars", "5 stars"]),
                "text": datasets.Value("string")}
    _fake_hub(monkeypatch, {"label": [4, 0], "text": ["loved it", "awful"]}, features)
    examples = read_texts("yelp_review_full", split="test")
    assert [(e.id, e.text, e.label) for e in examples] == [("0", "loved it", "4"), ("1", "awful", "0")]
    _fake_hub(monkeypatch, {"content": ["x", "y"], "stars": [1, 2], "id": ["a", "b"]})
    examples = read_texts("someone/reviews", layout="hf", text_column="content", label_column="stars")
    assert [(e.id, e.label) for e in examples] == [("a", "1"), ("b", "2")]
    with pytest.raises(DataError, match=r"someone/reviews \(train\): no text column 'text'"):
        read_texts("someone/reviews", layout="hf")


def test_hf_glue_needs_a_known_config():
    t = time.perf_counter()
    with pytest.raises(DataError, match="'glue' needs a config: one of cola, sst2"):
        read_texts("glue")
    with pytest.raises(DataError, match="got 'sst-2'"):
        read_texts("glue", config="sst-2")
    assert time.perf_counter() - t < 1


def test_hf_unreachable_hub_fails_fast_with_clf_hint(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    from harness.tasks.qa import readers as qa_readers

    monkeypatch.setattr(qa_readers, "hub_reachable", lambda timeout=3.0: False)
    before = datasets.config.HF_HUB_OFFLINE
    t = time.perf_counter()
    with pytest.raises(HarnessError, match=r"cannot load Hugging Face data set 'glue' \(sst2\).*Hub is unreachable") as e:
        read_texts("glue", config="sst2", split="dev", cache_dir=str(tmp_path))
    assert time.perf_counter() - t < 5
    assert datasets.config.HF_HUB_OFFLINE == before
    assert "CSV/TSV" in e.value.hint and "HF_DATASETS_OFFLINE" in e.value.hint and "HF_HOME" in e.value.hint
    assert "load_dataset('glue', 'sst2', split='validation')" in e.value.hint


def test_hf_offline_fails_fast_in_a_fresh_process(tmp_path):
    code = ("from harness.tasks.clf.readers import read_texts\n"
            "try:\n    read_texts('Yelp/yelp_review_full', split='test')\n"
            "except Exception as e:\n    print(type(e).__name__); print(e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert time.perf_counter() - t < 30  # mostly the import of datasets; the load itself fails at once
    assert out.stdout.startswith("DataError"), out.stdout + out.stderr
    assert "'Yelp/yelp_review_full'" in out.stdout and "HF_HUB_OFFLINE" in out.stdout
    assert "HF_DATASETS_OFFLINE" in out.stdout and "CSV/TSV" in out.stdout


# ---- real files ------------------------------------------------------------------------------------

COLA_COLUMNS = "source,label,mark,sentence"


@pytest.mark.shared
def test_cola_dev_real():
    examples = read_texts(shared_file("glue/CoLA/in_domain_dev.tsv"), columns=COLA_COLUMNS, text_column="sentence")
    assert len(examples) == 527
    assert label_set(examples) == ["0", "1"]
    assert examples[0].text == "The sailors rode the breeze clear of the rocks."
    assert [e.id for e in examples[:3]] == ["0", "1", "2"]


@pytest.mark.shared
def test_cola_train_real_keeps_quotes():
    examples = read_texts(shared_file("glue/CoLA/in_domain_train.tsv"), columns=COLA_COLUMNS, text_column="sentence")
    assert len(examples) == 8551 and Counter(e.label for e in examples) == {"1": 6023, "0": 2528}
    assert 'Susan whispered "Shut up".' in {e.text for e in examples}


@pytest.mark.shared
def test_cola_without_columns_explains():
    with pytest.raises(DataError, match="first row looks like data"):
        read_texts(shared_file("glue/CoLA/in_domain_dev.tsv"))


@pytest.mark.shared
def test_sst2_dev_real():
    path = shared_file("glue/SST-2/dev.tsv")
    examples = read_texts(path, text_column="sentence")
    assert len(examples) == 872
    assert label_set(examples) == ["0", "1"] and Counter(e.label for e in examples) == {"1": 444, "0": 428}
    assert examples[0].text.startswith("it 's a charming and often affecting journey")
    with pytest.raises(DataError, match=r"did you mean text_column='sentence'"):
        read_texts(path)


@pytest.mark.shared
def test_yelp_sample_real():
    examples = read_texts(shared_file("yelp/yelp_review_full_sample.csv"))
    assert len(examples) == 1000
    assert label_set(examples) == ["0", "1", "2", "3", "4"]
    assert Counter(e.label for e in examples) == {k: 200 for k in "01234"}
    assert len({e.id for e in examples}) == 1000 and examples[0].id == "252354"
    assert all(e.text.strip() for e in examples)


# ---- demo --------------------------------------------------------------------------------------------

SMALL = {"n_train": 300, "n_dev": 100, "n_test": 100}


def _digests(paths: dict) -> dict:
    return {k: hashlib.sha256(Path(p).read_bytes()).hexdigest() for k, p in paths.items()}


def test_demo_deterministic(tmp_path):
    a = generate_clf_demo(tmp_path / "a", seed=3, **SMALL)
    b = generate_clf_demo(tmp_path / "b", seed=3, **SMALL)
    c = generate_clf_demo(tmp_path / "c", seed=4, **SMALL)
    assert _digests(a) == _digests(b)
    assert _digests(a)["train"] != _digests(c)["train"]


def test_demo_deterministic_across_hash_seeds(tmp_path):
    generate_clf_demo(tmp_path / "a", seed=1, **SMALL)
    code = (f"from harness.tasks.clf.demo import generate_clf_demo; "
            f"generate_clf_demo({str(tmp_path / 'b')!r}, seed=1, **{SMALL!r})")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True,
                   cwd=ROOT, timeout=60)
    for name in ("train.csv", "dev.csv", "test.csv", "test_gold.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("clf-demo")
    paths = generate_clf_demo(out, seed=0)
    return paths, {k: read_texts(paths[k]) for k in ("train", "dev", "test", "test_gold")}


def test_demo_files_and_ids(demo):
    paths, splits = demo
    assert {k: len(v) for k, v in splits.items()} == {"train": 2000, "dev": 400, "test": 400, "test_gold": 400}
    with paths["test"].open(encoding="utf-8", newline="") as f:
        assert next(csv.reader(f)) == ["id", "text"]
    assert not any(e.labelled for e in splits["test"])
    assert all(e.labelled for k in ("train", "dev", "test_gold") for e in splits[k])
    ids = [e.id for k in ("train", "dev", "test") for e in splits[k]]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"r\d{5}", i) for i in ids)
    assert ids[:2] == ["r00000", "r00001"] and ids[-1] == "r02799"
    assert [(e.id, e.text) for e in splits["test"]] == [(e.id, e.text) for e in splits["test_gold"]]
    texts = [e.text for k in ("train", "dev", "test") for e in splits[k]]
    assert len(set(texts)) == len(texts)
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) >= 8 and max(lengths) <= 60 and len(set(lengths)) > 30


def test_demo_class_balance_and_noise(demo):
    paths, splits = demo
    for k in ("train", "dev", "test_gold"):
        counts = Counter(e.label for e in splits[k])
        shares = {label: counts[label] / len(splits[k]) for label in counts}
        assert set(shares) == {"negative", "neutral", "positive"}
        assert 0.35 <= shares["positive"] <= 0.45 and 0.2 <= shares["neutral"] <= 0.3, (k, shares)
        assert max(shares.values()) == shares["positive"]
    assert Counter(e.label for e in splits["dev"]) == {"positive": 160, "negative": 140, "neutral": 100}
    manifest = json.loads(paths["manifest"].read_text(encoding="utf-8"))
    assert manifest["noisy_train_labels"] == 100 and manifest["sizes"] == {"train": 2000, "dev": 400, "test": 400}
    assert any(" not " in e.text for e in splits["dev"]) and any(" never " in e.text for e in splits["dev"])


def test_demo_is_learnable_but_not_by_word_counts(demo):
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    _, splits = demo
    vec = CountVectorizer(token_pattern=r"[a-z']+")
    x_train = vec.fit_transform([e.text for e in splits["train"]])
    model = LogisticRegression(max_iter=2000).fit(x_train, [e.label for e in splits["train"]])
    predicted = model.predict(vec.transform([e.text for e in splits["dev"]]))
    accuracy = (predicted == [e.label for e in splits["dev"]]).mean()
    assert 0.55 < accuracy < 0.9, accuracy  # well above the 40% majority class, far from perfect


def test_demo_manifest_skips_regeneration(tmp_path):
    assert clf_demo_is_stale(tmp_path, seed=0, **SMALL)
    paths = generate_clf_demo(tmp_path, seed=0, **SMALL)
    assert not clf_demo_is_stale(tmp_path, seed=0, **SMALL)
    assert clf_demo_is_stale(tmp_path, seed=1, **SMALL)
    assert clf_demo_is_stale(tmp_path, seed=0, n_train=301, n_dev=100, n_test=100)
    mtime = paths["train"].stat().st_mtime_ns
    generate_clf_demo(tmp_path, seed=0, **SMALL)
    assert paths["train"].stat().st_mtime_ns == mtime  # skipped
    generate_clf_demo(tmp_path, seed=0, force=True, **SMALL)
    assert paths["train"].stat().st_mtime_ns >= mtime
    paths["dev"].write_text("id,text,label\n", encoding="utf-8")
    assert clf_demo_is_stale(tmp_path, seed=0, **SMALL)
    generate_clf_demo(tmp_path, seed=0, **SMALL)
    assert not clf_demo_is_stale(tmp_path, seed=0, **SMALL)
