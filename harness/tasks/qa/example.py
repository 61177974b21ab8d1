"""The one example type every reader yields and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One question about one context.

    ``answers`` holds the reference answer texts and ``answer_starts`` their character offsets
    in ``context`` (same length; several references are allowed, none means unanswerable or
    unlabelled). ``group`` is the paragraph or article id used for grouped folds.
    """

    id: str
    question: str
    context: str
    answers: tuple[str, ...] = ()
    answer_starts: tuple[int, ...] = ()
    group: str = ""
    labelled: bool = True  # False for test files with no answers at all
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_impossible(self) -> bool:
        return self.labelled and not self.answers

    def answer_span(self, k: int = 0) -> tuple[int, int]:
        """Character span [start, end) of reference answer ``k``."""
        start = self.answer_starts[k]
        return start, start + len(self.answers[k])
