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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from harness.tasks.qa.example import Example
from harness.common.errors import HarnessError

NO_OFFSET = -1


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


def _truncate_question(tokenizer, question: str, max_query_length: int, split_chars: bool) -> str:
    """Cut the question (by characters, at a token boundary) to ``max_query_length`` tokens."""
    question = question.strip()
    if split_chars:
        enc = tokenizer(list(question), is_split_into_words=True, add_special_tokens=False)
        words = [w for w in enc.word_ids() if w is not None]
        return question if len(words) <= max_query_length else question[: words[max_query_length - 1] + 1]
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offs = enc["offset_mapping"]
    if len(offs) <= max_query_length:
        return question
    return question[: offs[max_query_length - 1][1]]


def _encode(tokenizer, questions, contexts, pad_on_right, split_chars, **kwargs):
    """Tokenize question/context pairs, context second (first for left-padding tokenizers)."""
    if split_chars:
        questions = [list(q) for q in questions]
        contexts = [list(c) for c in contexts]
    first, second = (questions, contexts) if pad_on_right else (contexts, questions)
    return tokenizer(
        first, second,
        truncation="only_second" if pad_on_right else "only_first",
        return_offsets_mapping=True, padding=False, is_split_into_words=split_chars, **kwargs,
    )


def _token_char_spans(enc, i: int, split_chars: bool) -> np.ndarray:
    """[k, 2] character span of each token of row ``i`` (word index when split by characters)."""
    if split_chars:
        words = np.array([w if w is not None else 0 for w in enc.word_ids(i)], dtype=np.int32)
        return np.stack([words, words + 1], axis=1)
    return np.asarray(enc["offset_mapping"][i], dtype=np.int32).reshape(-1, 2)


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
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("windows need a fast tokenizer (offset mapping); got a slow one")
    pad_on_right = tokenizer.padding_side == "right"
    questions = [_truncate_question(tokenizer, ex.question, max_query_length, split_chars) for ex in examples]
    contexts = [ex.context for ex in examples]
    if max_offset is not None:
        return _answer_windows(tokenizer, examples, questions, max_length, max_offset, seed, pad_on_right, split_chars)
    if doc_stride >= max_length - max_query_length - 3:
        raise HarnessError(
            f"doc_stride={doc_stride} must be smaller than the context part of a window "
            f"(max_length {max_length} - question {max_query_length} - 3 special tokens)"
        )
    enc = _encode(
        tokenizer, questions, contexts, pad_on_right, split_chars,
        max_length=max_length, stride=doc_stride, return_overflowing_tokens=True,
    )
    windows = _collect(tokenizer, enc, list(enc["overflow_to_sample_mapping"]), pad_on_right, 0, max_length, split_chars)
    windows.example_ids = [ex.id for ex in examples]
    if with_labels:
        _label(windows, examples)
    return windows


def _collect(tokenizer, enc, sample_map, pad_on_right, char_shift, max_length, split_chars) -> Windows:
    """Turn a tokenizer batch into a ``Windows`` (offsets outside the context set to -1)."""
    n = len(enc["input_ids"])
    context_seq = 1 if pad_on_right else 0
    input_ids = np.full((n, max_length), tokenizer.pad_token_id or 0, dtype=np.int32)
    has_tt = "token_type_ids" in enc
    token_type_ids = np.zeros((n, max_length), dtype=np.int8) if has_tt else None
    offsets = np.full((n, max_length, 2), NO_OFFSET, dtype=np.int32)
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
        offs = _token_char_spans(enc, i, split_chars)
        in_ctx = seq == context_seq
        offsets[i, :k][in_ctx] = offs[in_ctx] + shifts[i]
        if cls_id is not None:
            hits = np.flatnonzero(np.asarray(ids) == cls_id)
            cls_index[i] = hits[0] if len(hits) else 0
    return Windows(
        input_ids=input_ids,
        token_type_ids=token_type_ids,
        lengths=lengths,
        offsets=offsets,
        example_index=np.asarray(sample_map, dtype=np.int32),
        cls_index=cls_index,
    )


def _label(windows: Windows, examples: Sequence[Example]) -> None:
    """Token start/end labels of each window's example's first answer (CLS when outside)."""
    n = len(windows)
    starts = windows.cls_index.copy()
    ends = windows.cls_index.copy()
    tok_start = windows.offsets[:, :, 0]
    tok_end = windows.offsets[:, :, 1]
    in_ctx = tok_start >= 0
    for i in range(n):
        ex = examples[windows.example_index[i]]
        if not ex.answers:
            continue
        a0, a1 = ex.answer_span(0)
        ctx = in_ctx[i]
        if not ctx.any():
            continue
        first = np.flatnonzero(ctx)
        if tok_start[i, first[0]] > a0 or tok_end[i, first[-1]] < a1:
            continue  # answer not fully inside this window
        # start: last context token starting at or before a0; end: first ending at or after a1
        s_cand = np.flatnonzero(ctx & (tok_start[i] <= a0))
        e_cand = np.flatnonzero(ctx & (tok_end[i] >= a1))
        if len(s_cand) == 0 or len(e_cand) == 0:
            continue
        starts[i], ends[i] = s_cand[-1], e_cand[0]
    windows.start_positions = starts
    windows.end_positions = ends


def _answer_windows(tokenizer, examples, questions, max_length, max_offset, seed, pad_on_right, split_chars):
    """HW7 training variant: one window per answered example around its answer, randomly shifted."""
    rng = np.random.default_rng(seed)
    keep = [i for i, ex in enumerate(examples) if ex.answers]
    ctx_texts = [examples[i].context for i in keep]
    ctx_enc = tokenizer(
        [list(c) for c in ctx_texts] if split_chars else ctx_texts,
        add_special_tokens=False, return_offsets_mapping=True, is_split_into_words=split_chars,
    )
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    sub_q, sub_c, shifts = [], [], []
    for row, i in enumerate(keep):
        ex = examples[i]
        q_in = list(questions[i]) if split_chars else questions[i]
        q_len = len(tokenizer(q_in, add_special_tokens=False, is_split_into_words=split_chars)["input_ids"])
        budget = max(1, max_length - q_len - n_special)
        offs = _token_char_spans(ctx_enc, row, split_chars).astype(np.int64)
        n_tok = len(offs)
        a0, a1 = ex.answer_span(0)
        s_tok = int(np.searchsorted(offs[:, 1], a0, side="right"))  # first token ending after a0
        e_tok = int(np.searchsorted(offs[:, 0], a1, side="left")) - 1  # last token starting before a1
        s_tok, e_tok = min(s_tok, n_tok - 1), max(min(e_tok, n_tok - 1), 0)
        mid = (s_tok + e_tok) // 2
        lo = max(0, min(mid - budget // 2, n_tok - budget))
        if max_offset:
            shift = int(rng.integers(-max_offset, max_offset + 1))
            # keep the answer inside [lo, lo + budget)
            lo = int(np.clip(lo + shift, max(0, e_tok - budget + 1), max(0, min(s_tok, n_tok - budget))))
        hi = min(n_tok, lo + budget)
        c0, c1 = int(offs[lo, 0]), int(offs[hi - 1, 1])
        sub_q.append(questions[i])
        sub_c.append(ex.context[c0:c1])
        shifts.append(c0)
    enc = _encode(tokenizer, sub_q, sub_c, pad_on_right, split_chars, max_length=max_length)
    shifts = np.asarray(shifts, dtype=np.int32)
    windows = _collect(tokenizer, enc, keep, pad_on_right, shifts, max_length, split_chars)
    windows.example_ids = [ex.id for ex in examples]
    _label(windows, examples)
    return windows
