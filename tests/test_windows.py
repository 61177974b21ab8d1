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
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    from harness.tasks.qa.windows import make_windows
    import tempfile

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
