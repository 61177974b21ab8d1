"""Task kinds: the competition's ``task`` picks one; the loop, search, ensembles and submissions
are shared and ask the task for what differs.

A task object (``harness.tasks.qa.task.QATask``, ``harness.tasks.clf.task.ClassificationTask``) provides:

=====================  =====================================================================
``read``               raw file or dataset name -> example objects
``label_info``         what the training data fixes for the model (class names; ``{}`` for QA)
``metrics(info)``      the metric names it scores (0-100), e.g. ("em", "f1"), ("accuracy", ...)
``num_labels``         the head's output size (None: the QA head)
``tokenizer_texts``    texts to train a tokenizer on (scratch recipes)
``encode``             examples -> padded rows with ``lengths``, ``label_arrays()``
``predict``            model + rows -> a logits object (``LogitSet`` / ``ClassLogits``)
``evaluate``           logits + labelled examples -> metrics and ``predictions``
``save_logits`` /      versioned ``.npz`` files (``harness.runs``)
``load_logits``
``merge_folds``        per-fold held-out logits -> one out-of-fold set
``folds``              fold index per example (grouped for QA, stratified for classification)
=====================  =====================================================================
"""

from __future__ import annotations

from harness.common.errors import HarnessError

KINDS = ("qa", "classification")


def get_task(kind: str):
    if kind == "qa":
        from harness.tasks.qa.task import QATask

        return QATask()
    if kind == "classification":
        from harness.tasks.clf.task import ClassificationTask

        return ClassificationTask()
    raise HarnessError(f"unknown task kind '{kind}'", hint=f"one of {', '.join(KINDS)}")
