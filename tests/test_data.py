"""Readers, validation and the demo generator (real files from ../shared/data skip when absent)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import shared_file

from harness.common.errors import DataError
from harness.tasks.qa.demo import demo_is_stale, generate_demo
from harness.tasks.qa.example import Example
from harness.tasks.qa.readers import detect_layout, read_examples, read_hf, read_hw7, read_squad, read_table
from harness.tasks.qa.validate import validate_examples

ROOT = Path(__file__).resolve().parents[1]


def _write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def _ex(i, context="abc abc", answer="abc", start=0, question="q?") -> Example:
    return Example(id=str(i), question=question, context=context, answers=(answer,), answer_starts=(start,))


# ---- real files -------------------------------------------------------------------------------

@pytest.mark.shared
def test_hw7_dev_real():
    path = shared_file("hw7/hw7_dev.json")
    warnings: list[str] = []
    examples = read_examples(path, warnings=warnings)
    assert detect_layout(path) == "hw7"
    assert len(examples) == 2863
    assert len({e.group for e in examples}) == 1255
    assert warnings == []  # every answer is at its start
    assert all(e.labelled and len(e.answers) == 1 and isinstance(e.id, str) for e in examples)
    assert all(e.context[s:s + len(a)] == a for e in examples for a, s in zip(e.answers, e.answer_starts))


@pytest.mark.shared
def test_hw7_test_real_is_unlabelled():
    examples = read_examples(shared_file("hw7/hw7_test.json"))
    assert len(examples) == 3524
    assert not any(e.labelled or e.answers or e.answer_starts for e in examples)
    assert examples[0].id == "0"


@pytest.mark.shared
def test_drcd_real():
    examples = read_examples(shared_file("drcd/DRCD_dev.json"))
    assert len(examples) == 3524
    assert len({e.group for e in examples}) == 1000
    assert all(len(e.answers) == 2 for e in examples)
    assert examples[0].meta["title"]


@pytest.mark.shared
def test_cmrc_trial_real_repairs_astral_offsets():
    # One paragraph holds U+2B6AD (outside the BMP); its annotated starts count it as two UTF-16
    # units, so five answers sit one character late and are repaired with a warning each.
    warnings: list[str] = []
    examples = read_examples(shared_file("cmrc2018/cmrc2018_trial.json"), warnings=warnings)
    assert len(examples) == 1002
    # ... and two questions are empty strings (kept, with one warning).
    assert len(warnings) == 6 and sum("TRIAL_210_QUERY" in w for w in warnings) == 5
    assert "'TRIAL_776_QUERY_4', 'TRIAL_20_QUERY_0'" in warnings[0]
    assert all(e.context[s:s + len(a)] == a for e in examples for a, s in zip(e.answers, e.answer_starts))


@pytest.mark.shared
def test_squad_real():
    examples = read_squad(shared_file("squad/squad_v1.1_dev_even_articles.json"))
    assert len(examples) == 5397
    refs = Counter(len(e.answers) for e in examples)
    assert refs.most_common(1)[0][0] == 3 and refs[3] > len(examples) / 2
    assert "-" in examples[0].group  # no paragraph ids in SQuAD: "articleIndex-paragraphIndex"


# ---- SQuAD layout -------------------------------------------------------------------------------

SQUAD_V2 = {"version": "v2.0", "data": [{"title": "Art", "paragraphs": [
    {"context": "The cat sat on the mat.", "qas": [
        {"id": "a1", "question": "Where did the cat sit?", "is_impossible": False,
         "answers": [{"text": "the mat", "answer_start": 15}]},
        {"id": "a2", "question": "Where did the dog sit?", "is_impossible": True, "answers": [],
         "plausible_answers": [{"text": "the mat", "answer_start": 15}]},
    ]},
    {"context": "Second paragraph.", "qas": [
        {"id": "a3", "question": "Which paragraph?", "answers": [{"text": "Second", "answer_start": 0}]}]},
]}]}


def test_squad_v2_impossible(tmp_path):
    examples = read_examples(_write_json(tmp_path / "v2.json", SQUAD_V2))
    by_id = {e.id: e for e in examples}
    assert by_id["a1"].answers == ("the mat",) and not by_id["a1"].is_impossible
    assert by_id["a2"].labelled and by_id["a2"].answers == () and by_id["a2"].is_impossible
    assert by_id["a1"].group == "0-0" and by_id["a3"].group == "0-1"
    assert by_id["a1"].meta["title"] == "Art"


def test_squad_without_answers_is_unlabelled(tmp_path):
    data = {"data": [{"title": "t", "paragraphs": [{"id": "P7", "context": "ctx", "qas": [
        {"id": 5, "question": "q?"}]}]}]}
    (ex,) = read_examples(_write_json(tmp_path / "test.json", data))
    assert (ex.id, ex.group, ex.labelled, ex.answers) == ("5", "P7", False, ())


def test_squad_missing_key_names_location(tmp_path):
    data = {"data": [{"title": "t", "paragraphs": [{"context": "ctx"}]}]}
    with pytest.raises(DataError, match=r"article #0 paragraph #0 lacks 'qas'"):
        read_squad(_write_json(tmp_path / "bad.json", data))


# ---- HW7 layout --------------------------------------------------------------------------------

def _hw7(questions, paragraphs=("甲乙丙丁戊",)):
    return {"questions": questions, "paragraphs": list(paragraphs)}


def test_hw7_answer_end_must_be_inclusive(tmp_path):
    q = {"id": 3, "paragraph_id": 0, "question_text": "?", "answer_text": "乙丙", "answer_start": 1,
         "answer_end": 3}  # exclusive end: wrong for HW7
    with pytest.raises(DataError, match=r"answer_end .* ids 3") as e:
        read_hw7(_write_json(tmp_path / "h.json", _hw7([q])))
    assert "inclusive" in e.value.hint


def test_hw7_bad_paragraph_id(tmp_path):
    q = {"id": 1, "paragraph_id": 4, "question_text": "?", "answer_text": None, "answer_start": None,
         "answer_end": None}
    with pytest.raises(DataError, match="paragraph_id 4"):
        read_hw7(_write_json(tmp_path / "h.json", _hw7([q])))


# ---- file and layout errors ------------------------------------------------------------------

def test_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"questions": [\n  {"id": 1,}\n]}', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json: invalid JSON at line 2, column"):
        read_examples(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_examples(tmp_path / "nope.json")


def test_wrong_layout_keys(tmp_path):
    path = _write_json(tmp_path / "x.json", {"rows": [], "meta": {}})
    with pytest.raises(DataError, match=r"expected .*found keys \['meta', 'rows'\]"):
        read_examples(path)
    with pytest.raises(DataError, match=r"hw7 layout.*found keys \['meta', 'rows'\]"):
        read_examples(path, layout="hw7")
    with pytest.raises(DataError, match="squad layout"):
        read_examples(path, layout="squad")
    with pytest.raises(DataError, match="unknown layout"):
        read_examples(path, layout="xml")


# ---- CSV / TSV / JSONL -------------------------------------------------------------------------

TRICKY = [
    {"id": "007", "question": 'Who said "hi, there"?', "context": 'Bob said "hi, there",\nthen left.',
     "answer": "Bob", "answer_start": 0},
    {"id": "8", "question": "Where, exactly?", "context": "In Paris, France; not Rome.",
     "answer": "Paris, France", "answer_start": 3},
]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_table_round_trip(tmp_path, suffix):
    import pandas as pd

    path = tmp_path / f"data{suffix}"
    frame = pd.DataFrame(TRICKY)
    if suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    examples = read_examples(path)
    assert [(e.id, e.question, e.context, e.answers, e.answer_starts) for e in examples] == [
        (r["id"], r["question"], r["context"], (r["answer"],), (r["answer_start"],)) for r in TRICKY]
    assert all(e.labelled for e in examples)


def test_table_squad_answers_column(tmp_path):
    import pandas as pd

    rows = [{"id": "a", "question": "q?", "context": "red, green", "answers": json.dumps(
        {"text": ["red", "green"], "answer_start": [0, 5]})},
        {"id": "b", "question": "q2?", "context": "none here", "answers": json.dumps({"text": [], "answer_start": []})}]
    path = tmp_path / "squadish.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    a, b = read_examples(path)
    assert a.answers == ("red", "green") and a.answer_starts == (0, 5)
    assert b.labelled and b.is_impossible
    jsonl = tmp_path / "hf_export.jsonl"
    jsonl.write_text("\n".join(json.dumps({**r, "answers": json.loads(r["answers"])}) for r in rows), encoding="utf-8")
    assert [e.answers for e in read_examples(jsonl)] == [("red", "green"), ()]


def test_table_without_answers_is_unlabelled_and_custom_columns(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("qid,q,passage,para\n1,what?,some text,p1\n2,who?,some text,p1\n", encoding="utf-8")
    examples = read_table(path, id_col="qid", question_col="q", context_col="passage", group_col="para")
    assert [(e.id, e.labelled, e.group) for e in examples] == [("1", False, "p1"), ("2", False, "p1")]
    with pytest.raises(DataError, match=r"missing column\(s\) \['id', 'question', 'context'\]; found"):
        read_table(path)


def test_table_answer_without_start_uses_first_occurrence(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": 1, "question": "q", "context": "xx yy yy", "answer": "yy"}) + "\n",
                    encoding="utf-8")
    (ex,) = read_examples(path)
    assert ex.answer_starts == (3,) and ex.group == "0-0"


def test_jsonl_bad_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 1}\n{oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl: invalid JSON at line 2"):
        read_examples(path)


# ---- validation --------------------------------------------------------------------------------

def test_duplicate_ids_named_with_count():
    examples = [_ex(i % 7) for i in range(20)]  # ids 0..6, each 2-3 times
    with pytest.raises(DataError) as e:
        validate_examples(examples, source="train.json")
    msg = str(e.value)
    assert "train.json: 7 duplicate id(s): '0' (x3), '1' (x3), '2' (x3), '3' (x3), '4' (x3)" in msg
    assert "(2 more)" in msg


def test_empty_context_is_an_error_empty_question_a_warning():
    examples = [_ex(1), _ex(2, question="  "), Example(id="3", question="q", context="\n"),
                Example(id="4", question="q", context="")]
    with pytest.raises(DataError, match=r"x: empty or blank context in 2 example\(s\): '3', '4'\n"):
        validate_examples(examples, source="x")
    _, warnings = validate_examples(examples[:2], source="x")
    assert warnings == ["x: empty or blank question in 1 example(s): '2' (kept: the model sees only the "
                        "context; fix or drop them)"]


def test_answer_not_found_lists_all_offenders():
    examples = [_ex(i, context="hello world", answer=f"zz{i}") for i in range(8)] + [_ex(99)]
    with pytest.raises(DataError) as e:
        validate_examples(examples, source="dev.csv")
    msg = str(e.value)
    assert "dev.csv: answer text not found in the context for 8 answer(s)" in msg
    assert "'0' ('zz0')" in msg and "'4' ('zz4')" in msg and "(3 more)" in msg


def test_repair_to_nearest_occurrence():
    context = "cat dog cat dog cat"  # "cat" at 0, 8, 16
    examples = [_ex("k", context=context, answer="cat", start=13), _ex("ok", context=context, answer="dog", start=4)]
    fixed, warnings = validate_examples(examples, source="f.json")
    assert fixed[0].answer_starts == (16,) and fixed[1] is examples[1]
    assert warnings == ["f.json: id 'k': answer 'cat' is not at 13; moved to the nearest occurrence at 16"]
    fixed, _ = validate_examples([_ex("k", context=context, answer="cat", start=11)])
    assert fixed[0].answer_starts == (8,)  # |11-8| < |11-16|
    with pytest.raises(DataError, match=r"not at answer_start for 1 answer\(s\): 'k' \('cat' at 13, found at 16\)"):
        validate_examples(examples, repair=False)


def test_validate_is_linear_on_30k():
    context = "字" * 300 + "答案" + "字" * 300
    examples = [_ex(i, context=context, answer="答案", start=300 if i % 10 else 5) for i in range(30_000)]
    t = time.perf_counter()
    fixed, warnings = validate_examples(examples)
    assert time.perf_counter() - t < 3
    assert len(warnings) == 3000 and all(e.answer_starts == (300,) for e in fixed)


# ---- Hugging Face -----------------------------------------------------------------------------

def test_read_hf_offline_fails_fast(tmp_path):
    code = ("from harness.tasks.qa.readers import read_hf\n"
            "try:\n    read_hf('squad', 'validation')\n"
            "except Exception as e:\n    print(type(e).__name__); print(e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert time.perf_counter() - t < 30
    assert out.stdout.startswith("DataError"), out.stdout + out.stderr
    assert "'squad'" in out.stdout and "HF_HUB_OFFLINE" in out.stdout
    assert "HF_DATASETS_CACHE" in out.stdout and "--layout squad" in out.stdout


def test_read_hf_unreachable_hub_uses_offline_mode_and_restores(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    from harness.tasks.qa import readers

    monkeypatch.setattr(readers, "hub_reachable", lambda timeout=3.0: False)
    before = datasets.config.HF_HUB_OFFLINE
    t = time.perf_counter()
    with pytest.raises(DataError, match="Hub is unreachable"):
        read_hf("no-such-user/no-such-set", "train", cache_dir=str(tmp_path))
    assert time.perf_counter() - t < 20
    assert datasets.config.HF_HUB_OFFLINE == before


# ---- demo --------------------------------------------------------------------------------------

def _digests(paths: dict) -> dict:
    return {k: hashlib.sha256(Path(p).read_bytes()).hexdigest() for k, p in paths.items()}


SMALL = {"n_train": 120, "n_dev": 40, "n_test": 40}


def test_demo_deterministic(tmp_path):
    a = generate_demo(tmp_path / "a", seed=3, **SMALL)
    b = generate_demo(tmp_path / "b", seed=3, **SMALL)
    c = generate_demo(tmp_path / "c", seed=4, **SMALL)
    assert _digests(a) == _digests(b)
    assert _digests(a)["train"] != _digests(c)["train"]


def test_demo_deterministic_across_hash_seeds(tmp_path):
    generate_demo(tmp_path / "a", seed=1, **SMALL)
    code = f"from harness.tasks.qa.demo import generate_demo; generate_demo({str(tmp_path / 'b')!r}, seed=1, **{SMALL!r})"
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True,
                   cwd=ROOT, timeout=60)
    for name in ("train.json", "dev.json", "test.json", "test_gold.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_demo_content(tmp_path):
    paths = generate_demo(tmp_path, seed=0, **SMALL)
    splits = {k: read_examples(paths[k], warnings=(w := [])) for k in ("train", "dev", "test", "test_gold")}
    assert w == []
    assert {k: len(v) for k, v in splits.items()} == {"train": 120, "dev": 40, "test": 40, "test_gold": 40}
    for k in ("train", "dev", "test_gold"):
        for e in splits[k]:
            (a,), (s,) = e.answers, e.answer_starts
            assert e.context[s:s + len(a)] == a and a not in e.question
    assert not any(e.labelled for e in splits["test"])
    assert [(e.id, e.question, e.context) for e in splits["test"]] == [
        (e.id, e.question, e.context) for e in splits["test_gold"]]
    raw = json.loads(paths["test"].read_text(encoding="utf-8"))["questions"][0]
    assert raw["answer_text"] is None and raw["answer_start"] is None and raw["answer_end"] is None
    contexts = {k: {e.context for e in splits[k]} for k in ("train", "dev", "test")}
    assert not (contexts["train"] & contexts["dev"] or contexts["train"] & contexts["test"]
                or contexts["dev"] & contexts["test"])
    lengths = [len(c) for c in contexts["train"]]
    assert 150 <= min(lengths) and max(lengths) <= 400
    starts = [e.answer_starts[0] for e in splits["train"]]
    assert len(set(starts)) > 50  # answers are not at a fixed position
    per_paragraph = Counter(e.group for e in splits["train"])
    assert max(per_paragraph.values()) >= 3


def test_demo_manifest_skips_regeneration(tmp_path):
    assert demo_is_stale(tmp_path, seed=0, **SMALL)
    paths = generate_demo(tmp_path, seed=0, **SMALL)
    assert not demo_is_stale(tmp_path, seed=0, **SMALL)
    assert demo_is_stale(tmp_path, seed=1, **SMALL)
    assert demo_is_stale(tmp_path, seed=0, n_train=121, n_dev=40, n_test=40)
    mtime = paths["train"].stat().st_mtime_ns
    generate_demo(tmp_path, seed=0, **SMALL)
    assert paths["train"].stat().st_mtime_ns == mtime  # skipped
    paths["dev"].write_text("{}", encoding="utf-8")
    assert demo_is_stale(tmp_path, seed=0, **SMALL)
    generate_demo(tmp_path, seed=0, **SMALL)
    assert not demo_is_stale(tmp_path, seed=0, **SMALL)
