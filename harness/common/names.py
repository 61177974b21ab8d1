"""Names users type (runs, studies, submissions, parameters) and the hints that list known ones."""

from __future__ import annotations

import difflib
import re
from typing import Iterable

from harness.common.errors import HarnessError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise HarnessError(f"bad name '{name}'", hint="use letters, digits, '.', '_' and '-' (max 100)")
    return name


def listing(items: Iterable[str], limit: int = 10, last: bool = False) -> str:
    """``a, b, c`` (at most ``limit``, the first or the ``last`` ones, with "... (N more)")."""
    items = [str(x) for x in items]
    if len(items) <= limit:
        return ", ".join(items)
    shown = items[-limit:] if last else items[:limit]
    more = f"({len(items) - limit} more)"
    return f"... {more}, " + ", ".join(shown) if last else ", ".join(shown) + f", ... {more}"


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like ``name`` (None when nothing is close)."""
    match = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_hint(name: str, known: Iterable[str], what: str = "known") -> str:
    """'did you mean X? known: a, b, c' for an unknown ``name``."""
    known = sorted(known)
    near = closest(name, known)
    return (f"did you mean '{near}'? " if near else "") + f"{what}: {listing(known, 30)}"
