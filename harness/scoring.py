"""Score a prediction set (or a submission CSV) against gold examples, the way a leaderboard would.

EM and F1 are averaged over *all* gold questions: a missing prediction scores as "" (0, unless
the question has no answer). Ids the gold set does not know are listed, not scored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from harness.data.example import Example
from harness.errors import HarnessError
from harness.qa.metrics import qa_scores
from harness.submit import read_submission

SHOW_IDS = 10  # ids listed per category by ScoreReport.format()


@dataclass
class ScoreReport:
    """Leaderboard numbers (EM and F1 in 0-100) plus what did not line up between the two sides."""

    em: float
    f1: float
    n_gold: int
    n_scored: int  # gold questions that had a prediction
    missing_ids: list[str] = field(default_factory=list)  # gold ids without a prediction
    extra_ids: list[str] = field(default_factory=list)  # predicted ids not in gold
    duplicate_ids: list[str] = field(default_factory=list)  # ids repeated in the submission
    problems: list[str] = field(default_factory=list)  # other submission problems, one line each
    per_id: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    def format(self) -> str:
        """The lines the CLI prints, joined with newlines."""
        lines = [
            f"EM  {self.em:.2f}",
            f"F1  {self.f1:.2f}",
            f"questions: {self.n_gold} gold, {self.n_scored} with a prediction",
        ]
        for label, ids in (("missing predictions", self.missing_ids),
                           ("ids not in gold (ignored)", self.extra_ids),
                           ("duplicate ids (first answer kept)", self.duplicate_ids)):
            if ids:
                lines.append(f"{label}: {len(ids)}: {_first(ids)}")
        if self.problems:
            lines.append(f"other problems: {len(self.problems)}")
            lines.extend(f"  {p}" for p in self.problems[:SHOW_IDS])
            if len(self.problems) > SHOW_IDS:
                lines.append(f"  ... and {len(self.problems) - SHOW_IDS} more")
        return "\n".join(lines)


def _first(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:SHOW_IDS])
    return shown + (f" ... and {len(ids) - SHOW_IDS} more" if len(ids) > SHOW_IDS else "")


def _gold_references(gold: Sequence[Example]) -> dict[str, tuple[str, ...]]:
    unlabelled = [ex.id for ex in gold if not ex.labelled]
    if unlabelled:
        raise HarnessError(
            f"gold file has no answers ({len(unlabelled)} of {len(gold)} questions unlabelled, "
            f"e.g. {unlabelled[0]!r})",
            hint="score against a file with answers (a dev split), not the test file")
    refs: dict[str, tuple[str, ...]] = {}
    for ex in gold:
        if ex.id in refs:
            raise HarnessError(f"gold file repeats question id {ex.id!r}")
        refs[ex.id] = ex.answers
    return refs


def score_predictions(
    pred: Mapping[str, str],
    gold: Sequence[Example],
    duplicate_ids: Iterable[str] = (),
    problems: Iterable[str] = (),
    lang: str | None = None,
) -> ScoreReport:
    """Score ``{id: answer}`` against ``gold``; ``duplicate_ids``/``problems`` come from reading the file."""
    refs = _gold_references(gold)
    scores = qa_scores(pred, refs, lang=lang)
    return ScoreReport(
        em=scores["em"],
        f1=scores["f1"],
        n_gold=len(refs),
        n_scored=sum(1 for qid in refs if qid in pred),
        missing_ids=[qid for qid in refs if qid not in pred],
        extra_ids=[qid for qid in pred if qid not in refs],
        duplicate_ids=list(dict.fromkeys(duplicate_ids)),
        problems=[str(p) for p in problems],
        per_id=scores["per_id"],
    )


def score_file(
    pred_csv: str | os.PathLike,
    gold: Sequence[Example],
    id_column: str = "ID",
    answer_column: str = "Answer",
    lang: str | None = None,
) -> ScoreReport:
    """Read a submission CSV with :func:`read_submission` and score it against ``gold``."""
    answers, found = read_submission(pred_csv, id_column=id_column, answer_column=answer_column)
    return score_predictions(
        answers, gold,
        duplicate_ids=[p.id for p in found if p.kind == "duplicate"],
        problems=[p for p in found if p.kind != "duplicate"],
        lang=lang,
    )
