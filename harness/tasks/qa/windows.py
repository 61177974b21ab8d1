"""Question + context -> fixed-size token windows with character offsets and span labels.

This is the one windowing function of the project. Every window keeps, for each token, the
character span it covers in the example's context (``-1`` for question, special and padding
tokens), so that logits can always be mapped back to characters of the original text.

``split_chars=True`` (the default for Chinese competitions) feeds the context and question to the
tokenizer one character per "word", so every token covers exactly one character: answers that
end inside a WordPiece (the "8" of "80%") stay reachable, at the price of spelling digit runs and
Latin words letter by letter.

Two ways to cut windows:

* ``sliding`` (default, as Hugging Face ``run_qa.py``): the context is split into overlapping
  windows of at most ``max_length`` tokens, consecutive windows sharing ``doc_stride`` tokens.
  Every window of every example is kept; a training window whose context does not contain the
  answer is labelled with the CLS index.
* ``max_offset`` given (the ML2023 HW7 training variant): one window per answered example, placed
  so that it contains the answer, centred on it and then shifted by a random number of tokens in
  ``[-max_offset, max_offset]`` (clipped so the answer stays inside). Use for training only.

Speed: the work is one batched tokenizer call for the questions (to truncate them), one for the
question/context pairs (the call Hugging Face ``run_qa.py`` makes) and array code for the rest;
per window, Python only slices the tokenizer's own lists (sequence ids, word ids or offsets) at
the context's boundaries. ``bench/windows.py`` measures it against the bare pair call.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Sequence

import numpy as np

from harness.common.errors import HarnessError
from harness.tasks.qa.example import Example

NO_OFFSET = -1
# Bump when make_windows produces different arrays for the same inputs: cached windows
# (harness.cache) are keyed on it.
WINDOWS_VERSION = 1

_ARRAYS = ("input_ids", "token_type_ids", "lengths", "offsets", "example_index", "cls_index",
           "start_positions", "end_positions")


@dataclass
class Windows:
    """Token windows for a list of examples, as padded numpy arrays (row = window)."""

    input_ids: np.ndarray  # int32 [n, L], padded with pad_token_id
    token_type_ids: np.ndarray | None  # int8 [n, L] or None when the tokenizer has none
    lengths: np.ndarray  # int32 [n]: real tokens per window
    offsets: np.ndarray  # int32 [n, L, 2]: char span in the context, -1 outside the context
    example_index: np.ndarray  # int32 [n]: index into ``examples``
    cls_index: np.ndarray  # int32 [n]: position of the CLS token (the "no answer" position)
    start_positions: np.ndarray | None = None  # int32 [n] training labels
    end_positions: np.ndarray | None = None
    example_ids: list[str] = field(default_factory=list)  # one per example, not per window
    _context: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.input_ids)

    def label_arrays(self) -> dict[str, np.ndarray]:
        """Training targets under the names the QA model's forward takes."""
        return {"start_positions": self.start_positions, "end_positions": self.end_positions}

    @property
    def attention_mask(self) -> np.ndarray:
        return (np.arange(self.input_ids.shape[1])[None, :] < self.lengths[:, None]).astype(np.int8)

    @property
    def context_mask(self) -> np.ndarray:
        """True where a token belongs to the context."""
        return self.offsets[:, :, 0] >= 0

    def context_extent(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mask, lo, hi)``: :attr:`context_mask`, and per window its first context token and one
        past its last (``lo >= hi``: none). Computed once per ``offsets`` array and kept, as HF marks
        the offsets outside the context once when it builds its features: windows are not edited in
        place once built (assigning a new ``offsets`` array is noticed)."""
        if self._context is None or self._context[0] is not self.offsets:
            from harness.tasks.qa.decode import _extent  # the decoder's extent of a mask (it imports this module)

            ok = self.context_mask
            self._context = (self.offsets, ok, *_extent(ok, ok))
        return self._context[1:]

    def subset(self, rows: np.ndarray) -> "Windows":
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return Windows(
            input_ids=self.input_ids[rows],
            token_type_ids=pick(self.token_type_ids),
            lengths=self.lengths[rows],
            offsets=self.offsets[rows],
            example_index=self.example_index[rows],
            cls_index=self.cls_index[rows],
            start_positions=pick(self.start_positions),
            end_positions=pick(self.end_positions),
            example_ids=self.example_ids,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (``np.savez`` without pickling); absent optional fields are left out."""
        out = {k: getattr(self, k) for k in _ARRAYS if getattr(self, k) is not None}
        out["example_ids"] = np.asarray([str(x) for x in self.example_ids], dtype=str)
        return out

    @classmethod
    def from_arrays(cls, arrays) -> "Windows":
        """Inverse of :meth:`to_arrays` (``arrays``: any mapping, e.g. an opened ``.npz``)."""
        get = lambda k: np.asarray(arrays[k]) if k in arrays else None  # noqa: E731
        return cls(**{k: get(k) for k in _ARRAYS}, example_ids=[str(x) for x in arrays["example_ids"]])


