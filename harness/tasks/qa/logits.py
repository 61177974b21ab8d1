"""QA logit files: every window's start/end logits plus what maps them back to characters.

One ``.npz`` per (run, split) (:func:`harness.runs.write_npz`: versioned, atomic). It holds the
windows themselves (token ids, lengths, per-token character offsets into the example's context,
the window -> example map) and the example ids, so a file can be decoded, or projected onto
characters for an ensemble of models with different tokenizers, without the model or tokenizer
that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.runs import read_npz, write_npz
from harness.tasks.qa.windows import Windows

FORMAT = "harness.qa-logits"
VERSION = 1


@dataclass
class LogitSet:
    windows: Windows
    start_logits: np.ndarray  # float32 [n_windows, L]
    end_logits: np.ndarray
    meta: dict

    @property
    def example_ids(self) -> list[str]:
        return self.windows.example_ids


def save_logits(path: str | Path, windows: Windows, start_logits, end_logits, meta: dict | None = None) -> Path:
    arrays = {
        "input_ids": windows.input_ids,
        "lengths": windows.lengths,
        "offsets": windows.offsets,
        "example_index": windows.example_index,
        "cls_index": windows.cls_index,
        "start_logits": np.asarray(start_logits, dtype=np.float32),
        "end_logits": np.asarray(end_logits, dtype=np.float32),
        "example_ids": np.asarray(windows.example_ids, dtype=str),
    }
    if windows.token_type_ids is not None:
        arrays["token_type_ids"] = windows.token_type_ids
    return write_npz(path, arrays, meta or {}, FORMAT, VERSION)


def load_logits(path: str | Path) -> LogitSet:
    z, meta = read_npz(path, FORMAT, VERSION, "QA logits")
    windows = Windows(
        input_ids=z["input_ids"], token_type_ids=z.get("token_type_ids"), lengths=z["lengths"],
        offsets=z["offsets"], example_index=z["example_index"], cls_index=z["cls_index"],
        example_ids=[str(x) for x in z["example_ids"]],
    )
    return LogitSet(windows, z["start_logits"], z["end_logits"], meta)
