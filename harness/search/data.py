"""The examples a search study trains and scores on: dev mode (train / dev) or k-fold (train, or
train + dev pooled with ``--pool-dev``), and their fingerprint (a resume on changed data or folds
is refused)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from harness.common.errors import HarnessError
from harness.competition import Competition


def split_examples(comp: Competition, split: str) -> list:
    """The examples of a split; [] when the competition has none."""
    return list(comp.examples(split)) if comp.path(split) else []


def load_data(comp: Competition, mode: str, pool_dev: bool):
    """(train-or-pooled examples, dev examples or None, split names or None)."""
    train = [ex for ex in split_examples(comp, "train") if ex.labelled]
    dev = [ex for ex in split_examples(comp, "dev") if ex.labelled] if comp.path("dev") else []
    if mode == "dev":
        if not dev:
            raise HarnessError(f"competition '{comp.name}' has no labelled dev split to score trials on",
                               hint="use --folds K (grouped k-fold on train)")
        return train, dev, None
    if not pool_dev:
        return train, None, ["train"] * len(train)
    if not dev:
        raise HarnessError("--pool-dev: the competition has no labelled dev split")
    train_ids = {ex.id for ex in train}
    if any(ex.id in train_ids for ex in dev):  # HW7 numbers both files from 0
        dev = [replace(ex, id=f"dev:{ex.id}") for ex in dev]
    return train + dev, None, ["train"] * len(train) + ["dev"] * len(dev)


def fingerprint(examples, folds=None) -> str:
    """A short hash of the examples' ids (and fold numbers)."""
    h = hashlib.sha1()
    for i, ex in enumerate(examples):
        h.update(f"{ex.id}\t{'' if folds is None else int(folds[i])}\n".encode())
    return h.hexdigest()[:16]
