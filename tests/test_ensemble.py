"""Ensembles: one member is decode_windows, character projection by hand, mixed tokenizers, weights."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

from harness.tasks.qa.decode import decode_windows
from harness.tasks.qa.ensemble import (
    FLOOR,
    Ensemble,
    char_scores,
    chars_per_token,
    combine,
    decode_chars,
    ensemble_answers,
    ensemble_predictions,
    fit_weights,
)
from harness.tasks.qa.example import Example
from harness.tasks.qa.logits import LogitSet
from harness.tasks.qa.windows import Windows, make_windows

N_EXAMPLES = 40


@pytest.fixture(scope="module")
def drcd():
    from harness.tasks.qa.readers import read_squad

    return read_squad(shared_file("drcd/DRCD_dev.json"))[:N_EXAMPLES]


@pytest.fixture(scope="module")
def squad():
    from harness.tasks.qa.readers import read_squad

    return read_squad(shared_file("squad/squad_v1.1_dev_even_articles.json"))[:N_EXAMPLES]


def _trained_wordpiece(examples, chinese_words: bool):
    """A WordPiece tokenizer trained on the fly; ``chinese_words`` keeps CJK runs together (multi-char tokens)."""
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.processors import BertProcessing
    from transformers import PreTrainedTokenizerFast

    wp = BertWordPieceTokenizer(handle_chinese_chars=not chinese_words, lowercase=False, strip_accents=False)
    texts = sorted({ex.context for ex in examples} | {ex.question for ex in examples})
    wp.train_from_iterator(texts, vocab_size=3000, min_frequency=2, show_progress=False)
    wp._tokenizer.post_processor = BertProcessing(("[SEP]", wp.token_to_id("[SEP]")), ("[CLS]", wp.token_to_id("[CLS]")))
    return PreTrainedTokenizerFast(tokenizer_object=wp._tokenizer, unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]")


def _windows(tokenizer, examples, split_chars):
    return make_windows(tokenizer, examples, max_length=128, doc_stride=48, split_chars=split_chars, with_labels=True)


def _random(windows, seed) -> LogitSet:
    rng = np.random.default_rng(seed)
    return LogitSet(windows, *rng.standard_normal((2, *windows.offsets.shape[:2])).astype(np.float32), {})


def _consistent(windows, seed) -> LogitSet:
    """Random logits that give each character the same start (end) logit in every window."""
    rng = np.random.default_rng(seed)
    n, length = windows.offsets.shape[:2]
    table = rng.standard_normal((2, int(windows.example_index.max()) + 1, 4096)).astype(np.float32)
    s, e = rng.standard_normal((2, n, length)).astype(np.float32)
    ok = windows.context_mask
    ex = np.broadcast_to(windows.example_index[:, None], ok.shape)
    s[ok] = table[0, ex[ok], windows.offsets[..., 0][ok]]
    e[ok] = table[1, ex[ok], windows.offsets[..., 1][ok] - 1]
    return LogitSet(windows, s, e, {})


def _gold(windows, scale=10.0) -> LogitSet:
    """One-hot logits at each window's start/end labels (CLS when the answer is not inside)."""
    s = np.zeros(windows.offsets.shape[:2], np.float32)
    e = np.zeros_like(s)
    rows = np.arange(len(windows))
    s[rows, windows.start_positions] = scale
    e[rows, windows.end_positions] = scale
    return LogitSet(windows, s, e, {})


def _decode(member: LogitSet, examples, **kw):
    return decode_windows(member.start_logits, member.end_logits, member.windows, examples, **kw)


def _same_predictions(a, b):
    assert a.to_dict() == b.to_dict()
    np.testing.assert_array_equal(a.nbest_starts, b.nbest_starts)
    np.testing.assert_array_equal(a.nbest_ends, b.nbest_ends)


# ------------------------------------------------------------------ single-model consistency

@pytest.mark.shared
@pytest.mark.parametrize("logits", [_random, _consistent])
def test_one_member_is_decode_windows(zh_tokenizer, drcd, squad, logits):
    for examples, split_chars in ((drcd, True), (drcd, False), (squad, False)):
        member = logits(_windows(zh_tokenizer, examples, split_chars), seed=1)
        single = _decode(member, examples, max_answer_length=17, n_best=5)
        for agg in ("max", "mean"):
            for space in ("logprob", "prob"):
                got = ensemble_predictions([member], examples, agg=agg, space=space, max_answer_length=17, n_best=5)
                _same_predictions(got, single)
        other = _random(_windows(zh_tokenizer, examples, not split_chars), seed=2)  # other windows, weight 0
        assert ensemble_answers([other, member], examples, weights=[0, 3.5], max_answer_length=17) == single.to_dict()