def _char_lists(texts: Sequence[str]) -> list[list[str]]:
    return [list(t) for t in texts]


def _truncate_questions(tokenizer, questions: Sequence[str], max_query_length: int,
                        split_chars: bool) -> tuple[list[str], list[int | None]]:
    """Strip each question and cut it (by characters, at a token boundary) to ``max_query_length`` tokens.

    One batched tokenizer call. Returns the questions and, for those left whole, their token count
    (None for a cut question: re-tokenizing a cut string may give other tokens).
    """
    stripped = [q.strip() for q in questions]
    if not stripped:
        return [], []
    enc = tokenizer(_char_lists(stripped) if split_chars else stripped, add_special_tokens=False,
                    is_split_into_words=split_chars, return_attention_mask=False, return_token_type_ids=False)
    out, counts = list(stripped), []
    for i, ids in enumerate(enc["input_ids"]):
        if len(ids) <= max_query_length:  # short: no need to look at words or offsets
            counts.append(len(ids))
            continue
        e = enc.encodings[i]
        if split_chars:
            words = [w for w in e.word_ids if w is not None]
            if len(words) <= max_query_length:
                counts.append(len(ids))
                continue
            out[i] = stripped[i][: words[max_query_length - 1] + 1]
        else:
            out[i] = stripped[i][: e.offsets[max_query_length - 1][1]]
        counts.append(None)
    return out, counts


def _encode(tokenizer, questions, contexts, pad_on_right, split_chars, **kwargs):
    """Tokenize question/context pairs, context second (first for left-padding tokenizers).

    Asks only for what :func:`_collect` reads: no attention mask (it follows from the lengths),
    offsets only when tokens are not single characters (word ids give those).
    """
    if split_chars:
        questions, contexts = _char_lists(questions), _char_lists(contexts)
    first, second = (questions, contexts) if pad_on_right else (contexts, questions)
    return tokenizer(
        first, second,
        truncation="only_second" if pad_on_right else "only_first",
        return_offsets_mapping=not split_chars, return_attention_mask=False, padding=False,
        is_split_into_words=split_chars, **kwargs,
    )


def _empty(tokenizer, max_length: int, labels: bool, example_ids: list[str]) -> Windows:
    has_tt = "token_type_ids" in tokenizer.model_input_names
    z = lambda: np.zeros(0, dtype=np.int32)  # noqa: E731
    return Windows(
        input_ids=np.zeros((0, max_length), dtype=np.int32),
        token_type_ids=np.zeros((0, max_length), dtype=np.int8) if has_tt else None,
        lengths=z(), offsets=np.zeros((0, max_length, 2), dtype=np.int32), example_index=z(), cls_index=z(),
        start_positions=z() if labels else None, end_positions=z() if labels else None, example_ids=example_ids,
    )


