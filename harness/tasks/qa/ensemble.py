"""Ensembles of span logits, across the windows of one model and across models whose tokenizers differ.

Members are ``LogitSet`` s (one run's logits on one split). ``ensemble_answers`` picks one of two
ways to combine them:

* **Characters** (the members' windows differ, e.g. different tokenizers; the winning Kaggle QA
  recipe). Each member is projected onto the characters of every example's context
  (``char_scores``): a token's start logit goes to the character where the token starts, its end
  logit to the character where it ends; characters covered by several overlapping windows take the
  max (or mean) of their logits; characters where no token starts (ends) get ``-inf``. Each
  example's start and end scores are then normalised to log-probabilities over its characters, so
  that members with different logit offsets combine (``combine``: weighted mean of log-probs or of
  probs), and spans are decoded over characters (``decode_chars``: the ``best_spans`` search of
  the token decoder, span length counted in characters).
* **Tokens** (every member has the same windows: one model, or folds/seeds of one tokenizer and
  windowing). The members' logits are combined position by position and decoded by
  ``decode_windows`` itself.

Single-model consistency. The character path is *not* the per-window decoder. With max
aggregation a span's start score may come from one window and its end score from another (so it
can outscore every single-window span, or join a start seen only in one window to an end seen only
in another), and span length is counted in characters instead of tokens (whitespace has no token
under ``split_chars``; a WordPiece covers several characters). The two agree only when the logits
are consistent across overlapping windows, each context character is exactly one token, and
``max_answer_length <= doc_stride`` (any such span then lies inside one window). So a single model
never takes the character path:

1. members with weight 0 are dropped; if one member remains, the answer is ``decode_windows`` on
   its raw logits. The ensemble of one *is* the single model, by construction;
2. members that share windows take the token path. In log-prob space they all score the same
   positions, so per-example normalisation only shifts every span score of an example by one
   constant and is skipped: the combination is the weighted mean of the raw logits, and two
   identical members with equal weights reproduce the single member bit for bit
   (``0.5 * x + 0.5 * x == x``). In prob space each member's logits are first turned into
   log-probabilities over all context tokens of the example's windows;
3. only members whose windows differ take the character path.

Characters one member can score and another cannot (a split-by-character model sees every start,
a WordPiece model only word-piece starts): in prob space the missing member contributes
probability 0; in log-prob space it contributes ``FLOOR = log(1e-8)`` (a strong penalty rather
than a veto). Characters no member can score stay ``-inf``. The character path's length limit
``max_answer_chars`` defaults to ``max_answer_length`` tokens times the members' largest mean
number of characters per token (1 for ``split_chars`` windows, about 4.5 for English WordPiece).

``fit_weights`` fits member weights on dev or out-of-fold logits: Caruana's greedy forward
selection with replacement, or Optuna's TPE sampler. Each member's scores are computed once.
No null answer (SQuAD v2) is predicted by the ensemble.

Speed (the same numbers as the plain definitions, bit for bit): on the character path an
``Ensemble`` keeps characters in ``N_BLOCKS`` blocks of examples of similar context length (not
one matrix as wide as the longest context); the projection of members that share windows shares
where each token lands, and scatters one window of every example at a time (``np.maximum.at``
only where a window hits one character twice); in log-prob space the members' floored scores are
projected straight into one stack per side (``FLOOR`` in place of ``-inf``) and summed member
after member over the members in use; ``n_best = 1`` decodes take the search's argmax path;
``fit_weights`` memoises each question's EM or F1 by answer span (sorted int64 codes).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.tasks.qa.decode import (
    Predictions,
    _best_spans_within,
    best_one_padded,
    best_spans,
    decode_windows,
)
from harness.tasks.qa.example import Example
from harness.tasks.qa.logits import LogitSet
from harness.tasks.qa.metrics import detect_lang, f1_score, normalize_answer
from harness.weights import normalise as _weights
from harness.weights import search_weights

FLOOR = np.float32(np.log(1e-8))  # log-prob of a character a member cannot score (log-prob space)

N_BLOCKS = 8  # the character path stores examples in this many blocks of similar context length
Scores = tuple[np.ndarray, np.ndarray]


# ------------------------------------------------------------------------- projection

def _log_softmax(x: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Log-softmax of the finite entries of ``x`` [rows, positions] over each group of rows."""
    row_max = x.max(axis=1)
    top = np.full(n_groups, -np.inf, np.float32)
    np.maximum.at(top, groups, row_max)
    top = np.where(np.isfinite(top), top, 0).astype(np.float32)
    mass = np.bincount(groups, weights=np.exp(x - top[groups, None]).sum(axis=1, dtype=np.float64), minlength=n_groups)
    with np.errstate(divide="ignore"):
        lse = top + np.where(mass > 0, np.log(mass), 0).astype(np.float32)
    return (x - lse[groups, None]).astype(np.float32)