@pytest.mark.shared
def test_two_identical_members_are_one(zh_tokenizer, drcd):
    member = _random(_windows(zh_tokenizer, drcd, True), seed=3)
    single = _decode(member, drcd)
    _same_predictions(ensemble_predictions([member, member], drcd), single)  # token path, bit for bit
    assert ensemble_answers([member, member], drcd, space="prob") == single.to_dict()
    # character path: combining identical members is exact in both spaces
    cs = char_scores(member, [len(ex.context) for ex in drcd])
    for space in ("logprob", "prob"):
        for got, want in zip(combine([cs, cs], space=space), cs):
            np.testing.assert_array_equal(got, want)


@pytest.mark.shared
def test_char_path_agrees_with_decode_windows_only_for_consistent_logits(zh_tokenizer, drcd):
    """Why a single model never takes the character path (see the module docstring)."""
    windows = _windows(zh_tokenizer, drcd, True)
    lens = [len(ex.context) for ex in drcd]
    # one token per character: every character is a start (whitespace has no token)
    one_per_char = [i for i, s in enumerate(char_scores(_random(windows, 0), lens, normalize=False)[0])
                    if np.isfinite(s[:lens[i]]).all()]
    assert len(one_per_char) > N_EXAMPLES // 2
    differ = 0
    for logits in (_consistent, _random):
        member = logits(windows, seed=4)
        want = _decode(member, drcd, max_answer_length=30)  # 30 < doc_stride 48
        S, E = char_scores(member, lens, normalize=False)
        got = decode_chars(S, E, [ex.context for ex in drcd], max_answer_chars=30, ids=[ex.id for ex in drcd])
        if logits is _consistent:
            for i in one_per_char:
                assert (got.texts[i], got.starts[i], got.scores[i]) == (want.texts[i], want.starts[i], want.scores[i])
        else:
            differ = sum(got.texts[i] != want.texts[i] for i in one_per_char)
    assert differ > 0  # cross-window max: a start from one window, an end from another


# ------------------------------------------------------------------ projection and combination by hand

def _hand_windows():
    """"abcdef" in two overlapping windows with a two-character token "cd"; "xy" in one window."""
    rows = [
        (0, [None, (0, 1), (1, 2), (2, 4)]),
        (0, [None, (2, 4), (4, 5), (5, 6)]),
        (1, [None, (0, 1), (1, 2), None]),
    ]
    offs = np.full((3, 4, 2), -1, np.int32)
    for w, (_, row) in enumerate(rows):
        for t, span in enumerate(row):
            if span is not None:
                offs[w, t] = span
    windows = Windows(
        input_ids=np.zeros((3, 4), np.int32), token_type_ids=None, lengths=np.full(3, 4, np.int32), offsets=offs,
        example_index=np.array([r[0] for r in rows], np.int32), cls_index=np.zeros(3, np.int32), example_ids=["p", "q"],
    )
    examples = [Example(id="p", question="?", context="abcdef"), Example(id="q", question="?", context="xy")]
    return windows, examples


def _log_softmax(x):
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    return np.where(ok, x - np.log(np.exp(x[ok]).sum()), -np.inf)


