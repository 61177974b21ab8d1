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
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.tasks.qa.logits import LogitSet
from harness.tasks.qa.example import Example
from harness.tasks.qa.decode import Predictions, best_spans, decode_windows
from harness.tasks.qa.metrics import qa_scores
from harness.weights import normalise as _weights, search_weights

FLOOR = np.float32(np.log(1e-8))  # log-prob of a character a member cannot score (log-prob space)
N_BUCKETS = 8  # decode_chars groups examples by context length to trim padding

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


def char_scores(logits: LogitSet, contexts_len: np.ndarray | Sequence[int], agg: str = "max",
                normalize: bool = True) -> Scores:
    """Per-character start/end scores (float32 [n_examples, max context length]) of one member.

    A context token covering characters ``[c0, c1)`` sends its start logit to character ``c0`` and
    its end logit to ``c1 - 1``; several windows (or tokens) hitting one character are aggregated by
    ``agg`` (``"max"`` or ``"mean"``); characters nothing hits get ``-inf``. Rows follow
    ``logits.windows.example_index``; ``contexts_len[i]`` is example ``i``'s context length. With
    ``normalize`` each example's starts (ends) become log-probabilities over its characters.
    """
    if agg not in ("max", "mean"):
        raise ValueError(f"agg must be 'max' or 'mean', got {agg!r}")
    w = logits.windows
    lens = np.asarray(contexts_len, dtype=np.int64)
    m, width = len(lens), max(int(lens.max(initial=0)), 1)
    c0, c1 = w.offsets[..., 0].astype(np.int64), w.offsets[..., 1].astype(np.int64)
    ok = (c0 >= 0) & (c1 > c0)  # context tokens that cover at least one character
    ex = np.broadcast_to(w.example_index.astype(np.int64)[:, None], ok.shape)[ok]
    c0, c1 = c0[ok], c1[ok]
    if len(ex) and (ex.max() >= m or (c1 > lens[ex]).any()):
        raise ValueError("windows point past the given contexts (examples and logits do not match)")
    out = []
    for pos, vals in ((ex * width + c0, logits.start_logits[ok]), (ex * width + c1 - 1, logits.end_logits[ok])):
        vals = np.asarray(vals, dtype=np.float32)
        if agg == "max":
            x = np.full(m * width, -np.inf, np.float32)
            np.maximum.at(x, pos, vals)
        else:
            count = np.bincount(pos, minlength=m * width)
            total = np.bincount(pos, weights=vals, minlength=m * width)
            with np.errstate(invalid="ignore", divide="ignore"):
                x = np.where(count > 0, total / count, -np.inf).astype(np.float32)
        x = x.reshape(m, width)
        out.append(_log_softmax(x, np.arange(m), m) if normalize else x)
    return out[0], out[1]


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
            acc = np.zeros(xs[0].shape, np.float32)
            for wi, x in zip((wi for wi, _ in live), xs):
                acc += np.float32(wi) * np.where(np.isfinite(x), x, FLOOR)
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
    end exclusive). The search is ``best_spans``, run on groups of examples of similar context
    length. ``ids`` default to ``"0", "1", ...``; ``null_scores`` are ``+inf`` (no null answer).
    """
    S, E = np.asarray(S, dtype=np.float32), np.asarray(E, dtype=np.float32)
    m = len(contexts)
    lens = np.array([len(c) for c in contexts], dtype=np.int64)
    if S.shape != E.shape or S.ndim != 2 or S.shape[0] != m or (m and S.shape[1] < lens.max()):
        raise ValueError(f"S and E must be [{m}, >= longest context], got {S.shape} and {E.shape}")
    if n_best < 1:
        raise ValueError(f"n_best must be at least 1, got {n_best}")
    starts = np.full((m, n_best), -1, np.int32)
    ends = np.full((m, n_best), -1, np.int32)
    scores = np.full((m, n_best), -np.inf, np.float32)
    order = np.argsort(lens, kind="stable")
    for rows in np.array_split(order, min(m, N_BUCKETS)) if m else []:
        p = int(lens[rows].max())
        if p == 0:
            continue
        s, e = S[rows, :p], E[rows, :p]
        starts[rows], ends[rows], scores[rows] = best_spans(s, e, s > -np.inf, e > -np.inf, max_answer_chars, n_best)
    ends = np.where(starts >= 0, ends + 1, -1).astype(np.int32)
    contexts = list(contexts)
    return Predictions(
        ids=[str(i) for i in range(m)] if ids is None else list(ids),
        texts=[c[a:b] if a >= 0 else "" for c, a, b in zip(contexts, starts[:, 0], ends[:, 0])],
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
            max_answer_chars = max(1, round(max_answer_length * max(chars_per_token(m) for m in self.members)))
        self.max_answer_chars = int(max_answer_chars)
        self._scores: list[Scores | None] = [None] * len(self.members)

    def member_scores(self, i: int) -> Scores:
        """Member ``i``'s (S, E) in the ensemble's positions (tokens or characters), cached."""
        if self._scores[i] is None:
            m = self.members[i]
            if not self.shared_windows:
                self._scores[i] = char_scores(m, [len(ex.context) for ex in self.examples], self.agg)
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

    def decode(self, weights=None, n_best: int = 20) -> Predictions:
        """The ensemble's ``Predictions`` under ``weights`` (default equal)."""
        w = _weights(weights, len(self.members))
        live = np.flatnonzero(w > 0)
        if len(live) == 1:  # the ensemble of one is the single model
            m = self.members[live[0]]
            return decode_windows(m.start_logits, m.end_logits, m.windows, self.examples, self.max_answer_length, n_best)
        S, E = combine([self.member_scores(i) for i in live], w[live], self.space)
        if self.shared_windows:
            return decode_windows(S, E, self.members[0].windows, self.examples, self.max_answer_length, n_best)
        return decode_chars(S, E, [ex.context for ex in self.examples], self.max_answer_chars, n_best, self.ids)


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

    def score(w) -> float:
        w = _weights(w, n)
        key = tuple(np.round(w, 12))
        if key not in cache:
            cache[key] = qa_scores(ens.decode(w, n_best=1).to_dict(), refs)[metric]
        return cache[key]

    weights, singles = search_weights(score, n, method, n_iter, seed)
    ensemble = score(weights)
    report = {
        "metric": metric, "method": method, "n_examples": len(answered), "path": "tokens" if ens.shared_windows else "chars",
        "members": singles, "best_member": int(np.argmax(singles)), "best_single": max(singles),
        "ensemble": ensemble, "gain": ensemble - max(singles), "weights": weights.tolist(), "evaluations": len(cache),
    }
    return weights, report