def _layers(example_index: np.ndarray) -> np.ndarray:
    """Rank of each window among the windows of its example (0 for the first)."""
    order = np.argsort(example_index, kind="stable")
    ex = example_index[order]
    first = np.ones(len(ex), bool)
    first[1:] = ex[1:] != ex[:-1]
    idx = np.arange(len(ex))
    rank = np.empty(len(ex), np.int64)
    rank[order] = idx - np.maximum.accumulate(np.where(first, idx, 0))
    return rank


def _by_layer(win: np.ndarray, layer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of the elements (``win``: their window, ascending) putting layer 0 first, then 1, ...,
    and the bounds of each layer in that order."""
    n_win = len(layer)
    count = np.bincount(win, minlength=n_win)
    head = np.cumsum(count) - count
    wins = np.argsort(layer, kind="stable")
    count_w = count[wins]
    start = np.cumsum(count_w) - count_w
    order = np.arange(int(count.sum())) + np.repeat(head[wins] - start, count_w)
    bounds = np.searchsorted(np.repeat(layer[wins], count_w), np.arange(int(layer.max(initial=0)) + 2))
    return order, bounds


def _scatter_max(x: np.ndarray, vals: np.ndarray, layers) -> None:
    """``np.maximum.at(x, pos, vals)``, faster: one window of each example at a time.

    ``layers``: ``[(lo, hi, pos, unique), ...]`` over ``vals`` ordered by window layer (the j-th
    window of every example): windows of different examples never share a position, so a layer
    whose positions are distinct (the tokens of a window usually are) is a gather, a maximum and
    a scatter, the first layer a plain scatter onto ``-inf``; other layers take ``np.maximum.at``.
    """
    for lo, hi, pos, unique in layers:
        v = vals[lo:hi]
        if not unique:
            np.maximum.at(x, pos, v)
        elif lo == 0:
            x[pos] = v
        else:
            x[pos] = np.maximum(x[pos], v)


def _layer_plan(win: np.ndarray, example_index: np.ndarray, positions) -> tuple[np.ndarray, list]:
    """Order of the elements (``win``: their window, ascending) by window layer, and per set of
    ``positions`` (in element order) the layers ``(lo, hi, positions of the layer, distinct)``.

    A layer's positions are distinct when, in every window of it, they strictly increase token
    by token (windows of one layer belong to different examples, whose positions never meet).
    """
    layer = _layers(example_index)
    order, bounds = _by_layer(win, layer)
    plans = []
    for pos in positions:
        back = (pos[1:] <= pos[:-1]) & (win[1:] == win[:-1])
        bad_layers = set(layer[win[1:][back]].tolist()) if back.any() else set()
        pos = pos[order]
        plans.append([(lo, hi, pos[lo:hi], at not in bad_layers)
                      for at, (lo, hi) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())) if hi > lo])
    return order, plans


class _Layout:
    """Where each character of each example sits in a flat score array.

    Examples are stored in blocks of similar context length (``n_blocks`` of them, examples in
    length order; one block keeps the given order): block ``b`` is a [rows, width] matrix, so
    example ``i``'s character ``c`` sits at ``base[i] + c``. Padding is what separates an
    example's length from its block's width (the block's longest context plus ``pad``), not from
    the longest context of all.
    """

    def __init__(self, lens: np.ndarray, n_blocks: int = 1, pad: int = 0):
        m = len(lens)
        order = np.arange(m) if n_blocks <= 1 else np.argsort(lens, kind="stable")
        self.base = np.zeros(m, np.int64)
        self.blocks = []  # (examples, width, offset of the block)
        at = 0
        for rows in np.array_split(order, max(1, min(n_blocks, m))) if m else []:
            width = max(int(lens[rows].max(initial=0)), 1) + pad  # pad: -inf columns after every row
            self.base[rows] = at + np.arange(len(rows)) * width
            self.blocks.append((rows, width, at))
            at += len(rows) * width
        self.size = at

    def view(self, flat: np.ndarray, b: int) -> np.ndarray:
        rows, width, at = self.blocks[b]
        return flat[at: at + len(rows) * width].reshape(len(rows), width)


def _targets(w, lens: np.ndarray, agg: str, layout: _Layout):
    """Where the logits of the windows ``w`` go: their flat indices (tokens covering a character),
    the flat character positions of their starts and ends in ``layout``, and the window layers
    (for ``_scatter_max``). Depends on the windows only: members sharing windows share it."""
    m = len(lens)
    length = w.offsets.shape[1]
    ok = (w.offsets[..., 0] >= 0) & (w.offsets[..., 1] > w.offsets[..., 0])  # tokens covering a character
    at = np.flatnonzero(ok)
    win = at // length
    off = np.ascontiguousarray(w.offsets, dtype=np.int32)
    if np.little_endian:  # one gather of (c0, c1) pairs read as int64: c1 high, c0 low
        pair = off.reshape(-1).view(np.int64)[at]
        c0, c1 = pair & 0xFFFFFFFF, pair >> 32
    else:
        c0, c1 = (off[..., j].reshape(-1)[at].astype(np.int64) for j in (0, 1))
    ex = w.example_index.astype(np.int64)[win]
    if len(ex) and (ex.max() >= m or (c1 > lens[ex]).any()):
        raise ValueError("windows point past the given contexts (examples and logits do not match)")
    base = layout.base[ex]
    start_pos, end_pos = base + c0, base + c1 - 1
    if agg != "max":
        return at, start_pos, end_pos, None
    order, plans = _layer_plan(win, w.example_index, (start_pos, end_pos))
    return at[order], start_pos[order], end_pos[order], plans


def _project(logits: LogitSet, lens: np.ndarray, agg: str, normalize: bool, layout: _Layout, targets=None,
             out=None) -> Scores:
    """``char_scores`` into the flat arrays of ``layout`` (``targets``: ``_targets`` of the windows;
    ``out``: two float32 arrays of ``layout.size`` to write into instead of new ones)."""
    if agg not in ("max", "mean"):
        raise ValueError(f"agg must be 'max' or 'mean', got {agg!r}")
    at, start_pos, end_pos, plans = targets or _targets(logits.windows, lens, agg, layout)
    res = []
    for k, (pos, x) in enumerate(((start_pos, logits.start_logits), (end_pos, logits.end_logits))):
        vals = np.asarray(x, dtype=np.float32).reshape(-1)[at]
        x = np.empty(layout.size, np.float32) if out is None else out[k]
        if agg == "max":
            x.fill(-np.inf)
            _scatter_max(x, vals, plans[k])
        else:
            count = np.bincount(pos, minlength=layout.size)
            total = np.bincount(pos, weights=vals, minlength=layout.size)
            with np.errstate(invalid="ignore", divide="ignore"):
                np.copyto(x, np.where(count > 0, total / count, -np.inf), casting="unsafe")
        if normalize:
            for b in range(len(layout.blocks)):
                view = layout.view(x, b)
                view[:] = _log_softmax(view, np.arange(len(view)), len(view))
        res.append(x)
    return res[0], res[1]


def char_scores(logits: LogitSet, contexts_len: np.ndarray | Sequence[int], agg: str = "max",
                normalize: bool = True) -> Scores:
    """Per-character start/end scores (float32 [n_examples, max context length]) of one member.

    A context token covering characters ``[c0, c1)`` sends its start logit to character ``c0`` and
    its end logit to ``c1 - 1``; several windows (or tokens) hitting one character are aggregated by
    ``agg`` (``"max"`` or ``"mean"``); characters nothing hits get ``-inf``. Rows follow
    ``logits.windows.example_index``; ``contexts_len[i]`` is example ``i``'s context length. With
    ``normalize`` each example's starts (ends) become log-probabilities over its characters.
    """
    lens = np.asarray(contexts_len, dtype=np.int64)
    layout = _Layout(lens)
    m, width = len(lens), max(int(lens.max(initial=0)), 1)
    S, E = _project(logits, lens, agg, normalize, layout)
    return S.reshape(m, width), E.reshape(m, width)


def chars_per_token(logits: LogitSet) -> float:
    """Characters spanned by the context tokens of the windows, per token (1.0 for ``split_chars``)."""
    off = logits.windows.offsets
    ok = off[..., 0] >= 0
    n = ok.sum(axis=1)
    has = n > 0
    if not has.any():
        return 1.0
    first = np.where(ok, off[..., 0], np.iinfo(np.int32).max).min(axis=1)
    last = np.where(ok, off[..., 1], -1).max(axis=1)
    return float((last - first)[has].sum() / n[has].sum())


# ------------------------------------------------------------------------- combination

SUM_CHUNK = 1 << 17  # elements summed at a time by _weighted_sum (the member terms stay in cache)


def _weighted_sum(w, xs, void=None) -> np.ndarray:
    """``w[0] * xs[0] + w[1] * xs[1] + ...`` in float32, member after member, into one new array
    (``xs``: float32 arrays of one shape, or the rows of a stack), ``-inf`` where ``void`` is set.
    Elementwise, so summing ``SUM_CHUNK`` elements at a time changes no bit."""
    acc = np.empty(np.shape(xs[0]), np.float32)
    flat = acc.reshape(-1)
    parts = [np.asarray(x, np.float32).reshape(-1) for x in xs]
    hole = None if void is None else void.reshape(-1)
    ws = [np.float32(wi) for wi in w]
    tmp = np.empty(min(SUM_CHUNK, flat.size), np.float32)
    for lo in range(0, flat.size, SUM_CHUNK):
        hi = min(lo + SUM_CHUNK, flat.size)
        a, t = flat[lo:hi], tmp[: hi - lo]
        np.multiply(parts[0][lo:hi], ws[0], out=a)
        for wi, x in zip(ws[1:], parts[1:]):
            np.multiply(x[lo:hi], wi, out=t)
            a += t
        if hole is not None:
            np.copyto(a, -np.inf, where=hole[lo:hi])
    return acc


def combine(members: Sequence[Scores], weights=None, space: str = "logprob") -> Scores:
    """Weighted mean of members' (S, E) log-probability arrays (all of one shape).

    ``space="logprob"``: ``sum_m w_m * x_m`` with a member's ``-inf`` replaced by ``FLOOR``;
    ``space="prob"``: ``log(sum_m w_m * exp(x_m))`` with ``-inf`` as probability 0. Weights are
    normalised to sum 1 (default: equal); members with weight 0 are ignored. Positions that no
    (weighted) member can score stay ``-inf``.
    """
    if space not in ("logprob", "prob"):
        raise ValueError(f"space must be 'logprob' or 'prob', got {space!r}")
    w = _weights(weights, len(members))
    live = [(float(wi), mem) for wi, mem in zip(w, members) if wi > 0]
    out = []
    for k in range(2):
        xs = [np.asarray(mem[k], dtype=np.float32) for _, mem in live]
        valid = np.logical_or.reduce([np.isfinite(x) for x in xs])
        if space == "logprob":
            acc = _weighted_sum([wi for wi, _ in live], [np.where(np.isfinite(x), x, FLOOR) for x in xs])
        else:  # log-sum-exp around the elementwise max: exact for identical members, no underflow
            top = np.where(valid, np.maximum.reduce(xs), 0).astype(np.float32)
            mass = np.zeros(xs[0].shape, np.float32)
            for wi, x in zip((wi for wi, _ in live), xs):
                mass += np.float32(wi) * np.exp(x - top)
            with np.errstate(divide="ignore"):
                acc = top + np.log(mass)
        out.append(np.where(valid, acc, -np.inf).astype(np.float32))
    return out[0], out[1]


# ------------------------------------------------------------------------- decoding

def decode_chars(S: np.ndarray, E: np.ndarray, contexts: Sequence[str], max_answer_chars: int = 30,
                 n_best: int = 20, ids: Sequence[str] | None = None) -> Predictions:
    """Answers from per-character start/end scores [n_examples, >= max context length].

    A span is characters ``a..b`` (inclusive) with ``a <= b < a + max_answer_chars``, both scores
    finite, scored ``S[a] + E[b]``; the answer is ``context[a:b + 1]`` (``Predictions`` stores the
    end exclusive). The search is ``best_spans`` (which groups rows of similar extent itself).
    ``ids`` default to ``"0", "1", ...``; ``null_scores`` are ``+inf`` (no null answer).
    """
    S, E = np.asarray(S, dtype=np.float32), np.asarray(E, dtype=np.float32)
    m = len(contexts)
    lens = np.array([len(c) for c in contexts], dtype=np.int64)
    if S.shape != E.shape or S.ndim != 2 or S.shape[0] != m or (m and S.shape[1] < lens.max()):
        raise ValueError(f"S and E must be [{m}, >= longest context], got {S.shape} and {E.shape}")
    if n_best < 1:
        raise ValueError(f"n_best must be at least 1, got {n_best}")
    p = int(lens.max(initial=0))
    starts, ends, scores = _char_spans(S[:, :p], E[:, :p], max_answer_chars, n_best)
    return _char_predictions(starts, ends, scores, contexts, ids)


def _char_spans(S: np.ndarray, E: np.ndarray, max_answer_chars: int, n_best: int):
    """``best_spans`` of character scores whose impossible positions are ``-inf`` already."""
    return best_spans(S, E, None, None, max_answer_chars, n_best)


def _char_predictions(starts, ends, scores, contexts, ids) -> Predictions:
    m = len(contexts)
    ends = np.where(starts >= 0, ends + 1, -1).astype(np.int32)
    contexts = list(contexts)
    return Predictions(
        ids=[str(i) for i in range(m)] if ids is None else list(ids),
        texts=[c[a:b] if a >= 0 else "" for c, a, b in zip(contexts, starts[:, 0].tolist(), ends[:, 0].tolist())],
        starts=starts[:, 0].copy(), ends=ends[:, 0].copy(), scores=scores[:, 0].copy(),
        null_scores=np.full(m, np.inf, np.float32),
        nbest_starts=starts, nbest_ends=ends, nbest_scores=scores, contexts=contexts,
    )


# ------------------------------------------------------------------------- the ensemble

def _align(member: LogitSet, ids: list[str]) -> LogitSet:
    """``member`` with its windows re-indexed to ``ids`` (windows of other examples dropped)."""
    if list(member.example_ids) == ids:
        return member
    pos = {q: i for i, q in enumerate(ids)}
    to_new = np.array([pos.get(q, -1) for q in member.example_ids], dtype=np.int64)
    new_index = to_new[member.windows.example_index]
    keep = np.flatnonzero(new_index >= 0)
    windows = member.windows.subset(keep)
    windows.example_index = new_index[keep].astype(np.int32)
    windows.example_ids = list(ids)
    return LogitSet(windows, member.start_logits[keep], member.end_logits[keep], member.meta)


class Ensemble:
    """Members aligned to ``examples``, with each member's scores computed once, ready to decode
    under any weights (see the module docstring for the paths)."""

    def __init__(self, members: Sequence[LogitSet], examples: Sequence[Example], agg: str = "max",
                 space: str = "logprob", max_answer_length: int = 30, max_answer_chars: int | None = None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if space not in ("logprob", "prob") or agg not in ("max", "mean"):
            raise ValueError(f"bad space {space!r} or agg {agg!r}")
        self.examples = list(examples)
        self.ids = [ex.id for ex in self.examples]
        self.members = [_align(m, self.ids) for m in members]
        self.agg, self.space, self.max_answer_length = agg, space, max_answer_length
        first = self.members[0].windows
        self.shared_windows = all(
            np.array_equal(m.windows.offsets, first.offsets) and np.array_equal(m.windows.example_index, first.example_index)
            for m in self.members[1:]
        )
        if max_answer_chars is None:
            per_windows = {id(m.windows): m for m in self.members}  # members of one tokenisation share windows
            max_answer_chars = max(1, round(max_answer_length * max(chars_per_token(m) for m in per_windows.values())))
        self.max_answer_chars = int(max_answer_chars)
        self._lens = np.array([len(ex.context) for ex in self.examples], dtype=np.int64)
        # each row ends in max_answer_chars - 1 impossible characters: n_best = 1 decodes read the
        # blocks in place (best_one_padded)
        self._layout = _Layout(self._lens, N_BLOCKS, pad=self.max_answer_chars - 1)
        self._scores: list[Scores | None] = [None] * len(self.members)
        self._fin: list = [None] * len(self.members)
        self._stack: list = [None, None]
        self._targets: dict[int, tuple] = {}  # per windows object (members of one tokenisation share it)
        self._void: dict[tuple, list] = {}

    def _member_targets(self, i: int):
        """``_targets`` of member ``i``'s windows (members of one tokenisation share them)."""
        key = id(self.members[i].windows)
        if key not in self._targets:
            self._targets[key] = _targets(self.members[i].windows, self._lens, self.agg, self._layout)
        return self._targets[key]

    def member_scores(self, i: int) -> Scores:
        """Member ``i``'s (S, E) in the ensemble's positions (tokens or characters), cached."""
        if self._scores[i] is None:
            m = self.members[i]
            if not self.shared_windows:  # flat, in self._layout
                self._scores[i] = _project(m, self._lens, self.agg, True, self._layout, self._member_targets(i))
            elif self.space == "logprob":  # normalising would only shift each example's spans
                self._scores[i] = (np.asarray(m.start_logits, np.float32), np.asarray(m.end_logits, np.float32))
            else:
                ok = m.windows.context_mask
                n_ex, rows = len(self.examples), m.windows.example_index.astype(np.int64)
                self._scores[i] = tuple(
                    _log_softmax(np.where(ok, np.asarray(x, np.float32), -np.inf), rows, n_ex)
                    for x in (m.start_logits, m.end_logits)
                )
        return self._scores[i]

    def _finite(self, i: int):
        """Where member ``i``'s (S, E) are finite."""
        if self._fin[i] is None:
            if self.space == "logprob":
                self.prepare()  # the stacks record it
            else:
                self._fin[i] = [np.isfinite(np.asarray(x, dtype=np.float32)) for x in self.member_scores(i)]
        return self._fin[i]

    def prepare(self) -> "Ensemble":
        """Compute what every decode needs, once: in log-prob space, all members' start and end
        scores with ``-inf`` (and NaN) replaced by ``FLOOR``, stacked [members, ...] (what
        ``combine`` sums; on the character path each member is projected straight into its row);
        in prob space, each member's scores."""
        if self.space != "logprob":
            for i in range(len(self.members)):
                self.member_scores(i)
            return self
        if self._stack[0] is not None:
            return self
        n = len(self.members)
        shape = (self._layout.size,) if not self.shared_windows else np.shape(self.members[0].start_logits)
        stack = [np.empty((n, *shape), np.float32) for _ in range(2)]
        for i in range(n):
            rows = (stack[0][i], stack[1][i])
            if self.shared_windows or self._scores[i] is not None:
                for k in range(2):
                    np.copyto(rows[k], self.member_scores(i)[k], casting="same_kind")
            else:
                _project(self.members[i], self._lens, self.agg, True, self._layout, self._member_targets(i), out=rows)
            self._fin[i] = [np.isfinite(x) for x in rows]
            for k in range(2):
                np.copyto(rows[k], FLOOR, where=~self._fin[i][k])
        self._stack = stack
        return self

    def _stacked(self, k: int) -> np.ndarray:
        """All members' floored start (``k = 0``) or end scores, stacked (see ``prepare``)."""
        return self.prepare()._stack[k]

    def _combine_logprob(self, live: np.ndarray, weights: np.ndarray) -> Scores:
        """``combine(..., space="logprob")`` of the members ``live``, bit for bit: the same weighted
        sum, member after member, of the stacked floored scores."""
        w = _weights(weights, len(live))
        pairs = [(int(i), np.float32(wi)) for i, wi in zip(live, w) if np.float32(wi) > 0]
        used = tuple(i for i, _ in pairs)
        if used not in self._void:  # where none of these members scores: kept per member set
            self._void[used] = [~np.logical_or.reduce([self._finite(i)[k] for i in used]) for k in range(2)]
        out = []
        for k in range(2):
            stack = self._stacked(k)
            out.append(_weighted_sum([wi for _, wi in pairs], [stack[i] for i in used], self._void[used][k]))
        return out[0], out[1]

    def _char_decode(self, live, w, n_best):
        """Character path: combine the live members, then ``best_spans`` block by block."""
        m = len(self.examples)
        starts = np.full((m, n_best), -1, np.int32)
        ends = np.full((m, n_best), -1, np.int32)
        scores = np.full((m, n_best), -np.inf, np.float32)
        if self.space == "logprob":
            S, E = self._combine_logprob(live, w)
        else:
            S, E = combine([self.member_scores(i) for i in live], w, self.space)
        for b, (rows, _, _) in enumerate(self._layout.blocks):  # characters 0 .. len - 1 of each row
            s, e = self._layout.view(S, b), self._layout.view(E, b)
            if n_best == 1:
                starts[rows], ends[rows], scores[rows] = best_one_padded(s, e, self.max_answer_chars)
            else:
                extent = (np.zeros(len(rows), np.int64), self._lens[rows])
                starts[rows], ends[rows], scores[rows] = _best_spans_within(s, e, self.max_answer_chars, n_best, extent)
        return starts, ends, scores

    def decode(self, weights=None, n_best: int = 20) -> Predictions:
        """The ensemble's ``Predictions`` under ``weights`` (default equal)."""
        w = _weights(weights, len(self.members))
        live = np.flatnonzero(w > 0)
        if len(live) == 1:  # the ensemble of one is the single model
            m = self.members[live[0]]
            return decode_windows(m.start_logits, m.end_logits, m.windows, self.examples, self.max_answer_length, n_best)
        if self.shared_windows:
            if self.space == "logprob":
                S, E = self._combine_logprob(live, w[live])
            else:
                S, E = combine([self.member_scores(i) for i in live], w[live], self.space)
            return decode_windows(S, E, self.members[0].windows, self.examples, self.max_answer_length, n_best)
        return _char_predictions(*self._char_decode(live, w[live], n_best), [ex.context for ex in self.examples], self.ids)


def ensemble_predictions(members: Sequence[LogitSet], examples: Sequence[Example], weights=None, agg: str = "max",
                         space: str = "logprob", max_answer_length: int = 30, n_best: int = 20,
                         max_answer_chars: int | None = None) -> Predictions:
    """``Predictions`` (answers and n-best lists) of the weighted ensemble of ``members``."""
    return Ensemble(members, examples, agg, space, max_answer_length, max_answer_chars).decode(weights, n_best)


def ensemble_answers(members: Sequence[LogitSet], examples: Sequence[Example], weights=None, agg: str = "max",
                     space: str = "logprob", max_answer_length: int = 30, n_best: int = 20,
                     max_answer_chars: int | None = None) -> dict[str, str]:
    """``{example id: answer}`` of the weighted ensemble of one or several runs' logits."""
    return ensemble_predictions(members, examples, weights, agg, space, max_answer_length, n_best,
                                max_answer_chars).to_dict()


# ------------------------------------------------------------------------- weights

def fit_weights(members: Sequence[LogitSet], examples: Sequence[Example], metric: str = "em",
                method: str = "greedy", n_iter: int | None = None, agg: str = "max", space: str = "logprob",
                max_answer_length: int = 30, max_answer_chars: int | None = None,
                seed: int = 0) -> tuple[np.ndarray, dict]:
    """Member weights maximising EM or F1 on the answered ``examples`` (dev or out-of-fold logits).

    ``method`` is ``"greedy"`` (Caruana's forward selection) or ``"optuna"`` (TPE), as in
    :func:`harness.weights.search_weights`; neither scores below the best single member.

    Returns ``(weights, report)``; the report holds each member's own score (``members``),
    ``best_single``, the fitted ``ensemble`` score, ``gain`` over the best member, and counts.
    """
    if metric not in ("em", "f1") or method not in ("greedy", "optuna"):
        raise ValueError(f"metric must be 'em' or 'f1' and method 'greedy' or 'optuna', got {metric!r}, {method!r}")
    answered = [ex for ex in examples if ex.answers]
    if not answered:
        raise ValueError("fitting weights needs examples with reference answers")
    refs = {ex.id: list(ex.answers) for ex in answered}
    ens = Ensemble(members, answered, agg, space, max_answer_length, max_answer_chars)
    n = len(ens.members)
    cache: dict[tuple, float] = {}
    # per-question metric, memoised by answer span (a question's answer text is its context cut at
    # the span): weights that differ mostly decode the same answers. Spans are int64 codes kept
    # sorted beside their values, looked up for all questions at once; summed by ``sum`` in question
    # order, as qa_scores sums, so the score is qa_scores(...)[metric] exactly.
    ids = ens.ids
    width = int(max((len(ex.context) for ex in answered), default=0)) + 2
    base = np.arange(len(ids), dtype=np.int64) * width * width
    known = np.zeros(0, np.int64)
    values = np.zeros(0, np.float64)
    normal: dict[tuple[str, str], set] = {}
    raw = {qid: set(r) for qid, r in refs.items()}
    zh_refs = {qid for qid, r in refs.items() if detect_lang(*r) == "zh"}  # zh whatever the answer

    def em(text: str, qid: str) -> float:
        """``exact_match(text, refs[qid])`` with the references normalised once per language."""
        if text in raw[qid]:
            return 1.0
        lang = "zh" if qid in zh_refs else detect_lang(text)
        if (qid, lang) not in normal:
            normal[(qid, lang)] = {normalize_answer(r, lang) for r in refs[qid]}
        return float(normalize_answer(text, lang) in normal[(qid, lang)])

    one = em if metric == "em" else (lambda text, qid: f1_score(text, refs[qid]))

    def metric_of(pred: Predictions) -> float:
        nonlocal known, values
        if list(pred.ids) != ids:
            raise AssertionError("the ensemble decoded its questions out of order")
        code = base + (np.asarray(pred.starts, np.int64) + 1) * width + (np.asarray(pred.ends, np.int64) + 1)
        at = np.searchsorted(known, code)
        hit = at < len(known)
        hit[hit] = known[at[hit]] == code[hit]
        got = np.empty(len(code), np.float64)
        got[hit] = values[at[hit]]
        new = np.flatnonzero(~hit)
        if len(new):
            got[new] = [one(pred.texts[j], ids[j]) for j in new.tolist()]
            known = np.concatenate([known, code[new]])
            values = np.concatenate([values, got[new]])
            order = np.argsort(known, kind="stable")
            known, values = known[order], values[order]
        return 100.0 * sum(got.tolist()) / len(refs)

    def score(w) -> float:
        w = _weights(w, n)
        key = tuple(np.round(w, 12))
        if key not in cache:
            cache[key] = metric_of(ens.decode(w, n_best=1))
        return cache[key]

    weights, singles = search_weights(score, n, method, n_iter, seed)
    ensemble = score(weights)
    report = {
        "metric": metric, "method": method, "n_examples": len(answered), "path": "tokens" if ens.shared_windows else "chars",
        "members": singles, "best_member": int(np.argmax(singles)), "best_single": max(singles),
        "ensemble": ensemble, "gain": ensemble - max(singles), "weights": weights.tolist(), "evaluations": len(cache),
    }
    return weights, report
