"""Score a prediction set (or a submission CSV) against gold examples, the way a leaderboard would.

QA: EM and F1 are averaged over *all* gold questions: a missing prediction scores as "" (0, unless
the question has no answer). Classification: the task's metrics (accuracy, F1, MCC, ... or
Pearson/Spearman) over all gold examples, a missing or unknown label counting as wrong. Ids the
gold set does not know are listed, not scored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from harness.tasks.qa.example import Example
from harness.common.errors import HarnessError
from harness.tasks.qa.metrics import qa_scores
from harness.submission import read_submission

SHOW_IDS = 10  # ids listed per category by ScoreReport.format()

_LABELS = {"em": "EM", "f1": "F1", "mcc": "MCC", "accuracy": "Acc", "macro_f1": "Macro-F1",
           "pearson": "Pearson", "spearman": "Spearman", "combined": "Combined"}


def metric_label(metric: str) -> str:
    """How a metric is written in headers and summaries: EM, F1, MCC, Acc, Macro-F1, Pearson, ..."""
    return _LABELS.get(metric, metric.upper() if len(metric) <= 3 else metric.replace("_", " ").title())


@dataclass
class ScoreReport:
    """Leaderboard numbers (QA: EM and F1 in 0-100) plus what did not line up between the two sides."""

    em: float | None
    f1: float | None
    n_gold: int
    n_scored: int  # gold questions that had a prediction
    missing_ids: list[str] = field(default_factory=list)  # gold ids without a prediction
    extra_ids: list[str] = field(default_factory=list)  # predicted ids not in gold
    duplicate_ids: list[str] = field(default_factory=list)  # ids repeated in the submission
    problems: list[str] = field(default_factory=list)  # other submission problems, one line each
    per_id: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)
    scores: dict[str, float] = field(default_factory=dict)  # every metric of the task (QA: em, f1)

    def format(self) -> str:
        """The lines the CLI prints, joined with newlines."""
        unit = "questions" if set(self.scores) == {"em", "f1"} else "examples"
        lines = [f"{metric_label(k):<3} {v:.2f}" for k, v in self.scores.items()]
        lines.append(f"{unit}: {self.n_gold} gold, {self.n_scored} with a prediction")
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
        scores={"em": scores["em"], "f1": scores["f1"]},
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


def score_label_file(pred_csv: str | os.PathLike, gold: Sequence, id_column: str = "id",
                     label_column: str = "label", labels: Sequence[str] | None = None) -> ScoreReport:
    """Score a classification (or regression) submission CSV against labelled ``TextExample`` s.

    ``labels`` are the class names (default: the gold's label set); numeric gold labels
    (floats) are scored as regression.
    """
    from harness.tasks.clf.readers import label_set
    from harness.tasks.clf.task import ClassificationTask

    unlabelled = [ex.id for ex in gold if not ex.labelled]
    if unlabelled:
        raise HarnessError(f"gold file has no labels ({len(unlabelled)} of {len(gold)} examples unlabelled, "
                           f"e.g. {unlabelled[0]!r})", hint="score against a file with labels")
    pred, found = read_submission(pred_csv, id_column=id_column, answer_column=label_column)
    regression = all(isinstance(ex.label, float) for ex in gold)
    info = {"labels": None if regression else list(labels or label_set(gold))}
    problems = [str(p) for p in found if p.kind != "duplicate"]
    if regression:
        bad = [q for q, v in pred.items() if not _is_number(v)]
        problems += [f"id {q!r}: {pred[q]!r} is not a number" for q in bad]
        pred = {q: float(v) for q, v in pred.items() if q not in bad}
        missing = [ex.id for ex in gold if ex.id not in pred]
        if missing:
            raise HarnessError(f"no usable prediction for {len(missing)} example(s), e.g. {missing[:3]}",
                               hint="a regression submission needs a number for every example")
    else:
        unknown = sorted({v for v in pred.values() if v not in info["labels"]})
        if unknown:
            problems.append(f"labels not in {info['labels']} (scored as wrong): {unknown[:5]}")
    scores = ClassificationTask().score(pred, gold, info)
    gold_ids = {ex.id for ex in gold}
    return ScoreReport(
        em=None, f1=None, n_gold=len(gold), n_scored=sum(1 for ex in gold if ex.id in pred),
        missing_ids=[ex.id for ex in gold if ex.id not in pred], extra_ids=[q for q in pred if q not in gold_ids],
        duplicate_ids=list(dict.fromkeys(p.id for p in found if p.kind == "duplicate")), problems=problems,
        scores=scores)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
