"""Versioned logit files: every window's start/end logits plus what maps them back to characters.

One ``.npz`` per (run, split), written atomically. It holds the windows themselves (token ids,
lengths, per-token character offsets into the example's context, the window -> example map)
and the example ids, so a file can be decoded, or projected onto characters for an ensemble of
models with different tokenizers, without the model or tokenizer that produced it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def atomic_write_bytes(path: Path, write) -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def save_logits(path: str | Path, windows: Windows, start_logits, end_logits, meta: dict | None = None) -> Path:
    meta = {"format": FORMAT, "version": VERSION, **(meta or {})}
    arrays = {
        "input_ids": windows.input_ids,
        "lengths": windows.lengths,
        "offsets": windows.offsets,
        "example_index": windows.example_index,
        "cls_index": windows.cls_index,
        "start_logits": np.asarray(start_logits, dtype=np.float32),
        "end_logits": np.asarray(end_logits, dtype=np.float32),
        "example_ids": np.asarray(windows.example_ids, dtype=str),
        "meta": np.asarray(json.dumps(meta)),
    }
    if windows.token_type_ids is not None:
        arrays["token_type_ids"] = windows.token_type_ids
    return atomic_write_bytes(Path(path), lambda f: np.savez_compressed(f, **arrays))


def _read_npz(path: str | Path, fmt: str, version: int, what: str) -> tuple[dict, dict]:
    """Every array of a logits file, and its meta, after checking the file is ``fmt`` up to ``version``."""
    from harness.common.errors import HarnessError

    path = Path(path)
    if not path.exists():
        raise HarnessError(f"no logits at {path}", hint="run `harness predict --run RUN --data SPLIT` first")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != fmt or meta.get("version", 0) > version:
            raise HarnessError(f"{path}: not a {what} file this harness reads (format {meta.get('format')} "
                               f"v{meta.get('version')}; it reads {fmt} v{version})")
        return {k: z[k] for k in z.files if k != "meta"}, meta


def load_logits(path: str | Path) -> LogitSet:
    z, meta = _read_npz(path, FORMAT, VERSION, "QA logits")
    windows = Windows(
        input_ids=z["input_ids"], token_type_ids=z.get("token_type_ids"), lengths=z["lengths"],
        offsets=z["offsets"], example_index=z["example_index"], cls_index=z["cls_index"],
        example_ids=[str(x) for x in z["example_ids"]],
    )
    return LogitSet(windows, z["start_logits"], z["end_logits"], meta)


# ---- classification: one row of class logits per example ---------------------------------------

CLASS_FORMAT = "harness.class-logits"
CLASS_VERSION = 1


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
            from harness.common.errors import HarnessError

            raise HarnessError(f"logits have no row for {len(missing)} example(s), e.g. {missing[:3]}",
                               hint="predict the split again: the data changed since these logits were saved")
        return ClassLogits(list(ids), self.logits[[pos[q] for q in ids]], self.labels, self.meta)


def save_class_logits(path: str | Path, logits: ClassLogits, meta: dict | None = None) -> Path:
    meta = {"format": CLASS_FORMAT, "version": CLASS_VERSION, **logits.meta, **(meta or {}),
            "labels": logits.labels}
    arrays = {"logits": np.asarray(logits.logits, dtype=np.float32),
              "example_ids": np.asarray(logits.example_ids, dtype=str), "meta": np.asarray(json.dumps(meta))}
    return atomic_write_bytes(Path(path), lambda f: np.savez_compressed(f, **arrays))


def load_class_logits(path: str | Path) -> ClassLogits:
    z, meta = _read_npz(path, CLASS_FORMAT, CLASS_VERSION, "classification logits")
    return ClassLogits([str(x) for x in z["example_ids"]], z["logits"], meta.get("labels"), meta)