def test_char_projection_by_hand():
    windows, examples = _hand_windows()
    s = np.array([[9, 1, 2, 3], [9, 5, 0, 4], [9, 1, 1, 9]], np.float32)
    e = np.array([[9, 1, 2, 3], [9, 6, 7, 8], [9, 0, 2, 9]], np.float32)
    member = LogitSet(windows, s, e, {})
    inf = -np.inf
    want = {  # char: start of its tokens / end of its tokens ("cd" starts at c, ends at d)
        "max": ([[1, 2, 5, inf, 0, 4], [1, 1, inf, inf, inf, inf]], [[1, 2, inf, 6, 7, 8], [0, 2, inf, inf, inf, inf]]),
        "mean": ([[1, 2, 4, inf, 0, 4], [1, 1, inf, inf, inf, inf]], [[1, 2, inf, 4.5, 7, 8], [0, 2, inf, inf, inf, inf]]),
    }
    for agg, (want_s, want_e) in want.items():
        S, E = char_scores(member, [6, 2], agg=agg, normalize=False)
        np.testing.assert_array_equal(S, np.float32(want_s))
        np.testing.assert_array_equal(E, np.float32(want_e))
        S, E = char_scores(member, [6, 2], agg=agg)
        for got, raw in ((S, want_s), (E, want_e)):
            np.testing.assert_allclose(got, [_log_softmax(r) for r in raw], rtol=1e-6)
    assert chars_per_token(member) == pytest.approx(10 / 8)  # 4 + 4 + 2 characters over 3 + 3 + 2 tokens
    S, E = char_scores(member, [6, 2], normalize=False)
    pred = decode_chars(S, E, ["abcdef", "xy"], max_answer_chars=2, n_best=3, ids=["p", "q"])
    # "abcdef": starts a1 b2 c5 e0 f4, ends a1 b2 d6 e7 f8; within 2 characters: f..f = 8+4 beats e..f = 8+0
    assert pred.to_dict() == {"p": "f", "q": "xy"}
    assert [(sp.text, sp.score) for sp in pred.nbest(0)] == [("f", 12.0), ("cd", 11.0), ("ef", 8.0)]
    # the per-window decoder counts tokens: "cd" + "e" is 2 tokens (3 characters) and ties "f" at 12
    assert _decode(member, examples, max_answer_length=2).to_dict() == {"p": "cde", "q": "xy"}


def test_members_are_aligned_to_the_examples_by_id():
    windows, examples = _hand_windows()
    rng = np.random.default_rng(8)
    member = LogitSet(windows, *rng.standard_normal((2, 3, 4)).astype(np.float32), {})
    other = LogitSet(windows, *rng.standard_normal((2, 3, 4)).astype(np.float32), {})
    other.windows = Windows(**{**vars(windows), "offsets": windows.offsets.copy()})
    other.windows.offsets[0, 3] = (2, 3)  # other tokenisation: "c" instead of "cd"
    want = ensemble_answers([member, other], examples)
    assert ensemble_answers([member, other], examples[::-1]) == want  # examples in another order
    assert ensemble_answers([member, other], examples[1:]) == {"q": want["q"]}  # a subset
    with pytest.raises(ValueError, match="do not match"):
        char_scores(member, [6, 1])  # "xy" is longer than 1 character


def test_prob_vs_logprob_space_by_hand():
    # start probabilities over "xyz": A is sure of "x", B splits between "y" and "z" and rules "x" out
    a = np.log(np.array([[0.98, 0.01, 0.01]], np.float32))
    b = np.log(np.array([[1e-4, 0.4999, 0.5001]], np.float32))
    flat = np.zeros((1, 3), np.float32)  # uniform ends: ties go to the shortest span
    answers = {}
    for space in ("prob", "logprob"):
        S, E = combine([(a, flat), (b, flat)], space=space)
        answers[space] = decode_chars(S, E, ["xyz"], max_answer_chars=3).texts[0]
    # mean of probs: x 0.49 > z 0.255; mean of log-probs (geometric mean): z sqrt(.005) > x sqrt(.000098)
    assert answers == {"prob": "x", "logprob": "z"}
    S, _ = combine([(a, flat), (b, flat)], weights=[1, 3], space="prob")
    np.testing.assert_allclose(S, np.log(0.25 * np.exp(a) + 0.75 * np.exp(b)), rtol=1e-6)
    # a character B cannot score: probability 0 in prob space, FLOOR in log-prob space
    b_missing = b.copy()
    b_missing[0, 0] = -np.inf
    S, _ = combine([(a, flat), (b_missing, flat)], space="prob")
    assert S[0, 0] == pytest.approx(np.log(0.49), rel=1e-6)
    S, _ = combine([(a, flat), (b_missing, flat)], space="logprob")
    assert S[0, 0] == pytest.approx(0.5 * a[0, 0] + 0.5 * FLOOR)
    none = np.full((1, 3), -np.inf, np.float32)
    S, _ = combine([(none, flat), (none, flat)], space="logprob")
    assert np.isneginf(S).all()  # no member scores it: stays impossible


# ------------------------------------------------------------------ different tokenizers

