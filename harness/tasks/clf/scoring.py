"""Scoring a classification (or regression) submission CSV against labelled examples: the task's
metrics over all gold examples, a missing or unknown label counting as wrong; ids the gold set does
not know are listed, not scored."""

from __future__ import annotations

import os
from collections.abc import Sequence

from harness.common.errors import HarnessError
from harness.submission import ScoreReport, read_submission


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
        scores=scores, n_gold=len(gold), n_scored=sum(1 for ex in gold if ex.id in pred), unit="examples",
        missing_ids=[ex.id for ex in gold if ex.id not in pred], extra_ids=[q for q in pred if q not in gold_ids],
        duplicate_ids=list(dict.fromkeys(p.id for p in found if p.kind == "duplicate")), problems=problems)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