@contextmanager
def _gc_paused():
    """Pause Python's cyclic garbage collector (if on) while the tokenizer's output is built.

    Converting a batch allocates millions of lists and tuples, none of them in reference cycles;
    each allocation burst otherwise triggers collections that walk every live object (about 0.3 s
    of CPU on DRCD dev). Memory is still freed by reference counting; collection resumes after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def make_windows(
    tokenizer,
    examples: Sequence[Example],
    max_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    with_labels: bool = False,
    max_offset: int | None = None,
    seed: int = 0,
    split_chars: bool = False,
) -> Windows:
    """Cut ``examples`` into windows (see the module docstring).

    ``with_labels`` adds ``start_positions``/``end_positions`` from each example's first reference
    answer (CLS index when the answer is not inside the window or the example has none).
    ``max_offset`` switches to the HW7 one-window-per-answer variant (implies labels).
    """
    with _gc_paused():
        return _make_windows(tokenizer, examples, max_length, doc_stride, max_query_length, with_labels,
                             max_offset, seed, split_chars)


def _make_windows(tokenizer, examples, max_length, doc_stride, max_query_length, with_labels, max_offset, seed,
                  split_chars) -> Windows:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("windows need a fast tokenizer (offset mapping); got a slow one")
    pad_on_right = tokenizer.padding_side == "right"
    example_ids = [ex.id for ex in examples]
    if max_offset is None and doc_stride >= max_length - max_query_length - 3:
        raise HarnessError(
            f"doc_stride={doc_stride} must be smaller than the context part of a window "
            f"(max_length {max_length} - question {max_query_length} - 3 special tokens)"
        )
    if not examples:
        return _empty(tokenizer, max_length, with_labels or max_offset is not None, example_ids)
    questions, q_counts = _truncate_questions(tokenizer, [ex.question for ex in examples], max_query_length,
                                              split_chars)
    if max_offset is not None:
        return _answer_windows(tokenizer, examples, questions, q_counts, max_length, max_offset, seed,
                               pad_on_right, split_chars)
    contexts = [ex.context for ex in examples]
    enc = _encode(
        tokenizer, questions, contexts, pad_on_right, split_chars,
        max_length=max_length, stride=doc_stride, return_overflowing_tokens=True,
    )
    windows = _collect(tokenizer, enc, enc["overflow_to_sample_mapping"], pad_on_right, 0, max_length, split_chars,
                       contexts=contexts, stride=doc_stride)
    windows.example_ids = example_ids
    if with_labels:
        _label(windows, examples)
    return windows


def _flat(rows, dtype, count: int) -> np.ndarray:
    return np.fromiter(chain.from_iterable(rows), dtype=dtype, count=count)


def _type_ids(rows, lengths: np.ndarray, width: int) -> np.ndarray:
    """Token type ids [n, width] (int8, 0 past each row's length) from the tokenizer's lists.

    A pair's type ids are one run of one value then one run of another (BERT: 0s, then 1s from the
    context on); such rows are filled from the two runs, any other row is copied as it is.
    """
    n = len(rows)
    first = np.zeros(n, dtype=np.int64)
    second = np.zeros(n, dtype=np.int64)
    cut = np.zeros(n, dtype=np.int64)
    other = []
    for i, t in enumerate(rows):
        k = len(t)
        if not k:
            continue
        a = t[0]
        c = t.count(a)
        if c == k:
            first[i], cut[i] = a, k
            continue
        b = t[-1]
        if t[:c].count(a) == c and t.count(b) == k - c:  # a...a b...b
            first[i], second[i], cut[i] = a, b, c
        else:
            other.append(i)
    pos = np.arange(width)[None, :]
    out = np.where(pos < cut[:, None], first[:, None], second[:, None])
    out[pos >= lengths[:, None]] = 0
    out = out.astype(np.int8)
    for i in other:
        out[i, : len(rows[i])] = rows[i]
    return out


def _context_spans(encodings, offset_rows, sample_map, contexts, stride, context_seq, split_chars):
    """Where each row's context tokens are, and their character spans, concatenated over rows.

    Returns ``(lo, hi, scattered, spans)``: row ``i``'s context is positions ``lo[i]:hi[i]``
    (or the positions ``scattered[i]``, for a context that is not one run of tokens, which
    pair templates never produce), ``spans`` [n_context_tokens, 2] in row order.

    The per-token work is in turning the tokenizer's lists into arrays, and most of it repeats:
    consecutive windows of an example share ``stride`` tokens, and questions on one paragraph
    share its tokens. So each context keeps one list of its tokens' spans as far as seen, and a
    row whose span list equals a slice of it (checked by a list comparison, so the result is
    exact whatever the guess) points at that slice instead of being converted again. The guess:
    an example's first window starts at the context's first token, each next one ``stride``
    tokens before the end of the previous one (Hugging Face / tokenizers overflow semantics).
    """
    n = len(encodings)
    lo = np.zeros(n, dtype=np.int64)
    hi = np.zeros(n, dtype=np.int64)
    scattered = {}
    sources = []  # span lists to convert, once each
    source_of = {}  # context -> index of its span list in ``sources``
    row_source = np.zeros(n, dtype=np.int64)
    row_at = np.zeros(n, dtype=np.int64)
    prev_example, prev_end = None, 0
    for i, e in enumerate(encodings):
        seq = e.sequence_ids
        k = seq.count(context_seq)
        example = sample_map[i]
        at = prev_end - stride if example == prev_example else 0
        prev_example, prev_end = example, 0
        if not k:
            row_source[i] = len(sources)
            sources.append(())
            continue
        a = seq.index(context_seq)
        spans = e.word_ids if split_chars else offset_rows[i]
        if seq[a:a + k].count(context_seq) == k:
            lo[i], hi[i] = a, a + k
            piece = spans[a:a + k]
        else:
            where = [j for j, s in enumerate(seq) if s == context_seq]
            scattered[i] = where
            piece = [spans[j] for j in where]
        key = contexts[example] if contexts is not None else None
        s = source_of.get(key) if key is not None else None
        if s is None and key is not None and at == 0:
            source_of[key] = s = len(sources)
            sources.append(list(piece))
            row_source[i], row_at[i], prev_end = s, 0, k
            continue
        if s is not None and 0 <= at <= len(sources[s]):
            full = sources[s]
            m = min(k, len(full) - at)
            if piece[:m] == full[at:at + m]:
                if m < k:
                    full.extend(piece[m:])
                row_source[i], row_at[i], prev_end = s, at, at + k
                continue
        row_source[i] = len(sources)  # converted on its own
        sources.append(piece)
    sizes = np.fromiter(map(len, sources), dtype=np.int64, count=len(sources))
    total = int(sizes.sum())
    if split_chars:
        starts = _flat(sources, np.int32, total)
        flat = np.stack([starts, starts + 1], axis=1)
    else:
        flat = np.fromiter(chain.from_iterable(chain.from_iterable(sources)), dtype=np.int32,
                           count=2 * total).reshape(-1, 2)
    counts = np.array([len(scattered[i]) if i in scattered else hi[i] - lo[i] for i in range(n)],
                      dtype=np.int64) if scattered else hi - lo
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]])[row_source] + row_at
    row_first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    take = np.arange(int(counts.sum())) + np.repeat(base - row_first, counts)
    return lo, hi, scattered, flat[take], counts


def _collect(tokenizer, enc, sample_map, pad_on_right, char_shift, max_length, split_chars,
             contexts=None, stride=0) -> Windows:
    """Turn a tokenizer batch into a ``Windows`` (offsets outside the context set to -1).

    ``contexts`` (one per example, for sliding windows) lets rows of one paragraph share the
    conversion of their character spans (see :func:`_context_spans`).
    """
    ids = enc["input_ids"]
    n = len(ids)
    lengths = np.fromiter(map(len, ids), dtype=np.int32, count=n)
    if n and int(lengths.max()) > max_length:
        raise HarnessError(f"a window of {int(lengths.max())} tokens exceeds max_length {max_length}",
                           hint="the question alone is too long: lower max_query_length")
    pos = np.arange(max_length)
    real = pos[None, :] < lengths[:, None]
    input_ids = np.full((n, max_length), tokenizer.pad_token_id or 0, dtype=np.int32)
    input_ids[real] = _flat(ids, np.int32, int(lengths.sum()))
    token_type_ids = _type_ids(enc["token_type_ids"], lengths, max_length) if "token_type_ids" in enc else None

    sample_map = list(sample_map)
    lo, hi, scattered, spans, counts = _context_spans(
        enc.encodings, None if split_chars else enc["offset_mapping"], sample_map, contexts, stride,
        1 if pad_on_right else 0, split_chars)
    shifts = np.broadcast_to(np.asarray(char_shift, dtype=np.int32), (n,))
    if shifts.any():
        spans = spans + np.repeat(shifts, counts)[:, None]
    in_ctx = (pos[None, :] >= lo[:, None]) & (pos[None, :] < hi[:, None])
    for i, where in scattered.items():
        in_ctx[i, where] = True
    offsets = np.full((n, max_length, 2), NO_OFFSET, dtype=np.int32)
    offsets.reshape(n, 2 * max_length)[np.repeat(in_ctx, 2, axis=1)] = spans.reshape(-1)

    cls_index = np.zeros(n, dtype=np.int32)
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    if cls_id is not None and n:
        is_cls = (input_ids == cls_id) & real
        cls_index = np.where(is_cls.any(axis=1), is_cls.argmax(axis=1), 0).astype(np.int32)
    return Windows(
        input_ids=input_ids,
        token_type_ids=token_type_ids,
        lengths=lengths,
        offsets=offsets,
        example_index=np.asarray(sample_map, dtype=np.int32).reshape(n),
        cls_index=cls_index,
    )


def _first_answers(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per example: has an answer, and the character span [a0, a1) of its first one."""
    has = np.fromiter((bool(ex.answers) for ex in examples), dtype=bool, count=len(examples))
    a0 = np.fromiter((ex.answer_starts[0] if ex.answers else 0 for ex in examples), dtype=np.int64,
                     count=len(examples))
    a1 = a0 + np.fromiter((len(ex.answers[0]) if ex.answers else 0 for ex in examples), dtype=np.int64,
                          count=len(examples))
    return has, a0, a1


