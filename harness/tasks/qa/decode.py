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
``null_score - best_span_score > null_threshold``. Differences: the search is exact over all
valid spans (HF only pairs the top-20 starts with the top-20 ends, so it can miss the best
span); identical character spans found in several windows are merged, keeping the best score; an
example with no candidate gets ``""`` (HF writes ``"empty"``).

The exact search (our own; the sparse table is the textbook range-maximum structure). For a row
with start scores ``s`` and end scores ``e``, span length limit ``D`` and ``k = n_best``:

1. ``B[i] = s[i] + max(e[i:i + D])``, the best span of each start, for all starts at once: a
   sparse table of end maxima (``log2 D`` shifted ``np.maximum`` passes over the flattened batch,
   each row padded with ``D - 1`` impossible ends so that rows never mix) and one last
   overlapping maximum. Float32 rounding is monotonic, so ``B[i]`` is exactly the largest float32
   score of a span starting at ``i``.
2. ``tau``, the ``k``-th largest ``B`` of the row (one ``np.partition`` per row; the row maximum
   for ``k = 1``), is a lower bound on the row's ``k``-th best span (``k`` distinct starts each
   have a span scoring ``>= tau``), and a span scoring ``>= tau`` can only start where
   ``B >= tau``: ``k`` starts, plus ties.
3. The ``D`` ends of each of those starts are scanned (one gather per start) and every span
   scoring ``>= tau`` is kept: about ``2k`` candidates per row that include the row's top ``k``,
   ties at the cut-off included. They are ranked by a row sort of a small dense matrix of packed
   64-bit keys (descending score, then start, then end).

Work is linear in the number of positions (about a dozen vectorised passes) plus ``O(k D)`` per
row, instead of the ``O(D)`` passes of the exhaustive candidate tensor. Rows are processed in
groups of similar context extent and in chunks of about ``CHUNK_BYTES`` (cache-sized).

