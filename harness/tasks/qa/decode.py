"""Start/end scores -> answer spans: the one span decoder of the project.

``best_spans`` is the vectorised core (any 2-D batch of start/end scores with masks: token
windows here, character-level ensembles later). ``decode_windows`` maps the logits of token
windows to answers cut from each example's original context by character offsets, merging the
candidates of all windows of an example.

The logic follows Hugging Face ``examples/pytorch/question-answering/utils_qa.py``
(``postprocess_qa_predictions``): a span is a pair of context tokens ``start <= end`` at most
``max_answer_length`` tokens long, scored ``start_logit + end_logit``; the answer is
``context[offsets[start][0]:offsets[end][1]]``; for SQuAD v2 the null score of an example is the
minimum over its windows of ``start_logit[cls] + end_logit[cls]``, and the answer is empty when
``null_score - best_span_score > null_threshold``. Differences: the search is exhaustive over all
valid spans (HF only pairs the top-20 starts with the top-20 ends, so it can miss the best
span); identical character spans found in several windows are merged, keeping the best score; an
example with no candidate gets ``""`` (HF writes ``"empty"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from harness.tasks.qa.example import Example
from harness.tasks.qa.windows import Windows

MEMORY_BYTES = 256 * 2**20  # bound on the temporary candidate arrays of one chunk of rows
_BYTES_PER_CANDIDATE = 8  # float32 score + slack for torch.topk's per-row work


def best_spans(
    start_scores: np.ndarray,
    end_scores: np.ndarray,
    start_ok: np.ndarray,
    end_ok: np.ndarray,
    max_span: int,
    n_best: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``n_best`` spans of every row of a [rows, positions] batch.

    A span ``(s, e)`` is valid when ``s <= e < s + max_span`` and ``start_ok[r, s]`` and
    ``end_ok[r, e]``; its score is ``start_scores[r, s] + end_scores[r, e]`` (float32). Returns
    ``starts``, ``ends`` (int32 [rows, n_best]) and ``scores`` (float32 [rows, n_best]), each row
    sorted by descending score (ties: smaller start, then smaller end first). Rows with fewer
    than ``n_best`` valid spans are padded with position -1 and score ``-inf``.

    All rows are processed at once (in chunks of about ``MEMORY_BYTES``); the only Python loop
    runs over the span length. Which of several spans tied at the ``n_best`` cut-off is kept is
    unspecified.
    """
    import torch  # top-k only; imported here so that importing the decoder stays light
    s = np.asarray(start_scores, dtype=np.float32)
    e = np.asarray(end_scores, dtype=np.float32)
    if s.ndim != 2 or s.shape != e.shape or np.shape(start_ok) != s.shape or np.shape(end_ok) != s.shape:
        raise ValueError(f"expected four [rows, positions] arrays of one shape, got {s.shape}, {e.shape}, "
                         f"{np.shape(start_ok)}, {np.shape(end_ok)}")
    rows, p = s.shape
    s = np.where(start_ok, s, np.float32(-np.inf))
    e = np.where(end_ok, e, np.float32(-np.inf))
    starts = np.full((rows, n_best), -1, dtype=np.int32)
    ends = np.full((rows, n_best), -1, dtype=np.int32)
    scores = np.full((rows, n_best), -np.inf, dtype=np.float32)
    d = min(max_span, p)  # span lengths 1..d, i.e. end - start in 0..d-1
    if rows == 0 or d <= 0 or n_best <= 0:
        return starts, ends, scores
    k = min(n_best, d * p)
    chunk = min(rows, max(1, MEMORY_BYTES // (d * p * _BYTES_PER_CANDIDATE)))
    # cand[r, off, i] = s[r, i] + e[r, i + off]; -inf where i + off runs past the row. One buffer
    # for all chunks: the -inf tails are written once, the rest is overwritten chunk by chunk.
    buffer = np.empty((chunk, d, p), dtype=np.float32)
    for off in range(1, d):
        buffer[:, off, p - off:] = -np.inf
    for lo in range(0, rows, chunk):
        hi = min(rows, lo + chunk)
        cand = buffer[: hi - lo]
        for off in range(d):
            np.add(s[lo:hi, : p - off], e[lo:hi, off:], out=cand[:, off, : p - off])
        # torch.topk: several times faster than np.argpartition on these -inf-riddled rows
        top_scores, top = torch.topk(torch.from_numpy(cand.reshape(hi - lo, d * p)), k, dim=1, sorted=False)
        top_scores, top = top_scores.numpy(), top.numpy()
        top_starts = top % p
        top_ends = top_starts + top // p
        order = np.lexsort((top_ends, top_starts, -top_scores), axis=-1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        valid = top_scores > -np.inf
        scores[lo:hi, :k] = top_scores
        starts[lo:hi, :k] = np.where(valid, np.take_along_axis(top_starts, order, axis=1), -1)
        ends[lo:hi, :k] = np.where(valid, np.take_along_axis(top_ends, order, axis=1), -1)
    return starts, ends, scores


class Span(NamedTuple):
    """One candidate answer: ``text == context[start:end]``."""

    text: str
    start: int
    end: int
    score: float


@dataclass
class Predictions:
    """Decoded answers, one entry per example (in the order of the examples given).

    ``texts[i] == contexts[i][starts[i]:ends[i]]``, or ``""`` with ``starts[i] == ends[i] == -1``
    when there is no candidate or the null answer wins. ``scores`` is the best non-null span score
    (``-inf`` when none) and ``null_scores`` the minimum CLS score over the example's windows
    (``+inf`` without windows), so ``null_scores - scores`` is HF's ``score_diff`` for tuning the
    v2 threshold. The n-best arrays ([examples, n_best], padded with -1 / ``-inf``) hold distinct
    character spans sorted by descending score; ``nbest(i)`` gives them as ``Span`` tuples.
    """

    ids: list[str]
    texts: list[str]
    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    null_scores: np.ndarray
    nbest_starts: np.ndarray
    nbest_ends: np.ndarray
    nbest_scores: np.ndarray
    contexts: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def nbest(self, i: int) -> list[Span]:
        """The n-best list of example ``i`` (best first)."""
        ctx = self.contexts[i]
        return [
            Span(ctx[a:b], int(a), int(b), float(sc))
            for a, b, sc in zip(self.nbest_starts[i], self.nbest_ends[i], self.nbest_scores[i])
            if a >= 0
        ]

    def to_dict(self) -> dict[str, str]:
        """``{example id: answer text}``, the form metrics and submissions take."""
        return dict(zip(self.ids, self.texts))


def decode_windows(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    windows: Windows,
    examples: Sequence[Example],
    max_answer_length: int = 30,
    n_best: int = 20,
    null_threshold: float | None = None,
) -> Predictions:
    """Answers for ``examples`` from the [n_windows, L] start/end logits of ``windows``.

    Only context tokens (``offsets >= 0``) can start or end a span; a span's text is cut from the
    example's context by characters (start token's char start to end token's char end). The
    candidates of all windows of an example are merged; identical character spans keep their best
    score. With ``null_threshold`` (SQuAD v2) the answer is ``""`` when
    ``null_score - best_score > null_threshold``; without it the null answer is never predicted.

    The n-best list is exact as long as distinct tokens of a window cover distinct character
    spans (true for WordPiece and for ``split_chars`` windows); the best answer is always exact.
    """
    s = np.asarray(start_logits, dtype=np.float32)
    e = np.asarray(end_logits, dtype=np.float32)
    n, length = windows.offsets.shape[:2]
    if s.shape != (n, length) or e.shape != (n, length):
        raise ValueError(f"logits must have the windows' shape {(n, length)}, got {s.shape} and {e.shape}")
    if n_best < 1:
        raise ValueError(f"n_best must be at least 1, got {n_best}")
    m = len(examples)
    ok = windows.context_mask
    starts, ends, scores = best_spans(s, e, ok, ok, max_answer_length, n_best)

    # flatten the per-window candidates and map them to characters of the example's context
    k = starts.shape[1]
    keep = scores.ravel() > -np.inf
    rows = np.repeat(np.arange(n), k)[keep]
    tok0, tok1, sc = starts.ravel()[keep], ends.ravel()[keep], scores.ravel()[keep]
    ex = windows.example_index[rows].astype(np.int64)
    c0 = windows.offsets[rows, tok0, 0]
    c1 = windows.offsets[rows, tok1, 1]

    # one entry per (example, char span), the best-scoring one
    order = np.lexsort((-sc, c1, c0, ex))
    ex, c0, c1, sc = ex[order], c0[order], c1[order], sc[order]
    first = np.ones(len(ex), dtype=bool)
    first[1:] = (ex[1:] != ex[:-1]) | (c0[1:] != c0[:-1]) | (c1[1:] != c1[:-1])
    ex, c0, c1, sc = ex[first], c0[first], c1[first], sc[first]

    # per example: sort by descending score (ties: earlier span) and keep the first n_best
    order = np.lexsort((c1, c0, -sc, ex))
    ex, c0, c1, sc = ex[order], c0[order], c1[order], sc[order]
    rank = np.arange(len(ex)) - np.searchsorted(ex, ex, side="left")
    top = rank < n_best
    nb_starts = np.full((m, n_best), -1, dtype=np.int32)
    nb_ends = np.full((m, n_best), -1, dtype=np.int32)
    nb_scores = np.full((m, n_best), -np.inf, dtype=np.float32)
    nb_starts[ex[top], rank[top]] = c0[top]
    nb_ends[ex[top], rank[top]] = c1[top]
    nb_scores[ex[top], rank[top]] = sc[top]

    # SQuAD v2 null score: min over the example's windows of start[cls] + end[cls]
    win = np.arange(n)
    null_scores = np.full(m, np.inf, dtype=np.float32)
    np.minimum.at(null_scores, windows.example_index, s[win, windows.cls_index] + e[win, windows.cls_index])

    best_starts, best_ends, best_scores = nb_starts[:, 0].copy(), nb_ends[:, 0].copy(), nb_scores[:, 0].copy()
    if null_threshold is not None:
        is_null = null_scores - best_scores > null_threshold
        best_starts[is_null] = -1
        best_ends[is_null] = -1
    contexts = [x.context for x in examples]
    texts = [ctx[a:b] if a >= 0 else "" for ctx, a, b in zip(contexts, best_starts, best_ends)]
    return Predictions(
        ids=[x.id for x in examples],
        texts=texts,
        starts=best_starts,
        ends=best_ends,
        scores=best_scores,
        null_scores=null_scores,
        nbest_starts=nb_starts,
        nbest_ends=nb_ends,
        nbest_scores=nb_scores,
        contexts=contexts,
    )