@pytest.mark.shared
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_different_tokenizers_gold_logits_decode_to_gold(zh_tokenizer, drcd, squad, lang):
    examples = drcd if lang == "zh" else squad
    # zh: one token per character vs WordPiece over whole CJK runs; en: bert-base-chinese vs an English WordPiece
    a = _gold(_windows(zh_tokenizer, examples, split_chars=lang == "zh"))
    b = _gold(_windows(_trained_wordpiece(examples, chinese_words=True), examples, split_chars=False))
    lens = [len(ex.context) for ex in examples]
    starts_a, starts_b = (np.isfinite(char_scores(m, lens)[0]) for m in (a, b))
    assert (starts_a != starts_b).sum() > 0.1 * starts_b.sum()  # really different tokenisations
    singles = [_decode(m, examples).to_dict() for m in (a, b)]
    both = [ex for ex in examples if all(p[ex.id] == ex.answers[0] for p in singles)]
    assert len(both) >= N_EXAMPLES // 2
    assert not Ensemble([a, b], examples).shared_windows  # the character path
    for agg in ("max", "mean"):
        for space in ("logprob", "prob"):
            got = ensemble_answers([a, b], examples, agg=agg, space=space)
            assert [got[ex.id] for ex in both] == [ex.answers[0] for ex in both]


# ------------------------------------------------------------------ weights

@pytest.mark.shared
def test_fit_weights_picks_the_right_member(zh_tokenizer, drcd):
    rng = np.random.default_rng(5)
    right = _gold(_windows(zh_tokenizer, drcd, True), scale=4.0)
    right.start_logits += rng.standard_normal(right.start_logits.shape).astype(np.float32)
    right.end_logits += rng.standard_normal(right.end_logits.shape).astype(np.float32)
    noise = _random(_windows(zh_tokenizer, drcd, False), seed=6)
    noise.start_logits *= 5
    noise.end_logits *= 5
    for method in ("greedy", "optuna"):
        weights, report = fit_weights([noise, right], drcd, metric="em", method=method, n_iter=6)
        assert weights[1] > weights[0] and weights.sum() == pytest.approx(1.0)
        assert report["members"][1] > report["members"][0] and report["best_member"] == 1
        assert report["ensemble"] >= report["best_single"] and report["gain"] >= 0
        assert report["path"] == "chars"


@pytest.mark.shared
def test_fit_weights_finds_a_gain(zh_tokenizer, drcd):
    """Two members each sure and right on half of the questions, unsure elsewhere: together they win."""
    windows = _windows(zh_tokenizer, drcd, True)
    rng = np.random.default_rng(7)
    members = []
    for half in (0, 1):
        m = _gold(windows, scale=10.0)
        unsure = (windows.example_index % 2) == half
        m.start_logits[unsure] = rng.standard_normal(m.start_logits[unsure].shape)
        m.end_logits[unsure] = rng.standard_normal(m.end_logits[unsure].shape)
        members.append(m)
    weights, report = fit_weights(members, drcd, metric="f1")
    assert report["path"] == "tokens"
    assert report["gain"] > 20 and np.allclose(weights, 0.5)
    assert report["ensemble"] > max(report["members"]) + 20


# ------------------------------------------------------------------ fast paths equal the plain ones

def _awkward_members(seed, n_examples=30, length=20, repeat=False):
    """Members over random contexts: one-character windows and 1-3-character windows that overlap,
    optionally with repeated offsets (two tokens over one character span)."""
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n_examples):
        context = "".join(rng.choice(list("abcdefgh"), size=int(rng.integers(5, 90))))
        a = int(rng.integers(0, len(context) - 2))
        examples.append(Example(id=f"e{i}", question="?", context=context, answers=(context[a:a + 2],), answer_starts=(a,)))
    members = []
    for width in (1, 3):
        rows = []
        for i, ex in enumerate(examples):
            cuts = np.cumsum(rng.integers(1, width + 1, len(ex.context)))
            cuts = np.concatenate([[0], cuts[cuts < len(ex.context)], [len(ex.context)]])
            tokens = np.stack([cuts[:-1], cuts[1:]], axis=1)
            part, lo = length - 3, 0
            while True:
                offs = np.full((length, 2), -1, np.int32)
                chunk = tokens[lo: lo + part]
                offs[2: 2 + len(chunk)] = chunk
                if repeat and len(chunk) > 2 and rng.random() < 0.5:
                    offs[3] = offs[2]
                rows.append((i, offs))
                if lo + part >= len(tokens):
                    break
                lo += int(rng.integers(1, part))
        n = len(rows)
        windows = Windows(input_ids=np.zeros((n, length), np.int32), token_type_ids=None,
                          lengths=np.full(n, length, np.int32), offsets=np.stack([r[1] for r in rows]),
                          example_index=np.array([r[0] for r in rows], np.int32), cls_index=np.zeros(n, np.int32),
                          example_ids=[ex.id for ex in examples])
        for _ in range(2):
            members.append(LogitSet(windows, *rng.standard_normal((2, n, length)).astype(np.float32), {}))
    return members, examples