def _label(windows: Windows, examples: Sequence[Example]) -> None:
    """Token start/end labels of each window's example's first answer (CLS when outside).

    A window is labelled when its context tokens reach from at or before the answer's first
    character to at or after its last; the start is then the last context token starting at or
    before the answer, the end the first context token ending at or after it.
    """
    starts = windows.cls_index.copy()
    ends = windows.cls_index.copy()
    n, width = windows.offsets.shape[:2]
    if n == 0:
        windows.start_positions, windows.end_positions = starts, ends
        return
    has, a0, a1 = _first_answers(examples)
    ex = windows.example_index
    has, a0, a1 = has[ex], a0[ex][:, None], a1[ex][:, None]
    tok_start = windows.offsets[:, :, 0]
    tok_end = windows.offsets[:, :, 1]
    ctx = tok_start >= 0
    rows = np.arange(n)
    first = ctx.argmax(axis=1)
    last = width - 1 - ctx[:, ::-1].argmax(axis=1)
    covered = (ctx.any(axis=1) & (tok_start[rows, first] <= a0[:, 0]) & (tok_end[rows, last] >= a1[:, 0]))
    s_ok = ctx & (tok_start <= a0)
    e_ok = ctx & (tok_end >= a1)
    take = has & covered & s_ok.any(axis=1) & e_ok.any(axis=1)
    s_tok = width - 1 - s_ok[:, ::-1].argmax(axis=1)
    e_tok = e_ok.argmax(axis=1)
    windows.start_positions = np.where(take, s_tok, starts).astype(np.int32)
    windows.end_positions = np.where(take, e_tok, ends).astype(np.int32)


