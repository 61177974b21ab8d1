"""Fold assignment for k-fold scoring: deterministic, never splitting what must stay together.

* QA (``grouped_folds``): questions about one paragraph (same ``group`` or same context) stay in
  one fold, so no fold is scored on a paragraph its model was trained on; folds are balanced by
  question count.
* Classification (``stratified_folds``): each fold gets the label distribution of the whole set
  (regression targets: their quintiles); examples sharing a non-empty ``group`` stay in one fold.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from harness.common.errors import HarnessError


def _tie(seed: int, key: str) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def group_keys(examples: Sequence, splits: Sequence[str] | None = None) -> list[int]:
    """A group number per example: same ``split:group`` or same context -> same group."""
    parent: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys = []
    for i, ex in enumerate(examples):
        split = splits[i] if splits else ""
        a = ("g", split, ex.group) if ex.group else ("c", ex.context)
        b = ("c", ex.context)
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
        keys.append(a)
    roots, out = {}, []
    for a in keys:
        out.append(roots.setdefault(find(a), len(roots)))
    return out


def grouped_folds(examples: Sequence, k: int, seed: int = 0, splits: Sequence[str] | None = None) -> np.ndarray:
    """Fold index per example: groups never straddle folds; folds balanced by question count.

    Deterministic: groups are taken largest first (ties in a seeded hash order) and each goes to
    the fold with the fewest questions so far (ties: the lowest fold index).
    """
    groups = np.asarray(group_keys(examples, splits), dtype=np.int64)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    if k < 2:
        raise HarnessError(f"--folds needs at least 2 folds, got {k}")
    if n_groups < k:
        raise HarnessError(f"cannot make {k} grouped folds from {n_groups} paragraph groups",
                           hint="use fewer folds or --dev")
    sizes = np.bincount(groups, minlength=n_groups)
    first_id = {}
    for i, g in enumerate(groups):
        first_id.setdefault(int(g), examples[i].id)
    tie = [_tie(seed, first_id[g]) for g in range(n_groups)]
    order = sorted(range(n_groups), key=lambda g: (-sizes[g], tie[g]))
    load = np.zeros(k, dtype=np.int64)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    return fold_of_group[groups]



def stratified_folds(labels: Sequence, k: int, seed: int = 0, groups: Sequence[str] | None = None,
                     ids: Sequence[str] | None = None, regression: bool = False) -> np.ndarray:
    """Fold index per example with each fold's label mix close to the whole set's.

    Units are single examples, or groups of examples sharing a non-empty ``groups`` entry. Units
    are placed largest first (ties in a seeded hash order of their first id) into the fold whose
    label counts, with the unit added, stay furthest below their share ``count[label] / k``
    (ties: the smaller fold, then the lower index). Without groups this deals each label's
    examples round-robin, so fold label counts differ by at most one.
    """
    n = len(labels)
    if k < 2:
        raise HarnessError(f"--folds needs at least 2 folds, got {k}")
    ids = [str(i) for i in (ids if ids is not None else range(n))]
    if regression:
        values = np.asarray(labels, dtype=np.float64)
        edges = np.quantile(values, [0.2, 0.4, 0.6, 0.8]) if n else []
        codes = np.searchsorted(edges, values, side="right")
    else:
        _, codes = np.unique(np.asarray([str(x) for x in labels]), return_inverse=True)
    n_codes = int(codes.max()) + 1 if n else 0
    unit_of: dict[str, int] = {}
    unit = np.empty(n, dtype=np.int64)
    for i in range(n):
        g = groups[i] if groups is not None and groups[i] else None
        unit[i] = unit_of.setdefault(("g", g) if g is not None else ("i", i), len(unit_of))
    n_units = len(unit_of)
    if n_units < k:
        raise HarnessError(f"cannot make {k} folds from {n_units} examples/groups", hint="use fewer folds or --dev")
    counts = np.zeros((n_units, n_codes), dtype=np.int64)
    np.add.at(counts, (unit, codes), 1)
    first = {}
    for i in range(n):
        first.setdefault(int(unit[i]), ids[i])
    sizes = counts.sum(1)
    order = sorted(range(n_units), key=lambda u: (-sizes[u], _tie(seed, first[u])))
    share = counts.sum(0) / k
    fold_counts = np.zeros((k, n_codes), dtype=np.int64)
    fold_of_unit = np.empty(n_units, dtype=np.int64)
    for u in order:
        after = fold_counts + counts[u]
        overshoot = ((after - share) * (counts[u] > 0)).max(axis=1)  # how far the unit's labels overfill
        f = min(range(k), key=lambda j: (overshoot[j], fold_counts[j].sum(), j))
        fold_of_unit[u] = f
        fold_counts[f] += counts[u]
    return fold_of_unit[unit]