def _max_at_reference(member, lens):
    """char_scores(..., normalize=False) with np.maximum.at, the plain way."""
    w = member.windows
    m, width = len(lens), max(lens)
    out = []
    for k, x in ((0, member.start_logits), (1, member.end_logits)):
        ok = (w.offsets[..., 0] >= 0) & (w.offsets[..., 1] > w.offsets[..., 0])
        ex = np.broadcast_to(w.example_index[:, None], ok.shape)[ok].astype(np.int64)
        char = w.offsets[..., 0][ok] if k == 0 else w.offsets[..., 1][ok] - 1
        flat = np.full(m * width, -np.inf, np.float32)
        np.maximum.at(flat, ex * width + char, x[ok])
        out.append(flat.reshape(m, width))
    return out


@pytest.mark.parametrize("repeat", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_char_projection_equals_maximum_at(seed, repeat):
    members, examples = _awkward_members(seed, repeat=repeat)
    lens = [len(ex.context) for ex in examples]
    for member in members:
        want = _max_at_reference(member, lens)
        for got, ref in zip(char_scores(member, lens, normalize=False), want):
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("space", ["logprob", "prob"])
@pytest.mark.parametrize("seed", range(3))
def test_blocked_ensemble_equals_full_width_decode(seed, space):
    # the Ensemble keeps characters in blocks of similar context length and combines from cached
    # floored scores; it must decode exactly what combine + decode_chars on full-width arrays give
    members, examples = _awkward_members(10 + seed, repeat=seed == 2)
    rng = np.random.default_rng(seed)
    lens = [len(ex.context) for ex in examples]
    ens = Ensemble(members, examples, space=space)
    assert not ens.shared_windows and len(ens._layout.blocks) > 1
    full = [char_scores(m, lens) for m in members]
    for _ in range(4):
        weights = rng.random(len(members)) * (rng.random(len(members)) < 0.8) + np.eye(len(members))[rng.integers(4)]
        for n_best in (1, 5):
            got = ens.decode(weights, n_best=n_best)
            live = weights > 0
            S, E = combine([f for f, keep in zip(full, live) if keep], weights[live], space)
            want = decode_chars(S, E, [ex.context for ex in examples], ens.max_answer_chars, n_best, ens.ids)
            _same_predictions(got, want)
            np.testing.assert_array_equal(got.nbest_scores, want.nbest_scores)


@pytest.mark.parametrize("metric", ["em", "f1"])
def test_fit_weights_scores_are_qa_scores(metric):
    from harness.tasks.qa.metrics import qa_scores

    members, examples = _awkward_members(20)
    weights, report = fit_weights(members, examples, metric=metric)
    refs = {ex.id: list(ex.answers) for ex in examples}
    assert report["ensemble"] == qa_scores(ensemble_answers(members, examples, weights, n_best=1), refs)[metric]
    for i, single in enumerate(report["members"]):
        assert single == qa_scores(ensemble_answers(members, examples, np.eye(len(members))[i], n_best=1), refs)[metric]
    assert report["ensemble"] >= report["best_single"]


def test_logprob_combine_is_the_plain_weighted_sum():
    # combine (and the Ensemble, which sums all members with weight 0 for the others) equals the
    # member-after-member float32 sum with -inf floored, bit for bit
    rng = np.random.default_rng(3)
    members = []
    for _ in range(4):
        s, e = rng.standard_normal((2, 6, 50)).astype(np.float32) * 7
        s[rng.random(s.shape) < 0.2] = -np.inf
        e[rng.random(e.shape) < 0.2] = -np.inf
        members.append((s, e))
    for weights in ([1, 2, 3, 4], [0.3, 0, 0.7, 0], [0, 0, 5, 1]):
        w = np.asarray(weights, np.float64) / np.sum(weights)
        got = combine(members, weights)
        for k in range(2):
            acc = np.zeros((6, 50), np.float32)
            for wi, mem in zip(w, members):
                if wi > 0:
                    acc = acc + np.float32(wi) * np.where(np.isfinite(mem[k]), mem[k], FLOOR)
            valid = np.logical_or.reduce([np.isfinite(mem[k]) for wi, mem in zip(w, members) if wi > 0])
            np.testing.assert_array_equal(got[k], np.where(valid, acc, -np.inf).astype(np.float32))
