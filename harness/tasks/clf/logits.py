"""Classification logit files: one row of class logits per example (``harness.class-logits`` v1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.common.errors import HarnessError
from harness.runs import read_npz, write_npz

FORMAT = "harness.class-logits"
VERSION = 1


@dataclass
class ClassLogits:
    """Per-example logits of a sequence classifier: ``logits`` float32 [n, C] (C = 1 for
    regression, where the single column is the predicted value), rows in ``example_ids`` order,
    columns in ``labels`` order (``labels`` is None for regression)."""

    example_ids: list[str]
    logits: np.ndarray
    labels: list[str] | None
    meta: dict

    def subset(self, ids) -> ClassLogits:
        """The rows of ``ids`` in that order (a HarnessError names ids the set lacks)."""
        pos = {q: i for i, q in enumerate(self.example_ids)}
        missing = [q for q in ids if q not in pos]
        if missing:
            raise HarnessError(f"logits have no row for {len(missing)} example(s), e.g. {missing[:3]}",
                               hint="predict the split again: the data changed since these logits were saved")
        return ClassLogits(list(ids), self.logits[[pos[q] for q in ids]], self.labels, self.meta)


def save_class_logits(path: str | Path, logits: ClassLogits, meta: dict | None = None) -> Path:
    arrays = {"logits": np.asarray(logits.logits, dtype=np.float32),
              "example_ids": np.asarray(logits.example_ids, dtype=str)}
    return write_npz(path, arrays, {**logits.meta, **(meta or {}), "labels": logits.labels}, FORMAT, VERSION)


def load_class_logits(path: str | Path) -> ClassLogits:
    z, meta = read_npz(path, FORMAT, VERSION, "classification logits")
    return ClassLogits([str(x) for x in z["example_ids"]], z["logits"], meta.get("labels"), meta)
