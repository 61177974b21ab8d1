"""Ranking the board: sort keys, the rank change since the newest add, which metric to rank by."""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.common.errors import HarnessError
from harness.scores import Scheme


def check_by(by: str | None, metrics: Sequence[str], scheme: Scheme) -> str:
    """``by`` if it is one of the board's metrics (None: the primary), else HarnessError listing them."""
    if by is None:
        return metrics[0]
    if by not in metrics:
        raise HarnessError(f"unknown metric '{by}' for this {scheme.describe()} leaderboard",
                           hint=f"rank by one of: {', '.join(metrics)}")
    return by


def score_columns(metrics: Sequence[str]) -> list[str]:
    """dev_<m>..., public_<primary>, private_<primary>, test_<m>... (QA: dev_em, dev_f1, public_em, ...)."""
    return [*(f"dev_{m}" for m in metrics), f"public_{metrics[0]}", f"private_{metrics[0]}",
            *(f"test_{m}" for m in metrics)]


def desc(value) -> float:
    """Sort key for "higher is better"; a missing (or undefined) score ranks last."""
    return math.inf if value is None or math.isnan(value) else -value


def rank(rows: list[dict], by: str, metrics: Sequence[str], split: str) -> list[dict]:
    order = [by, *(m for m in metrics if m != by)]
    return sorted(rows, key=lambda r: (*(desc(r[f"{split}_metrics"].get(m)) for m in order), r["created"], r["name"]))


def change(delta: int) -> str:
    return "=" if delta == 0 else f"{delta:+d}"


