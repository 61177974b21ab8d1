"""Fitting ensemble member weights to a validation score, whatever the task.

``search_weights(score, n)`` maximises ``score(weights)`` over ``n`` members: Caruana's greedy
forward selection with replacement, or Optuna's TPE. Used by the QA span ensemble
(``harness.tasks.qa.ensemble.fit_weights``) and the classification ensemble (``harness.tasks.clf.ensemble``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

METHODS = ("greedy", "optuna")


def normalise(weights, n: int) -> np.ndarray:
    """Weights as a probability vector (``None``: equal); a ValueError for anything else."""
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if len(w) != n or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"need {n} non-negative weights with a positive sum, got {weights!r}")
    return w / w.sum()


def search_weights(score: Callable[[np.ndarray], float], n: int, method: str = "greedy",
                   n_iter: int | None = None, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """``(weights, single-member scores)`` maximising ``score``; never below the best single member.

    ``greedy``: Caruana et al.'s ensemble selection (ICML 2004) with their sorted initialisation:
    start from the equal mix of the ``N`` best members, ``N`` the one whose mix scores best (the
    most members on a tie: the best single member's score is inflated by having been chosen on the
    same validation set, and a mix that only ties it still averages out more of each member's
    noise), then add, ``n_iter`` times at most (default 20), the member that helps most; stop when
    no addition strictly improves. Weights are the selection counts, normalised. ``optuna``: TPE
    (seeded) over one weight in [0, 1] per member after enqueuing every single member and the equal
    mix; ``n_iter`` (default 30) TPE trials.
    ``score`` should cache: the same weights are asked for more than once.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    singles = [score(np.eye(n)[i]) for i in range(n)]
    if method == "greedy":
        order = np.argsort(-np.asarray(singles, dtype=np.float64), kind="stable")
        starts = [np.isin(np.arange(n), order[:k]).astype(np.int64) for k in range(1, n + 1)]
        start_scores = [singles[order[0]]] + [score(normalise(c, n)) for c in starts[1:min(n, n_iter or 20)]]
        # the best mix (the largest on a tie), of at most n_iter members
        k = max(range(min(n, n_iter or 20)), key=lambda i: (start_scores[i], i))
        counts, best = starts[k], start_scores[k]
        for _ in range((n_iter or 20) - 1 - k):
            trial = [score(normalise(counts + np.eye(n, dtype=np.int64)[i], n)) for i in range(n)]
            if max(trial) <= best:
                break
            counts = counts + np.eye(n, dtype=np.int64)[int(np.argmax(trial))]
            best = max(trial)
        return normalise(counts, n), singles
    return _fit_optuna(score, n, n_iter or 30, seed), singles


def _fit_optuna(score, n: int, n_trials: int, seed: int) -> np.ndarray:
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        for i in range(n):  # start from every single member, then the equal mix
            study.enqueue_trial({f"w{j}": float(i == j) for j in range(n)})
        study.enqueue_trial({f"w{j}": 1.0 for j in range(n)})

        def objective(trial) -> float:
            w = np.array([trial.suggest_float(f"w{j}", 0.0, 1.0) for j in range(n)])
            return score(normalise(w, n)) if w.sum() > 0 else 0.0

        study.optimize(objective, n_trials=n + 1 + n_trials)
        w = np.array([study.best_params[f"w{j}"] for j in range(n)])
    finally:
        optuna.logging.set_verbosity(verbosity)
    return normalise(w, n)