``decode_windows`` raises each window's ``tau`` to the largest ``tau`` among the windows of its
example (every window's bound is a bound on the example's ``k``-th best span): before the scan
among the windows searched in the same chunk (usually all of the example's), after it among all
of them. It then maps the
candidates to character spans, merges identical spans (keeping the best score) and ranks them per
example, again by row sorts of dense key matrices. Where distinct token spans of a window share
a character span (repeated offsets) an example's merged list may come out shorter than ``k``;
such examples are searched again exhaustively, so the n-best lists are always exact. NaN scores
count as impossible positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from harness.tasks.qa.example import Example
from harness.tasks.qa.windows import Windows

CHUNK_BYTES = 4 * 2**20  # rows are searched in chunks of about this many bytes of work arrays (cache-sized)
_LOWEST = np.float32(-np.finfo(np.float32).max)  # threshold that keeps every span scoring > -inf
_MAX_BUCKETS = 4


# ------------------------------------------------------------------------- ranking helpers

def _desc_key(scores: np.ndarray) -> np.ndarray:
    """uint64 in [0, 2**32) whose ascending order is the descending order of float32 ``scores``."""
    bits = (np.asarray(scores, np.float32) + np.float32(0)).view(np.int32).astype(np.int64)  # -0.0 -> +0.0
    signed = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # int order == float order
    return (0x7FFFFFFF - signed).astype(np.uint64)


def _runs(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each element within its run of equal ``groups``, and the run starts."""
    n = len(groups)
    idx = np.arange(n)
    first = np.ones(n, bool)
    first[1:] = groups[1:] != groups[:-1]
    return idx - np.maximum.accumulate(np.where(first, idx, 0)), first


def _by_score(groups: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Permutation ordering by (group, descending score, current position).

    ``groups`` (non-negative) must come in contiguous runs. One ``np.sort`` of packed keys when
    group, score and rank fit 64 bits, else ``np.lexsort``.
    """
    n = len(groups)
    if n == 0:
        return np.zeros(0, np.int64)
    rank, first = _runs(groups)
    gmax = int(groups.max())
    gbits, rbits = gmax.bit_length(), int(rank.max()).bit_length()
    if gbits + 32 + rbits > 64:
        return np.lexsort((np.arange(n), -np.asarray(scores, np.float64), groups))
    key = (groups.astype(np.uint64) << np.uint64(32 + rbits)) | (_desc_key(scores) << np.uint64(rbits))
    key |= rank.astype(np.uint64)
    key.sort()
    run_start = np.zeros(gmax + 1, np.int64)
    run_start[groups[first]] = np.flatnonzero(first)
    return run_start[(key >> np.uint64(32 + rbits)).astype(np.int64)] + (key & np.uint64((1 << rbits) - 1)).astype(np.int64)


_PAD = np.iinfo(np.int64).max  # key of an empty slot: sorts last
_DENSE = 256  # runs of at most this many candidates are ranked in a dense matrix (one row sort)


def _score_of(desc: np.ndarray) -> np.ndarray:
    """Inverse of ``_desc_key``: float32 scores from their keys."""
    signed = 0x7FFFFFFF - desc.astype(np.int64)
    return np.where(signed < 0, signed ^ 0x7FFFFFFF, signed).astype(np.int32).view(np.float32)


def _layout(groups: np.ndarray):
    """Contiguous runs of ``groups``: run of each element, rank in its run, run heads, run lengths."""
    n = len(groups)
    first = np.ones(n, bool)
    first[1:] = groups[1:] != groups[:-1]
    heads = np.flatnonzero(first)
    run = np.cumsum(first) - 1
    return run, np.arange(n) - heads[run], heads, np.diff(np.append(heads, n))


def _dense_sort(run, rank, keys, lengths):
    """Row-sorted matrices of int64 ``keys`` placed at (run, rank), ``_PAD`` in empty slots.

    Runs are put in tiers of similar length (widths 16, 32, 64, ...) so that short runs do not pay
    for the longest; all tiers live in one flat buffer filled by one scatter. Returns
    ``[(runs, matrix), ...]``: the run ids of each tier and its (sorted) matrix.
    """
    if len(run) == 0:
        return []
    tier = np.maximum(0, np.ceil(np.log2(np.maximum(lengths, 1))).astype(np.int64) - 4)
    order = np.argsort(tier, kind="stable")
    counts = np.bincount(tier)
    widths = np.minimum(16 << np.arange(len(counts)), [int(lengths[tier == t].max(initial=1)) for t in range(len(counts))])
    sizes = counts * widths
    starts = np.cumsum(sizes) - sizes
    slot = np.empty(len(lengths), np.int64)  # where each run's row begins in the buffer
    first_run = np.cumsum(counts) - counts
    slot[order] = starts[tier[order]] + (np.arange(len(order)) - first_run[tier[order]]) * widths[tier[order]]
    buf = np.full(int(sizes.sum()), _PAD, np.int64)
    buf[slot[run] + rank] = keys
    out = []
    for t in np.flatnonzero(counts):
        mat = buf[starts[t]: starts[t] + sizes[t]].reshape(counts[t], widths[t])
        mat.sort(axis=1)
        out.append((order[first_run[t]: first_run[t] + counts[t]], mat))
    return out


def _top_of_runs(groups, scores, k):
    """Per contiguous run of ``groups``: indices of its ``k`` best elements by (-score, position).

    Returns ``heads`` (first index of each run) and ``top`` ([runs, k], -1 padded). Short runs are
    ranked by one row sort of a dense matrix of keys (score, then position), long ones by
    ``_by_score``.
    """
    run, rank, heads, lengths = _layout(groups)
    top = np.full((len(heads), k), -1, np.int64)
    if len(heads) == 0:
        return heads, top
    dense = lengths <= _DENSE
    use = dense[run]
    if dense.any():
        sub = np.cumsum(dense) - 1  # index among the dense runs
        dense_runs = np.flatnonzero(dense)
        keys = (_desc_key(scores[use]).astype(np.int64) << 31) | rank[use]
        for runs, mat in _dense_sort(sub[run[use]], rank[use], keys, lengths[dense]):
            mat = mat[:, :k]
            runs = dense_runs[runs]
            top[runs, : mat.shape[1]] = np.where(mat != _PAD, heads[runs][:, None] + (mat & 0x7FFFFFFF), -1)
    if not dense.all():
        idx = np.flatnonzero(~use)
        order = idx[_by_score(groups[idx], scores[idx])]
        _, rank2, _, _ = _layout(groups[order])
        keep = rank2 < k
        top[run[order[keep]], rank2[keep]] = order[keep]
    return heads, top


# ------------------------------------------------------------------------- the span search

def _extent(s_ok: np.ndarray, e_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: first possible start ``lo`` and one past the last possible end ``hi`` (``lo >= hi``: none)."""
    p = s_ok.shape[1]
    has = s_ok.any(axis=1) & e_ok.any(axis=1)
    lo = np.where(has, s_ok.argmax(axis=1), 0)
    hi = np.where(has, p - e_ok[:, ::-1].argmax(axis=1), 0)
    return lo, hi


def _buckets(lo: np.ndarray, hi: np.ndarray, max_span: int, groups: np.ndarray | None = None
             ) -> list[tuple[np.ndarray | None, int, int]]:
    """Groups of rows ``(rows, lo_b, hi_b)`` cut by extent (``rows`` None: all rows, in order).

    With ``groups`` (a row's example), the rows of one group stay in one bucket, in row order, and
    the buckets in group order keep groups apart, so the candidates come out grouped.
    """
    live = np.flatnonzero(hi > lo)
    if len(live) == 0:
        return []
    whole = [(None if len(live) == len(lo) else live, int(lo[live].min()), int(hi[live].max()))]
    if len(live) < 512:
        return whole
    if groups is None:
        order = live[np.argsort(hi[live], kind="stable")]
        parts = np.array_split(order, _MAX_BUCKETS)
    else:  # buckets by the widest window of each group; a bucket's rows in (group, row) order
        g = groups[live]
        widest = np.zeros(int(g.max()) + 1, np.int64)
        np.maximum.at(widest, g, hi[live])
        by_width = np.argsort(widest, kind="stable")
        rank = np.empty_like(by_width)
        rank[by_width] = np.arange(len(by_width))
        order = live[np.lexsort((live, g, rank[g]))]
        cuts = np.searchsorted(rank[groups[order]], np.linspace(0, len(by_width), _MAX_BUCKETS + 1)[1:-1])
        parts = [np.sort(p) for p in np.split(order, cuts)]
        parts = [p[np.argsort(groups[p], kind="stable")] for p in parts if len(p)]
    split = [(r, int(lo[r].min()), int(hi[r].max())) for r in parts]
    cost = lambda bs: sum((len(lo) if r is None else len(r)) * (b - a + min(max_span, b - a)) for r, a, b in bs)
    return split if cost(split) < 0.8 * cost(whole) else whole


def _best_per_start(S: np.ndarray, E: np.ndarray, d: int) -> np.ndarray:
    """``B[f] = S[f] + max(E[f:f + d])`` over flat arrays: a sparse table of end maxima (levels of
    doubling width in two buffers taken in turn) and one last overlapping maximum."""
    levels = d.bit_length() - 1
    shift = d - (1 << levels)
    cur, bufs = E, [np.empty_like(E), np.empty_like(E)] if levels or shift else []
    for lev in range(levels):
        h = 1 << lev
        nxt = bufs[lev % 2]
        np.maximum(cur[:-h], cur[h:], out=nxt[:-h])
        nxt[-h:] = cur[-h:]
        cur = nxt
    if shift:
        nxt = bufs[levels % 2]
        np.maximum(cur[:-shift], cur[shift:], out=nxt[:-shift])
        nxt[-shift:] = cur[-shift:]
        cur = nxt
    if cur is E:
        return S + E
    np.add(S, cur, out=cur)
    return cur


class _Bucket:
    """Steps 1-2 of the search for one chunk of rows (``rows``: a slice or indices) over the
    columns ``lo_b:hi_b``: padded flat scores ``S``, ``E``, the best span of each start ``B`` and
    the thresholds ``thr``; ``spans`` is step 3."""

    def __init__(self, s, e, s_ok, e_ok, rows, lo_b, hi_b, max_span, k, exhaustive):
        self.rows = np.arange(len(s))[rows]
        self.lo_b = lo_b
        w = hi_b - lo_b
        d = self.d = min(int(max_span), w)
        wp = self.wp = w + d - 1  # d - 1 impossible ends after each row: rows never mix
        n = len(self.rows)
        cols = slice(lo_b, hi_b)
        pick = lambda x: x[rows, cols]
        size = n * wp
        flat = []
        penalty = {}
        for x, ok in ((s, s_ok), (e, e_ok)):
            buf = np.empty(size, np.float32)
            view = buf.reshape(n, wp)
            view[:, w:] = -np.inf
            if ok is None:
                view[:, :w] = pick(x)
            else:
                if id(ok) not in penalty:  # 0 where possible, -inf elsewhere (shared when s_ok is e_ok)
                    penalty[id(ok)] = np.where(pick(ok), np.float32(0), np.float32(-np.inf))
                np.add(pick(x), penalty[id(ok)], out=view[:, :w])
            flat.append(buf)
        del penalty
        S, E = self.S, self.E = flat
        B = _best_per_start(S, E, d)
        top = B.max()
        if np.isnan(top) or top == np.inf:  # NaN or +inf scores: NaN -> impossible, inf + -inf -> impossible
            S[np.isnan(S)] = -np.inf
            E[np.isnan(E)] = -np.inf
            B = _best_per_start(S, E, d)
            B[np.isnan(B)] = -np.inf
        # 2. the k-th best start of each row (tau): one partition per row
        self.B = B.reshape(n, wp)
        self.thr = np.full(n, _LOWEST, np.float32)
        if not exhaustive and wp >= k:
            kth = self.B.max(axis=1) if k == 1 else np.partition(self.B, wp - k, axis=1)[:, wp - k]
            self.thr = np.maximum(kth, _LOWEST).astype(np.float32)

    def spans(self, thr: np.ndarray):
        """Step 3: every span scoring ``>= thr`` (per row, at least ``self.thr``), by row, start, end."""
        st = np.flatnonzero(self.B >= thr[:, None])  # candidate starts: their best span reaches thr
        srow = st // self.wp
        col_of, thr_of = st - srow * self.wp + self.lo_b, thr[srow][:, None]
        ends = np.lib.stride_tricks.sliding_window_view(self.E, self.d)
        d = self.d
        out = []
        step = max(1, CHUNK_BYTES // (16 * d))
        for i in range(0, len(st), step):
            sl = slice(i, i + step)
            sc = self.S[st[sl]][:, None] + ends[st[sl]]
            f = np.flatnonzero(sc >= thr_of[sl])
            c = f // d
            starts = col_of[sl][c]
            out.append((srow[sl][c], starts, starts + (f - c * d), sc.ravel()[f]))
        if not out:  # no start reaches thr (non-finite logits): no span
            empty = np.zeros(0, np.int64)
            return self.rows[empty], empty, empty, np.zeros(0, np.float32)
        r, starts, ends, scores = tuple(np.concatenate(x) for x in zip(*out)) if len(out) != 1 else out[0]
        return self.rows[r], starts, ends, scores


def _chunks(rows, n_rows: int, lo_b: int, hi_b: int, max_span: int):
    """The rows of one bucket (``rows`` None: all ``n_rows``) in chunks of about ``CHUNK_BYTES`` of
    work arrays: slices where the bucket is every row (views, no copies), else index arrays."""
    w = hi_b - lo_b
    per_row = (w + min(max_span, w)) * 4 * 6
    count = n_rows if rows is None else len(rows)
    step = max(1, CHUNK_BYTES // per_row)
    for i in range(0, count, step):
        yield rows[i: i + step] if rows is not None else slice(i, i + step)


def _scan(out, thr, used, s, e, s_ok, e_ok, rows, lo, lo_b, hi_b, max_span, k, exhaustive, groups):
    """Search one group of rows in chunks of about ``CHUNK_BYTES``: appends to ``out``, sets each
    row's own threshold in ``thr`` and the one its scan used in ``used``."""
    for part in _chunks(rows, len(lo), lo_b, hi_b, max_span):
        b = _Bucket(s, e, s_ok, e_ok, part, lo_b, hi_b, max_span, k, exhaustive)
        thr[b.rows] = b.thr
        scan = b.thr
        if groups is not None and not exhaustive and len(b.rows) > 1:
            # windows of one example in this chunk: each one's bound holds for all of them
            g = groups[b.rows]
            if (g[1:] >= g[:-1]).all():  # in example order (the usual case): maxima over runs
                heads = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
                scan = np.repeat(np.maximum.reduceat(b.thr, heads), np.diff(np.r_[heads, len(g)]))
            else:
                g, inv = np.unique(g, return_inverse=True)
                best = np.full(len(g), _LOWEST, np.float32)
                np.maximum.at(best, inv, b.thr)
                scan = best[inv]
        used[b.rows] = scan
        out.append(b.spans(scan))


def _span_candidates(s, e, s_ok, e_ok, max_span, k, groups=None, exhaustive=False, extent=None):
    """Every span of each row scoring at least the row's threshold, and the thresholds.

    Returns ``rows, starts, ends, scores, thr``: the candidates of a row are contiguous and sorted
    by (start, end); ``thr[r]`` is ``_LOWEST`` (every span) or a score reached by spans of at least
    ``k`` distinct starts of row ``r`` -- or, with ``groups``, of some row of the same group.
    """
    n, p = s.shape
    thr = np.full(n, _LOWEST, np.float32)
    z = np.zeros(0, np.int64)
    none = (z, z, z, np.zeros(0, np.float32), thr)
    if n == 0 or p == 0 or max_span <= 0 or k <= 0:
        return none
    if extent is None:  # (a mask given as None stays None: -inf and NaN positions need none)
        extent = _extent((s > -np.inf) if s_ok is None else s_ok & (s > -np.inf),
                         (e > -np.inf) if e_ok is None else e_ok & (e > -np.inf))
    lo, hi = extent
    out = []
    used = thr.copy()
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf, float32 overflow: see _Bucket
        for rows, lo_b, hi_b in _buckets(lo, hi, max_span, groups):
            _scan(out, thr, used, s, e, s_ok, e_ok, rows, lo, lo_b, hi_b, max_span, k, exhaustive, groups)
    if not out:
        return none
    rows, starts, ends, scores = (np.concatenate(x) for x in zip(*out)) if len(out) > 1 else out[0]
    if exhaustive:
        return rows, starts, ends, scores, thr
    if groups is not None:  # every window's threshold bounds its example's k-th best span
        best = np.full(int(groups.max()) + 1, _LOWEST, np.float32)
        np.maximum.at(best, groups, thr)
        thr = best[groups]
        if (thr > used).any():  # some windows were scanned apart from a stronger one of their example
            keep = scores >= thr[rows]
            rows, starts, ends, scores = rows[keep], starts[keep], ends[keep], scores[keep]
    return rows, starts, ends, scores, thr


def _best_spans_within(s, e, max_span, n_best, extent):
    """``best_spans`` of scores whose impossible positions are ``-inf`` already, every possible
    position of row ``r`` lying in ``extent[0][r]:extent[1][r]`` (no masks, no extent pass)."""
    if n_best == 1:
        return _best_one(s, e, None, None, max_span, extent)
    rows, a, b, sc, _ = _span_candidates(s, e, None, None, max_span, n_best, extent=extent)
    return _padded_top(s.shape[0], n_best, rows, a, b, sc)


def best_one_padded(s: np.ndarray, e: np.ndarray, max_span: int):
    """``best_spans(s, e, None, None, max_span, 1)`` of C-contiguous float32 [rows, width] scores whose
    impossible positions are ``-inf`` and whose rows end in at least ``max_span - 1`` columns of
    ``-inf`` (so that, flattened, no span crosses into the next row): ``_best_one`` without copying
    the rows into padded buffers. Falls back to ``best_spans`` for other input."""
    n, wp = s.shape
    d = min(int(max_span), wp)
    if (n == 0 or d <= 0 or s.dtype != np.float32 or e.dtype != np.float32 or not s.flags.c_contiguous
            or not e.flags.c_contiguous or not (np.isneginf(s[:, wp - d + 1:]).all() and np.isneginf(e[:, wp - d + 1:]).all())):
        return best_spans(s, e, None, None, max_span, 1)
    S, E = s.reshape(-1), e.reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        B = _best_per_start(S, E, d)
        top = B.max()
        if np.isnan(top) or top == np.inf:  # NaN or +inf scores: the general path sorts them out
            return best_spans(s, e, None, None, max_span, 1)
        r, a, t, sc = _argmax_spans(B.reshape(n, wp), S, E, d)
    starts = np.full((n, 1), -1, dtype=np.int32)
    ends = np.full((n, 1), -1, dtype=np.int32)
    scores = np.full((n, 1), -np.inf, dtype=np.float32)
    starts[r, 0], ends[r, 0], scores[r, 0] = a, a + t, sc
    return starts, ends, scores


def _argmax_spans(B: np.ndarray, S: np.ndarray, E: np.ndarray, d: int):
    """The best span of each row of the best-per-start scores ``B`` [rows, wp] over the padded flat
    ``S``, ``E``: the rows ``r`` that have one, their start column ``a`` (the first start reaching the
    row's maximum), the end offset ``t`` (the first end reaching it) and the span score."""
    n, wp = B.shape
    j = B.argmax(axis=1)
    r = np.flatnonzero(B[np.arange(n), j] > -np.inf)
    f = r * wp + j[r]
    sc = S[f][:, None] + np.lib.stride_tricks.sliding_window_view(E, d)[f]
    if not np.isfinite(sc).all():  # +inf starts: inf + -inf is NaN, an impossible span
        sc[np.isnan(sc)] = -np.inf
    t = sc.argmax(axis=1)
    return r, j[r], t, sc[np.arange(len(t)), t]


def _best_one(s, e, s_ok, e_ok, max_span, extent=None):
    """``best_spans`` for ``n_best = 1`` without candidates: the best span of a row starts at the
    first (smallest) start whose best-per-start score ``B`` is the row's maximum, and ends at the
    first end of that start whose span score reaches it. That is the span the general search ranks
    first (score, then smaller start, then smaller end), as both compare the same float32 sums."""
    n = s.shape[0]
    starts = np.full((n, 1), -1, dtype=np.int32)
    ends = np.full((n, 1), -1, dtype=np.int32)
    scores = np.full((n, 1), -np.inf, dtype=np.float32)
    if n == 0 or s.shape[1] == 0 or max_span <= 0:
        return starts, ends, scores
    if extent is None:
        extent = _extent((s > -np.inf) if s_ok is None else s_ok & (s > -np.inf),
                         (e > -np.inf) if e_ok is None else e_ok & (e > -np.inf))
    lo, hi = extent
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf, float32 overflow: see _Bucket
        for rows, lo_b, hi_b in _buckets(lo, hi, max_span):
            for part in _chunks(rows, len(lo), lo_b, hi_b, max_span):
                b = _Bucket(s, e, s_ok, e_ok, part, lo_b, hi_b, max_span, 1, exhaustive=True)  # no thresholds
                r, a, t, sc = _argmax_spans(b.B, b.S, b.E, b.d)
                at = b.rows[r]
                starts[at, 0] = a + b.lo_b
                ends[at, 0] = starts[at, 0] + t
                scores[at, 0] = sc
    return starts, ends, scores


def _padded_top(n_rows: int, n_best: int, rows, a, b, sc):
    """The ``n_best`` best candidates (``rows``, starts ``a``, ends ``b``, scores ``sc``, grouped by row)
    of each of ``n_rows`` rows as [n_rows, n_best] starts, ends, scores (-1 / ``-inf`` padding)."""
    starts = np.full((n_rows, n_best), -1, dtype=np.int32)
    ends = np.full((n_rows, n_best), -1, dtype=np.int32)
    scores = np.full((n_rows, n_best), -np.inf, dtype=np.float32)
    heads, top = _top_of_runs(rows, sc, n_best)
    ok = top >= 0
    pick = top[ok]
    r = np.broadcast_to(rows[heads][:, None], top.shape)[ok]
    col = np.broadcast_to(np.arange(n_best), top.shape)[ok]
    starts[r, col], ends[r, col], scores[r, col] = a[pick], b[pick], sc[pick]
    return starts, ends, scores


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
    ``end_ok[r, e]`` and its score ``start_scores[r, s] + end_scores[r, e]`` (float32) is above
    ``-inf`` (NaN scores count as impossible; a mask given as None allows every position).
    Returns ``starts``, ``ends`` (int32 [rows, n_best])
    and ``scores`` (float32 [rows, n_best]), each row sorted by descending score, ties broken by
    smaller start, then smaller end. Rows with fewer than ``n_best`` valid spans are padded with
    position -1 and score ``-inf``. Exact (see the module docstring for the search).
    """
    s = np.asarray(start_scores, dtype=np.float32)
    e = np.asarray(end_scores, dtype=np.float32)
    masks = [m for m in (start_ok, end_ok) if m is not None]
    if s.ndim != 2 or s.shape != e.shape or any(np.shape(m) != s.shape for m in masks):
        raise ValueError(f"expected four [rows, positions] arrays of one shape, got {s.shape}, {e.shape}, "
                         f"{np.shape(start_ok)}, {np.shape(end_ok)}")
    if n_best <= 0:
        empty = np.empty((s.shape[0], 0))
        return empty.astype(np.int32), empty.astype(np.int32), empty.astype(np.float32)
    s_ok = None if start_ok is None else np.asarray(start_ok, bool)
    e_ok = None if end_ok is None else np.asarray(end_ok, bool)
    if n_best == 1:
        return _best_one(s, e, s_ok, e_ok, max_span)
    rows, a, b, sc, _ = _span_candidates(s, e, s_ok, e_ok, max_span, n_best)
    return _padded_top(s.shape[0], n_best, rows, a, b, sc)


# ------------------------------------------------------------------------- answers

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


def _merge(ex, c0, c1, sc, m, n_best):
    """Per example: distinct (c0, c1) with their best score, the top ``n_best`` by (-score, c0, c1).

    Returns the [m, n_best] start/end/score arrays and the number of distinct spans per example.
    """
    nb_starts = np.full((m, n_best), -1, dtype=np.int32)
    nb_ends = np.full((m, n_best), -1, dtype=np.int32)
    nb_scores = np.full((m, n_best), -np.inf, dtype=np.float32)
    if len(sc):
        ex, c0, c1, sc = _distinct(ex, c0, c1, sc, m)
    if len(sc) == 0:
        return nb_starts, nb_ends, nb_scores, np.zeros(m, np.int64)
    # grouped by example, each group in (c0, c1) order: rank by descending score, ties by that order
    order = _by_score(ex, sc)
    ex, c0, c1, sc = ex[order], c0[order], c1[order], sc[order]
    rank, _ = _runs(ex)
    top = rank < n_best
    ex_t, rank_t = ex[top], rank[top]
    nb_starts[ex_t, rank_t] = c0[top]
    nb_ends[ex_t, rank_t] = c1[top]
    nb_scores[ex_t, rank_t] = sc[top]
    return nb_starts, nb_ends, nb_scores, np.bincount(ex, minlength=m)


def _distinct(ex, c0, c1, sc, m):
    """Distinct (ex, c0, c1) with their best score, sorted by (ex, c0, c1)."""
    n = len(sc)
    # sort by (example, c0, span length) with the position as payload; duplicates become adjacent
    length = c1 - c0
    cmax = int(c1.max()) + 1
    ebits, cbits = int(m).bit_length(), cmax.bit_length()
    lbits, pbits = max(1, int(length.max()).bit_length()), max(1, int(n - 1).bit_length())
    if length.min() >= 0 and ebits + cbits + lbits + pbits <= 63:
        key = ((ex * cmax + c0) << (lbits + pbits)) | (length << pbits) | np.arange(n)
        key.sort()
        order = key & ((1 << pbits) - 1)
        span = key >> pbits
    else:
        order = np.lexsort((c1, c0, ex))
        span = None
    ex, c0, c1, sc = ex[order], c0[order], c1[order], sc[order]
    first = np.ones(n, bool)
    if span is not None:
        first[1:] = span[1:] != span[:-1]
    else:
        first[1:] = (ex[1:] != ex[:-1]) | (c0[1:] != c0[:-1]) | (c1[1:] != c1[:-1])
    if not first.all():
        heads = np.flatnonzero(first)
        sc = np.maximum.reduceat(sc, heads)
        ex, c0, c1 = ex[heads], c0[heads], c1[heads]
    return ex, c0, c1, sc


def _char_candidates(s, e, windows, rows, max_answer_length, n_best, exhaustive=False):
    """Candidates of the windows ``rows`` (None: all) as (example, c0, c1, score), each example's
    together, and the windows' thresholds."""
    ok, lo, hi = windows.context_extent()
    offsets, exi = windows.offsets, windows.example_index.astype(np.int64)
    if rows is not None:
        s, e, ok, lo, hi, offsets, exi = s[rows], e[rows], ok[rows], lo[rows], hi[rows], offsets[rows], exi[rows]
    length = offsets.shape[1]
    r, a, b, sc, thr = _span_candidates(s, e, ok, ok, max_answer_length, n_best, groups=exi,
                                        exhaustive=exhaustive, extent=(lo, hi))
    ex = exi[r]
    first = np.ones(len(ex), bool)
    first[1:] = ex[1:] != ex[:-1]
    head_ex = ex[first]
    if not (head_ex[1:] > head_ex[:-1]).all() and len(np.unique(head_ex)) < len(head_ex):
        # an example's windows apart: move whole runs together
        _, _, heads, lengths = _layout(r)
        order = np.argsort(ex[heads], kind="stable")
        starts_new = np.cumsum(lengths[order]) - lengths[order]
        perm = np.arange(len(r)) + np.repeat(heads[order] - starts_new, lengths[order])
        r, a, b, sc, ex = r[perm], a[perm], b[perm], sc[perm], ex[perm]
    flat = offsets.reshape(-1)
    c0 = flat[(r * length + a) * 2].astype(np.int64)
    c1 = flat[(r * length + b) * 2 + 1].astype(np.int64)
    return ex, c0, c1, sc, thr, r


def _merge_dense(ex, c0, c1, sc, m, n_best, win=None):
    """``_merge`` by two row sorts of dense per-example matrices of 64-bit keys.

    Candidates come grouped by example. First sort: by span (``c0 * cm + c1``), best score first,
    so later copies of a span are duplicates; second: by score, then span. The first is skipped for
    an example whose candidates all come from one window (``win``) in strictly increasing (c0, c1)
    order: they are distinct. Examples with more than ``_DENSE`` candidates, or spans too long for
    the keys, take ``_merge``.
    """
    nb_starts = np.full((m, n_best), -1, dtype=np.int32)
    nb_ends = np.full((m, n_best), -1, dtype=np.int32)
    nb_scores = np.full((m, n_best), -np.inf, dtype=np.float32)
    count = np.zeros(m, np.int64)
    if len(sc) == 0:
        return nb_starts, nb_ends, nb_scores, count
    cm = int(c1.max()) + 1
    run, rank, heads, lengths = _layout(ex)
    dense = lengths <= _DENSE
    if c0.min() < 0 or cm * cm > 2**31:  # span ids would not fit the 31 bits the keys leave them
        dense[:] = False
    if not dense.all():
        g = ~dense[run]
        got = _merge(ex[g], c0[g], c1[g], sc[g], m, n_best)
        done = ex[heads[~dense]]
        for arr, new in zip((nb_starts, nb_ends, nb_scores, count), got):
            arr[done] = new[done]
    if not dense.any():
        return nb_starts, nb_ends, nb_scores, count
    simple = np.zeros(len(heads), bool)
    if win is not None:  # one window, (c0, c1) strictly increasing: no duplicates
        step = (win[1:] != win[:-1]) | ~((c0[1:] > c0[:-1]) | ((c0[1:] == c0[:-1]) & (c1[1:] > c1[:-1])))
        simple = np.ones(len(heads), bool)
        simple[run[1:][step & (run[1:] == run[:-1])]] = False
    span = c0 * cm + c1
    desc = _desc_key(sc).astype(np.int64)
    for plain in (True, False):
        group = dense & (simple if plain else ~simple)
        if not group.any():
            continue
        group_ex = ex[heads[group]]
        if group.all():  # no selection to make
            g_run, g_rank, g_span, g_desc = run, rank, span, desc
        else:
            use = group[run]
            g_run, g_rank, g_span, g_desc = (np.cumsum(group) - 1)[run[use]], rank[use], span[use], desc[use]
        keys = (g_desc << 31) | g_span if plain else (g_span << 32) | g_desc
        for runs, mat in _dense_sort(g_run, g_rank, keys, lengths[group]):
            if plain:
                ranked, fresh = mat, None
            else:
                sp, de = mat >> 32, mat & 0xFFFFFFFF
                fresh = mat != _PAD
                fresh[:, 1:] &= sp[:, 1:] != sp[:, :-1]  # a span's first entry holds its best score
                ranked = np.where(fresh, (de << 31) | sp, _PAD)
                ranked.sort(axis=1)  # by score, then span: (c0, c1)
            ranked = ranked[:, :n_best]
            ok = ranked != _PAD
            sp = ranked & 0x7FFFFFFF
            e_of = np.broadcast_to(group_ex[runs][:, None], ranked.shape)[ok]
            col = np.broadcast_to(np.arange(ranked.shape[1]), ranked.shape)[ok]
            nb_starts[e_of, col] = (sp[ok] // cm).astype(np.int32)
            nb_ends[e_of, col] = (sp[ok] % cm).astype(np.int32)
            nb_scores[e_of, col] = _score_of(ranked[ok] >> 31)
            count[group_ex[runs]] = lengths[group][runs] if plain else fresh.sum(axis=1)
    return nb_starts, nb_ends, nb_scores, count


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
    The n-best lists are exact: the ``n_best`` best distinct character spans over all windows,
    ties broken by earlier character start, then earlier end.
    """
    s = np.asarray(start_logits, dtype=np.float32)
    e = np.asarray(end_logits, dtype=np.float32)
    n, length = windows.offsets.shape[:2]
    if s.shape != (n, length) or e.shape != (n, length):
        raise ValueError(f"logits must have the windows' shape {(n, length)}, got {s.shape} and {e.shape}")
    if n_best < 1:
        raise ValueError(f"n_best must be at least 1, got {n_best}")
    m = len(examples)
    ex, c0, c1, sc, thr, win = _char_candidates(s, e, windows, None, max_answer_length, n_best)
    nb_starts, nb_ends, nb_scores, count = _merge_dense(ex, c0, c1, sc, m, n_best, win)
    # an example whose merged list came out short (repeated offsets) while its threshold cut
    # something: search it again exhaustively
    ex_thr = np.full(m, _LOWEST, np.float32)
    np.maximum.at(ex_thr, windows.example_index, thr)
    redo = np.flatnonzero((count < n_best) & (ex_thr > _LOWEST))
    if len(redo):
        rows = np.flatnonzero(np.isin(windows.example_index, redo))
        ex, c0, c1, sc, _, win = _char_candidates(s, e, windows, rows, max_answer_length, n_best, True)
        got = _merge_dense(ex, c0, c1, sc, m, n_best, win)
        for arr, new in zip((nb_starts, nb_ends, nb_scores), got[:3]):
            arr[redo] = new[redo]

    # SQuAD v2 null score: min over the example's windows of start[cls] + end[cls]
    win = np.arange(n)
    null_scores = np.full(m, np.inf, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # NaN CLS scores are skipped (fmin), as HF's comparisons skip them
        np.fmin.at(null_scores, windows.example_index, s[win, windows.cls_index] + e[win, windows.cls_index])

    best_starts, best_ends, best_scores = nb_starts[:, 0].copy(), nb_ends[:, 0].copy(), nb_scores[:, 0].copy()
    if null_threshold is not None:
        is_null = null_scores - best_scores > null_threshold
        best_starts[is_null] = -1
        best_ends[is_null] = -1
    contexts = [x.context for x in examples]
    texts = [ctx[a:b] if a >= 0 else "" for ctx, a, b in zip(contexts, best_starts.tolist(), best_ends.tolist())]
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
