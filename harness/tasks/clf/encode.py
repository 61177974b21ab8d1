"""Text (or text pair) examples -> padded token rows, one row per example, with class targets.

The classification counterpart of ``harness.tasks.qa.windows``: texts longer than ``max_length``
tokens are truncated (``longest_first`` for pairs), never windowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# Bump when encode_texts produces different arrays for the same inputs: cached encodings
# (harness.cache) are keyed on it.
ENCODING_VERSION = 1
_ARRAYS = ("input_ids", "token_type_ids", "lengths", "labels")


@dataclass
class Encoded:
    input_ids: np.ndarray  # int32 [n, L], padded with pad_token_id
    token_type_ids: np.ndarray | None  # int8 [n, L] or None
    lengths: np.ndarray  # int32 [n]
    labels: np.ndarray | None = None  # int64 class index [n] or float32 value [n] (regression)
    example_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    def label_arrays(self) -> dict[str, np.ndarray]:
        return {"labels": self.labels}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (``np.savez`` without pickling); absent optional fields are left out."""
        out = {k: getattr(self, k) for k in _ARRAYS if getattr(self, k) is not None}
        out["example_ids"] = np.asarray([str(x) for x in self.example_ids], dtype=str)
        return out

    @classmethod
    def from_arrays(cls, arrays) -> "Encoded":
        """Inverse of :meth:`to_arrays` (``arrays``: any mapping, e.g. an opened ``.npz``)."""
        get = lambda k: np.asarray(arrays[k]) if k in arrays else None  # noqa: E731
        return cls(**{k: get(k) for k in _ARRAYS}, example_ids=[str(x) for x in arrays["example_ids"]])


def label_targets(examples: Sequence, labels: list[str] | None) -> np.ndarray:
    """Class indices in ``labels`` order (int64), or float32 values when ``labels`` is None."""
    if labels is None:
        return np.asarray([float(ex.label) for ex in examples], dtype=np.float32)
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({str(ex.label) for ex in examples if str(ex.label) not in index})
    if unknown:
        from harness.common.errors import DataError

        raise DataError(f"label(s) {unknown[:5]} do not occur in the training data (labels: {labels[:10]})",
                        hint="every dev label must be one of the training labels")
    return np.asarray([index[str(ex.label)] for ex in examples], dtype=np.int64)


def encode_texts(tokenizer, examples: Sequence, max_length: int, labels: list[str] | None | bool = False) -> Encoded:
    """Tokenise ``examples`` (``text`` + optional ``text_pair``) into padded arrays.

    ``labels``: the class names (index order) to turn labels into targets, ``None`` for
    regression targets, ``False`` for no targets (prediction).
    """
    texts = [ex.text for ex in examples]
    pairs = [ex.text_pair for ex in examples]
    kwargs = dict(truncation=True, max_length=int(max_length), return_attention_mask=False,
                  return_token_type_ids=True)
    if any(p is not None for p in pairs):
        enc = tokenizer(texts, [p or "" for p in pairs], **kwargs)
    else:
        enc = tokenizer(texts, **kwargs)
    ids = enc["input_ids"]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int32, count=len(ids))
    width = int(lengths.max()) if len(ids) else 1
    input_ids = np.full((len(ids), width), tokenizer.pad_token_id or 0, dtype=np.int32)
    mask = np.arange(width)[None, :] < lengths[:, None]
    input_ids[mask] = np.fromiter((t for row in ids for t in row), dtype=np.int32, count=int(lengths.sum()))
    token_type_ids = None
    if "token_type_ids" in enc and enc["token_type_ids"] is not None:
        token_type_ids = np.zeros((len(ids), width), dtype=np.int8)
        token_type_ids[mask] = np.fromiter((t for row in enc["token_type_ids"] for t in row), dtype=np.int8,
                                           count=int(lengths.sum()))
    targets = None if labels is False else label_targets(examples, labels)
    return Encoded(input_ids, token_type_ids, lengths, targets, [ex.id for ex in examples])