def _token_spans(enc, split_chars: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Character spans of every token of a batch without special tokens, rows concatenated.

    Returns ``(starts, ends, row_start)``: row ``r``'s tokens are ``row_start[r]:row_start[r+1]``.
    """
    n = len(enc["input_ids"])
    counts = np.fromiter(map(len, enc["input_ids"]), dtype=np.int64, count=n)
    row_start = np.concatenate([[0], np.cumsum(counts)])
    total = int(row_start[-1])
    if split_chars:
        words = [e.word_ids for e in enc.encodings]
        try:
            starts = _flat(words, np.int64, total)
        except TypeError:  # a token without a word (cannot happen without special tokens)
            starts = np.fromiter((w if w is not None else 0 for row in words for w in row), dtype=np.int64,
                                 count=total)
        return starts, starts + 1, row_start
    flat = np.fromiter(chain.from_iterable(chain.from_iterable(enc["offset_mapping"])), dtype=np.int64,
                       count=2 * total).reshape(-1, 2)
    return flat[:, 0].copy(), flat[:, 1].copy(), row_start


def _rowwise_searchsorted(values, row_start, rows, queries, side):
    """``np.searchsorted(values[row_start[r]:row_start[r+1]], q, side)`` for each (r, q), vectorised.

    Rows are made one sorted array by adding ``r * big`` to row ``r``'s values (each row must be
    sorted, which token offsets are); falls back to a loop otherwise.
    """
    counts = np.diff(row_start)
    row_of = np.repeat(np.arange(len(counts)), counts)
    big = int(max(values.max(initial=0), queries.max(initial=0))) + 1
    keyed = values + row_of * big
    if np.all(np.diff(keyed) >= 0):
        return np.searchsorted(keyed, queries + rows * big, side=side) - row_start[rows]
    return np.array([np.searchsorted(values[row_start[r]:row_start[r + 1]], q, side=side)
                     for r, q in zip(rows, queries)], dtype=np.int64)


def _answer_windows(tokenizer, examples, questions, q_counts, max_length, max_offset, seed, pad_on_right,
                    split_chars):
    """HW7 training variant: one window per answered example around its answer, randomly shifted."""
    rng = np.random.default_rng(seed)
    example_ids = [ex.id for ex in examples]
    keep = [i for i, ex in enumerate(examples) if ex.answers]
    if not keep:
        return _empty(tokenizer, max_length, True, example_ids)
    ctx_texts = [examples[i].context for i in keep]
    ctx_enc = tokenizer(
        _char_lists(ctx_texts) if split_chars else ctx_texts,
        add_special_tokens=False, return_offsets_mapping=not split_chars, is_split_into_words=split_chars,
        return_attention_mask=False, return_token_type_ids=False,
    )
    starts, ends, row_start = _token_spans(ctx_enc, split_chars)
    n_tok = np.diff(row_start)
    if not n_tok.all():
        bad = examples[keep[int(np.flatnonzero(n_tok == 0)[0])]]
        raise HarnessError(f"example {bad.id}: its context has no tokens but an answer")
    # token counts of the (possibly cut) questions; a cut one is tokenized again as it is
    q_len = [q_counts[i] for i in keep]
    recount = [row for row, c in enumerate(q_len) if c is None]
    if recount:
        again = [questions[keep[row]] for row in recount]
        enc = tokenizer(_char_lists(again) if split_chars else again, add_special_tokens=False,
                        is_split_into_words=split_chars, return_attention_mask=False, return_token_type_ids=False)
        for row, ids in zip(recount, enc["input_ids"]):
            q_len[row] = len(ids)
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    budget = np.maximum(1, max_length - np.asarray(q_len, dtype=np.int64) - n_special)

    has, a0, a1 = _first_answers([examples[i] for i in keep])
    rows = np.arange(len(keep))
    s_tok = _rowwise_searchsorted(ends, row_start, rows, a0, "right")  # first token ending after a0
    e_tok = _rowwise_searchsorted(starts, row_start, rows, a1, "left") - 1  # last token starting before a1
    s_tok = np.minimum(s_tok, n_tok - 1)
    e_tok = np.maximum(np.minimum(e_tok, n_tok - 1), 0)
    mid = (s_tok + e_tok) // 2
    lo = np.maximum(0, np.minimum(mid - budget // 2, n_tok - budget))
    if max_offset:
        # one draw per answered example, in order (as a loop of scalar draws would)
        shift = np.array([int(rng.integers(-max_offset, max_offset + 1)) for _ in keep], dtype=np.int64)
        # keep the answer inside [lo, lo + budget) (np.clip semantics: the upper bound wins)
        lo = np.minimum(np.maximum(lo + shift, np.maximum(0, e_tok - budget + 1)),
                        np.maximum(0, np.minimum(s_tok, n_tok - budget)))
    hi = np.minimum(n_tok, lo + budget)
    c0 = starts[row_start[:-1] + lo]
    c1 = ends[row_start[:-1] + hi - 1]
    sub_q = [questions[i] for i in keep]
    sub_c = [examples[i].context[int(x):int(y)] for i, x, y in zip(keep, c0, c1)]
    enc = _encode(tokenizer, sub_q, sub_c, pad_on_right, split_chars, max_length=max_length)
    windows = _collect(tokenizer, enc, keep, pad_on_right, c0.astype(np.int32), max_length, split_chars)
    windows.example_ids = example_ids
    _label(windows, examples)
    return windows
