"""Scoring QA predictions (a dict or a submission CSV) against gold examples, as a leaderboard would.

EM and F1 are averaged over *all* gold questions: a missing prediction scores as "" (0, unless
the question has no answer). Ids the gold set does not know are listed, not scored. A file whose
answers mostly do not occur in the gold contexts is refused: it was predicted for another split
(HW7 numbers the questions of every split from 0, so the ids alone match across splits).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence

from harness.common.errors import HarnessError
from harness.submission import ScoreReport, read_submission
from harness.tasks.qa.example import Example
from harness.tasks.qa.metrics import qa_scores

FOREIGN_SHARE = 0.5  # more than this share of non-empty answers outside their contexts: another split
FOREIGN_MIN = 5  # ... among at least this many answers
_LOOSE = re.compile(r"[\s,\uff0c]+")


def gold_references(gold: Sequence[Example]) -> dict[str, tuple[str, ...]]:
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


def foreign_answers(pred: Mapping[str, str], gold: Sequence[Example]) -> tuple[int, int]:
    """(answers that do not occur in their gold context, non-empty answers checked); spaces and commas
    are ignored on both sides (``strip_commas`` submissions)."""
    outside = checked = 0
    for ex in gold:
        answer = pred.get(ex.id)
        if not answer or not answer.strip():
            continue
        checked += 1
        if answer not in ex.context and _LOOSE.sub("", answer) not in _LOOSE.sub("", ex.context):
            outside += 1
    return outside, checked


def check_same_split(pred: Mapping[str, str], gold: Sequence[Example]) -> None:
    """HarnessError when the predictions were evidently made for another split's questions."""
    outside, checked = foreign_answers(pred, gold)
    if checked >= FOREIGN_MIN and outside > FOREIGN_SHARE * checked:
        raise HarnessError(f"{outside} of {checked} predicted answers do not occur in their gold contexts: "
                           "the file probably holds predictions for another split (the ids match, the questions "
                           "do not)", hint="score the predictions of this split (e.g. `harness submit --data dev`), "
                                           "or pass the gold file the predictions were made for")


def score_predictions(pred: Mapping[str, str], gold: Sequence[Example], duplicate_ids: Iterable[str] = (),
                      problems: Iterable[str] = (), lang: str | None = None) -> ScoreReport:
    """Score ``{id: answer}`` against ``gold``; ``duplicate_ids``/``problems`` come from reading the file."""
    refs = gold_references(gold)
    scores = qa_scores(pred, refs, lang=lang)
    return ScoreReport(
        scores={"em": scores["em"], "f1": scores["f1"]}, n_gold=len(refs),
        n_scored=sum(1 for qid in refs if qid in pred), unit="questions",
        missing_ids=[qid for qid in refs if qid not in pred], extra_ids=[qid for qid in pred if qid not in refs],
        duplicate_ids=list(dict.fromkeys(duplicate_ids)), problems=[str(p) for p in problems],
        per_id=scores["per_id"])


def score_file(pred_csv: str | os.PathLike, gold: Sequence[Example], id_column: str = "ID",
               answer_column: str = "Answer", lang: str | None = None) -> ScoreReport:
    """Read a submission CSV with :func:`read_submission` and score it against ``gold``."""
    answers, found = read_submission(pred_csv, id_column=id_column, answer_column=answer_column)
    check_same_split(answers, gold)
    return score_predictions(answers, gold, duplicate_ids=[p.id for p in found if p.kind == "duplicate"],
                             problems=[p for p in found if p.kind != "duplicate"], lang=lang)
