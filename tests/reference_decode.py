"""Plain nested-loop reference of ``harness.tasks.qa.decode`` (tests and bench/decode.py only).

Deliberately naive: loops over rows, start positions and span lengths in Python (the oracle of the
exactness tests; bench/decode.py measures against tests/hf_postprocess.py instead). Scores are
summed exactly in float64 and rounded to float32 before ranking, which gives the same numbers and
order as the vectorised float32 decoder (IEEE addition is correctly rounded; rounding is
monotonic). Spans scoring -inf or NaN are not spans.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

import numpy as np


def _f32(values: list[float]) -> list[float]:
    with np.errstate(over="ignore"):  # float32 overflow rounds to +-inf, as in float32 addition
        return np.asarray(values, dtype=np.float64).astype(np.float32).tolist()


def reference_best_spans(start_scores, end_scores, start_ok, end_ok, max_span, n_best):
    """Per row: list of (start, end, score) of the top ``n_best`` valid spans, best first."""
    out = []
    for s, e, sok, eok in zip(np.asarray(start_scores, np.float32).tolist(), np.asarray(end_scores, np.float32).tolist(),
                              np.asarray(start_ok).tolist(), np.asarray(end_ok).tolist()):
        cands = []
        for a in range(len(s)):
            if not sok[a]:
                continue
            for b in range(a, min(a + max_span, len(s))):
                if eok[b]:
                    cands.append((a, b, s[a] + e[b]))
        scores = _f32([c[2] for c in cands])
        # a span scoring -inf or NaN (an impossible or NaN logit) is no span
        ranked = heapq.nsmallest(n_best, ((-sc, a, b) for (a, b, _), sc in zip(cands, scores) if sc > -float("inf")))
        out.append([(a, b, -neg) for neg, a, b in ranked])
    return out


def reference_decode(start_logits, end_logits, windows, examples, max_answer_length=30, n_best=20,
                     null_threshold=None):
    """``{id: {"text", "start", "end", "score", "null_score", "nbest": [(text, start, end, score)]}}``."""
    rows_of = defaultdict(list)
    for w, i in enumerate(windows.example_index.tolist()):
        rows_of[i].append(w)
    out = {}
    for i, ex in enumerate(examples):
        best_of_span = {}  # (c0, c1) -> best float64 score over all windows
        null = float("inf")
        for w in rows_of[i]:
            s = np.asarray(start_logits[w], np.float32).tolist()
            e = np.asarray(end_logits[w], np.float32).tolist()
            offs = windows.offsets[w].tolist()
            cls = int(windows.cls_index[w])
            null = min(null, s[cls] + e[cls])
            for a in range(len(offs)):
                if offs[a][0] < 0:
                    continue
                for b in range(a, min(a + max_answer_length, len(offs))):
                    if offs[b][0] < 0:
                        continue
                    key = (offs[a][0], offs[b][1])
                    score = s[a] + e[b]
                    if score > best_of_span.get(key, -float("inf")):
                        best_of_span[key] = score
        scores = _f32(list(best_of_span.values()))
        ranked = heapq.nsmallest(n_best, ((-sc, c0, c1) for sc, (c0, c1) in zip(scores, best_of_span) if sc > -float("inf")))
        nbest = [(ex.context[c0:c1], c0, c1, -neg) for neg, c0, c1 in ranked]
        null = _f32([null])[0]
        best = nbest[0] if nbest else ("", -1, -1, -float("inf"))
        text, start, end = best[:3]
        if null_threshold is not None and null - best[3] > null_threshold:
            text, start, end = "", -1, -1
        out[ex.id] = {"text": text, "start": start, "end": end, "score": best[3], "null_score": null, "nbest": nbest}
    return out
