"""Checks every reader's output goes through: unique ids, non-empty texts, answers where they say.

:func:`validate_examples` is linear in the data (a dict for ids, one ``startswith`` per answer);
only answers that are not at their ``answer_start`` pay a scan of their context.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Sequence

from harness.common.errors import DataError
from harness.tasks.qa.example import Example

SHOW = 5  # offenders named in one error message


def validate_examples(examples: Sequence[Example], source: str = "data",
                      repair: bool = True) -> tuple[list[Example], list[str]]:
    """Check ``examples``; return them (misplaced answer starts repaired) and the warnings.

    Raises DataError (each listing up to 5 offending ids and how many there are) for duplicate
    ids, empty or blank contexts, answers that are empty or missing from the context,
    and, with ``repair=False``, answers that are not at their ``answer_start``. With ``repair``, an
    answer found elsewhere in its context moves to the occurrence nearest the given start, with a
    warning naming the id, the old and the new start. Blank questions only warn: a public set
    has them (CMRC2018 trial) and a test file still needs a prediction for every id.
    """
    _check_ids(examples, source)
    warnings = _check_texts(examples, source)
    examples, more = _check_answers(examples, source, repair)
    return examples, warnings + more


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:SHOW])
    return shown + (f" ... ({len(items) - SHOW} more)" if len(items) > SHOW else "")


def _check_ids(examples: Sequence[Example], source: str) -> None:
    counts = Counter(ex.id for ex in examples)
    dups = [f"{i!r} (x{n})" for i, n in counts.items() if n > 1]
    if dups:
        raise DataError(f"{source}: {len(dups)} duplicate id(s): {_listing(dups)}",
                        hint="every question needs its own id; fix the file or give unique ids")


def _check_texts(examples: Sequence[Example], source: str) -> list[str]:
    """Blank contexts -> DataError; blank questions -> warnings (real CMRC2018 trial has two)."""
    bad = [repr(ex.id) for ex in examples if not ex.context.strip()]
    if bad:
        raise DataError(f"{source}: empty or blank context in {len(bad)} example(s): {_listing(bad)}",
                        hint="drop those rows or fill them in")
    blank = [repr(ex.id) for ex in examples if not ex.question.strip()]
    if not blank:
        return []
    return [f"{source}: empty or blank question in {len(blank)} example(s): {_listing(blank)} "
            f"(kept: the model sees only the context; fix or drop them)"]


def _check_answers(examples: Sequence[Example], source: str,
                   repair: bool) -> tuple[list[Example], list[str]]:
    out, warnings, malformed, missing, misplaced = [], [], [], [], []
    for ex in examples:
        if len(ex.answers) != len(ex.answer_starts):
            malformed.append(f"{ex.id!r} ({len(ex.answers)} answers, {len(ex.answer_starts)} starts)")
            continue
        starts = list(ex.answer_starts)
        for k, (text, start) in enumerate(zip(ex.answers, ex.answer_starts)):
            if not text.strip():
                malformed.append(f"{ex.id!r} (empty answer text)")
            elif not (0 <= start and ex.context.startswith(text, start)):
                new = nearest_occurrence(ex.context, text, start)
                if new is None:
                    missing.append(f"{ex.id!r} ({text[:30]!r})")
                elif not repair:
                    misplaced.append(f"{ex.id!r} ({text[:30]!r} at {start}, found at {new})")
                else:
                    starts[k] = new
                    warnings.append(f"{source}: id {ex.id!r}: answer {text[:30]!r} is not at {start}; "
                                    f"moved to the nearest occurrence at {new}")
        changed = starts != list(ex.answer_starts)
        out.append(replace(ex, answer_starts=tuple(starts)) if changed else ex)
    _raise_answer_errors(source, malformed, missing, misplaced)
    return out, warnings


def _raise_answer_errors(source: str, malformed: list[str], missing: list[str], misplaced: list[str]) -> None:
    if malformed:
        raise DataError(f"{source}: malformed answers in {len(malformed)} example(s): {_listing(malformed)}",
                        hint="each answer needs a non-empty text and one start")
    if missing:
        raise DataError(f"{source}: answer text not found in the context for {len(missing)} answer(s): "
                        f"{_listing(missing)}", hint="fix the answer text or the context of those questions")
    if misplaced:
        raise DataError(f"{source}: answer text not at answer_start for {len(misplaced)} answer(s): "
                        f"{_listing(misplaced)}",
                        hint="validate with repair=True to move each to the nearest occurrence")


def nearest_occurrence(context: str, text: str, start: int) -> int | None:
    """Start of the occurrence of ``text`` in ``context`` closest to ``start`` (ties: earlier)."""
    best, pos = None, context.find(text)
    while pos != -1:
        if best is None or abs(pos - start) < abs(best - start):
            best = pos
        if pos > start:
            break  # later occurrences are farther away
        pos = context.find(text, pos + 1)
    return best
