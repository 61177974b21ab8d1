"""The span decoder equals a plain nested-loop reference (tests/reference_decode.py)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.tasks.qa.example import Example
from harness.tasks.qa import decode
from harness.tasks.qa.decode import Span, best_spans, decode_windows
from harness.tasks.qa.windows import Windows, make_windows
from reference_decode import reference_best_spans, reference_decode

from conftest import shared_file


def _random_batch(rng, rows, positions):
    s = rng.standard_normal((rows, positions)).astype(np.float32)
    e = rng.standard_normal((rows, positions)).astype(np.float32)
    s_ok = rng.random((rows, positions)) < rng.uniform(0.1, 1.0)
    e_ok = rng.random((rows, positions)) < rng.uniform(0.1, 1.0)
    s_ok[::4] = False  # some rows with no valid span at all
    e_ok[1::7] = False
    return s, e, s_ok, e_ok


def _assert_same_spans(got, ref):
    starts, ends, scores = got
    for r, row in enumerate(ref):
        k = len(row)
        assert starts[r, :k].tolist() == [c[0] for c in row]
        assert ends[r, :k].tolist() == [c[1] for c in row]
        assert scores[r, :k].tolist() == [c[2] for c in row]
        assert (starts[r, k:] == -1).all() and (ends[r, k:] == -1).all() and np.isneginf(scores[r, k:]).all()


@pytest.mark.parametrize("seed", range(8))
def test_best_spans_equals_reference(seed):
    rng = np.random.default_rng(seed)
    rows, positions = int(rng.integers(1, 40)), int(rng.integers(1, 60))
    max_span = int(rng.choice([1, 2, 5, 17, positions + 3]))
    n_best = int(rng.choice([1, 3, 20, 500]))
    batch = _random_batch(rng, rows, positions)
    got = best_spans(*batch, max_span=max_span, n_best=n_best)
    assert got[0].shape == got[1].shape == got[2].shape == (rows, n_best)
    assert got[0].dtype == np.int32 and got[2].dtype == np.float32
    _assert_same_spans(got, reference_best_spans(*batch, max_span, n_best))


def test_best_spans_chunks_rows(monkeypatch):
    rng = np.random.default_rng(42)
    batch = _random_batch(rng, 37, 50)
    whole = best_spans(*batch, max_span=9, n_best=7)
    monkeypatch.setattr(decode, "MEMORY_BYTES", 1)  # one row per chunk
    for a, b in zip(whole, best_spans(*batch, max_span=9, n_best=7)):
        np.testing.assert_array_equal(a, b)
    _assert_same_spans(whole, reference_best_spans(*batch, 9, 7))


def test_best_spans_degenerate_shapes():
    starts, ends, scores = best_spans(np.zeros((0, 5)), np.zeros((0, 5)), np.ones((0, 5), bool), np.ones((0, 5), bool), 3, 4)
    assert starts.shape == (0, 4)
    s = np.array([[1.0, 2.0]], np.float32)
    starts, ends, scores = best_spans(s, s, np.ones_like(s, bool), np.ones_like(s, bool), 10, 5)
    assert starts[0].tolist() == [1, 0, 0, -1, -1] and ends[0].tolist() == [1, 1, 0, -1, -1]
    assert scores[0, :3].tolist() == [4.0, 3.0, 2.0]
    with pytest.raises(ValueError):
        best_spans(s, s[:, :1], np.ones_like(s, bool), np.ones_like(s, bool), 2, 2)


def _synthetic(rng, n_examples=25, length=24, question=3):
    """Tokenizer-free windows: contexts cut into 1-3 character tokens, sliding windows of them."""
    alphabet = list("的一是在不了有和人這中大為上個國我以要他時來用們生到作地於出就分對成會可主發年動同工也能下過子說產種面而方後多定行學法所民得經十三之進著等部度家電力裡如水化高自二理起小物現實加量都兩體制機當使點從業本去把性好應開它合還因由其些然前外天政四日那社義事平形相全表間樣與關各重新線內數正心反你明看原又麼利比或但質氣第向道命此變條只沒結解問意建月公無系軍很情者最立代想已通並提直題黨程展五果料象員革位入常文總次品式活設及管特件長求老頭基資邊流路級少圖山統接知較將組見計別她手角期根論運農指幾九區強放決西被幹做必戰先回則任取據處理世車AB12 ")
    examples, rows = [], []
    ctx_part = length - question - 3
    for i in range(n_examples):
        context = "".join(rng.choice(alphabet, size=int(rng.integers(1, 80))))
        examples.append(Example(id=f"q{i}", question="問題?", context=context))
        if i == 3:
            continue  # an example without windows
        cuts = np.cumsum(rng.integers(1, 4, size=len(context)))
        cuts = np.concatenate([[0], cuts[cuts < len(context)], [len(context)]])
        tokens = np.stack([cuts[:-1], cuts[1:]], axis=1)
        stride = int(rng.integers(1, ctx_part))
        lo = 0
        while True:
            chunk = tokens[lo: lo + ctx_part]
            offs = np.full((length, 2), -1, np.int32)
            offs[question + 2: question + 2 + len(chunk)] = chunk
            cls = 0 if rng.random() < 0.8 else question + 2 + len(chunk)  # CLS first, sometimes last
            rows.append((i, offs, cls, question + 3 + len(chunk)))
            if lo + ctx_part >= len(tokens):
                break
            lo += ctx_part - stride
    n = len(rows)
    windows = Windows(
        input_ids=np.zeros((n, length), np.int32), token_type_ids=None,
        lengths=np.array([r[3] for r in rows], np.int32), offsets=np.stack([r[1] for r in rows]),
        example_index=np.array([r[0] for r in rows], np.int32), cls_index=np.array([r[2] for r in rows], np.int32),
        example_ids=[ex.id for ex in examples],
    )
    return windows, examples


def _assert_same_predictions(pred, ref):
    assert pred.ids == list(ref)
    for i, (qid, r) in enumerate(ref.items()):
        assert (pred.texts[i], int(pred.starts[i]), int(pred.ends[i])) == (r["text"], r["start"], r["end"]), qid
        assert float(pred.scores[i]) == r["score"] and float(pred.null_scores[i]) == r["null_score"]
        assert pred.nbest(i) == [Span(*c) for c in r["nbest"]], qid


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("null_threshold", [None, 0.0, -1.5])
def test_decode_windows_synthetic_equals_reference(seed, null_threshold):
    rng = np.random.default_rng(seed)
    windows, examples = _synthetic(rng)
    s = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)
    e = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)
    max_len, n_best = int(rng.integers(1, 12)), int(rng.integers(1, 25))
    pred = decode_windows(s, e, windows, examples, max_answer_length=max_len, n_best=n_best, null_threshold=null_threshold)
    _assert_same_predictions(pred, reference_decode(s, e, windows, examples, max_len, n_best, null_threshold))
    assert pred.texts[3] == "" and pred.nbest(3) == []  # no windows
    for i, ex in enumerate(examples):
        assert pred.texts[i] == ex.context[pred.starts[i]:pred.ends[i]] if pred.starts[i] >= 0 else pred.texts[i] == ""


@pytest.mark.shared
@pytest.mark.parametrize("split_chars", [False, True])
def test_decode_windows_drcd_subset_equals_reference(zh_tokenizer, split_chars):
    from harness.tasks.qa.readers import read_squad

    examples = read_squad(shared_file("drcd/DRCD_dev.json"))[:60]
    windows = make_windows(zh_tokenizer, examples, max_length=128, doc_stride=48, split_chars=split_chars)
    assert len(np.unique(windows.example_index)) == 60 and len(windows) > 60
    rng = np.random.default_rng(7)
    s = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)
    e = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)
    pred = decode_windows(s, e, windows, examples)
    _assert_same_predictions(pred, reference_decode(s, e, windows, examples))


def _one_example_windows(context, offsets_rows, cls=0):
    ex = Example(id="x", question="?", context=context)
    n, length = len(offsets_rows), max(len(r) for r in offsets_rows)
    offs = np.full((n, length, 2), -1, np.int32)
    for w, row in enumerate(offsets_rows):
        for t, span in enumerate(row):
            if span is not None:
                offs[w, t] = span
    windows = Windows(
        input_ids=np.zeros((n, length), np.int32), token_type_ids=None, lengths=np.full(n, length, np.int32),
        offsets=offs, example_index=np.zeros(n, np.int32), cls_index=np.full(n, cls, np.int32), example_ids=["x"],
    )
    return windows, [ex]


def test_null_threshold_by_hand():
    # two windows over "abcdef": [CLS] a b c d | [CLS] c d e f ; null score = min over windows
    windows, examples = _one_example_windows("abcdef", [
        [None, (0, 1), (1, 2), (2, 3), (3, 4)],
        [None, (2, 3), (3, 4), (4, 5), (5, 6)],
    ])
    s = np.array([[5.0, 0, 1.0, 0, 0], [2.0, 0, 0, 0, 0]], np.float32)
    e = np.array([[5.0, 0, 0, 2.0, 0], [1.0, 0, 0, 0, 0]], np.float32)
    # best span: "bc" = 1 + 2 = 3 (window 0); null = min(5 + 5, 2 + 1) = 3
    pred = decode_windows(s, e, windows, examples)
    assert pred.texts == ["bc"] and pred.scores[0] == 3.0 and pred.null_scores[0] == 3.0  # v1 ignores CLS
    assert decode_windows(s, e, windows, examples, null_threshold=0.0).texts == ["bc"]  # 3 - 3 > 0 is false
    pred = decode_windows(s, e, windows, examples, null_threshold=-0.5)
    assert pred.texts == [""] and pred.starts[0] == -1 and pred.scores[0] == 3.0  # 0 > -0.5: null wins
    assert pred.nbest(0)[0] == Span("bc", 1, 3, 3.0)  # the n-best list keeps the spans
    s[1, 0] = 10.0  # now null = min(10, 11) = 10: null - best = 7
    assert decode_windows(s, e, windows, examples, null_threshold=6.9).texts == [""]
    assert decode_windows(s, e, windows, examples, null_threshold=7.0).texts == ["bc"]


def test_identical_char_spans_merge_across_windows():
    windows, examples = _one_example_windows("abcdef", [
        [None, (0, 1), (1, 2), (2, 3), (3, 4)],
        [None, (2, 3), (3, 4), (4, 5), (5, 6)],
    ])
    s = np.zeros((2, 5), np.float32)
    e = np.zeros((2, 5), np.float32)
    s[0, 3], e[0, 4] = 1.0, 1.0  # "cd" in window 0 scores 2
    s[1, 1], e[1, 2] = 2.0, 2.0  # "cd" in window 1 scores 4
    pred = decode_windows(s, e, windows, examples, n_best=3)
    top = pred.nbest(0)
    assert top[0] == Span("cd", 2, 4, 4.0)
    assert [c.text for c in top].count("cd") == 1
    assert pred.to_dict() == {"x": "cd"}


def test_answer_cut_from_context_by_characters(zh_tokenizer):
    context = "蘋果公司於2019年發表iPhone 11，售價699美元。"
    ex = Example(id="z", question="何時發表?", context=context)
    for split_chars in (False, True):
        windows = make_windows(zh_tokenizer, [ex], max_length=64, doc_stride=16, max_query_length=16, split_chars=split_chars)
        offs = windows.offsets[0]
        for answer in ("iPhone 11", "2019年發表iPhone", "699美元", "公司於2019"):
            a0 = context.index(answer)
            a1 = a0 + len(answer)
            s = np.zeros(offs.shape[0], np.float32)
            e = np.zeros(offs.shape[0], np.float32)
            s[np.flatnonzero(offs[:, 0] == a0)[0]] = 10.0
            e[np.flatnonzero(offs[:, 1] == a1)[0]] = 10.0
            pred = decode_windows(s[None], e[None], windows, [ex])
            assert pred.texts == [answer]  # original case and spacing, no spaces inserted


def _hf_postprocess(start_logits, end_logits, windows, examples, n_best_size, max_answer_length, v2, threshold=0.0):
    """Hugging Face utils_qa.postprocess_qa_predictions, condensed (top starts x top ends, CLS at 0)."""
    answers, diffs = {}, {}
    for i, ex in enumerate(examples):
        prelim, min_null = [], None
        for w in np.flatnonzero(windows.example_index == i):
            s, e = start_logits[w], end_logits[w]
            offsets = [tuple(o) if o[0] >= 0 else None for o in windows.offsets[w].tolist()]
            null = s[0] + e[0]
            if min_null is None or null < min_null:
                min_null = null
            for a in np.argsort(s)[-1: -n_best_size - 1: -1]:
                for b in np.argsort(e)[-1: -n_best_size - 1: -1]:
                    if offsets[a] is None or offsets[b] is None or b < a or b - a + 1 > max_answer_length:
                        continue
                    prelim.append(((offsets[a][0], offsets[b][1]), s[a] + e[b]))
        if v2 and min_null is not None:
            prelim.append(((0, 0), min_null))
        preds = sorted(prelim, key=lambda x: x[1], reverse=True)[:n_best_size]
        texts = [(ex.context[c0:c1], sc) for (c0, c1), sc in preds]
        if not v2:
            answers[ex.id] = texts[0][0] if texts else ""
            continue
        non_null = [t for t in texts if t[0] != ""]
        diffs[ex.id] = float(min_null - non_null[0][1])
        answers[ex.id] = "" if diffs[ex.id] > threshold else non_null[0][0]
    return answers, diffs


@pytest.mark.parametrize("seed", range(3))
def test_semantics_equal_hugging_face_when_its_search_is_exhaustive(seed):
    # with n_best_size >= window length HF's top-starts x top-ends search covers every span
    rng = np.random.default_rng(seed)
    windows, examples = _synthetic(rng)
    windows.cls_index[:] = 0  # HF hard-codes the CLS position 0
    keep = [i for i in range(len(examples)) if i != 3]  # HF needs at least one span per example
    rows = np.isin(windows.example_index, keep)
    windows = windows.subset(rows)
    windows.example_index = np.searchsorted(keep, windows.example_index).astype(np.int32)
    examples = [examples[i] for i in keep]
    s = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)
    e = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)
    length = windows.offsets.shape[1]
    hf, _ = _hf_postprocess(s, e, windows, examples, length, 7, v2=False)
    assert decode_windows(s, e, windows, examples, max_answer_length=7).to_dict() == hf
    hf, diffs = _hf_postprocess(s, e, windows, examples, length, 7, v2=True, threshold=-2.0)
    pred = decode_windows(s, e, windows, examples, max_answer_length=7, null_threshold=-2.0)
    assert pred.to_dict() == hf
    assert np.allclose(pred.null_scores - pred.scores, [diffs[ex.id] for ex in examples])
