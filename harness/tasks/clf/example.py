"""The example type of text classification (and regression): one text or text pair, one label."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TextExample:
    """One text (or sentence pair) and its label.

    ``text_pair`` is the second sentence of pair tasks (MRPC, QQP, STS-B, MNLI, QNLI, RTE, WNLI).
    ``label`` is the class name as a string for classification ("0", "positive"), a float for
    regression, and None for unlabelled (test) examples. ``group`` is an optional group id for
    grouped folds; ``meta`` holds reader details (e.g. ``{"row": 3}``) and is ignored by ``==``.
    """

    id: str
    text: str
    text_pair: str | None = None
    label: str | float | None = None
    group: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def labelled(self) -> bool:
        return self.label is not None
