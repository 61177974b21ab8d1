"""SQuAD-style ``evaluate`` metric backed by :func:`harness.tasks.qa.metrics.qa_scores`.

Load it offline with ``evaluate.load("<path to this folder>")`` or
``harness.tasks.qa.metrics.load_metric()``. Inputs and outputs follow the hub's ``squad`` metric;
Chinese answers are scored with the CMRC 2018 rules, English ones with SQuAD v1.1's.
"""

import datasets
import evaluate

from harness.tasks.qa.metrics import qa_scores

_DESCRIPTION = """Exact match and F1 for extractive QA (SQuAD v1.1 rules for English, CMRC 2018
rules for Chinese, SQuAD v2 no-answer: an empty answer list is matched only by an empty prediction)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str}.
    references: list of {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}.
    lang: optional "en" or "zh" to force one rule set (default: detected per question).
Returns:
    {"exact_match": float 0-100, "f1": float 0-100}
Example:
    >>> metric = evaluate.load("harness/tasks/qa/squad_metric")
    >>> metric.compute(predictions=[{"id": "1", "prediction_text": "Denver"}],
    ...                references=[{"id": "1", "answers": {"text": ["Denver"], "answer_start": [0]}}])
    {'exact_match': 100.0, 'f1': 100.0}
"""

_CITATION = """Rajpurkar et al. 2016, SQuAD (arXiv:1606.05250); Cui et al. 2019, CMRC 2018 (EMNLP)."""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HarnessSquad(evaluate.Metric):
    """EM/F1 over SQuAD-style prediction and reference records."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": {
                    "id": datasets.Value("string"),
                    "prediction_text": datasets.Value("string"),
                },
                "references": {
                    "id": datasets.Value("string"),
                    "answers": datasets.Sequence({
                        "text": datasets.Value("string"),
                        "answer_start": datasets.Value("int32"),
                    }),
                },
            }),
        )

    def _compute(self, predictions, references, lang=None):
        preds = {p["id"]: p["prediction_text"] for p in predictions}
        refs = {r["id"]: list(r["answers"]["text"]) for r in references}
        scores = qa_scores(preds, refs, lang=lang)
        return {"exact_match": scores["em"], "f1": scores["f1"]}
