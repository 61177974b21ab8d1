"""A workspace cache of encodings: the windows (QA) or token rows (classification) of a data set,
built once and reused by every trial, fold, refit and prediction that asks for the same ones.

    windows = cached_windows(ws.root / "cache" / "encodings", tokenizer, examples,
                             max_length=384, doc_stride=128, max_query_length=64, split_chars=True)
    rows = cached_texts(cache_dir, tokenizer, examples, max_length=128, labels=["neg", "pos"])

Both call :func:`~harness.tasks.qa.windows.make_windows` / :func:`~harness.tasks.clf.encode.encode_texts`
on a miss and return exactly what those return; ``cache_dir=None`` means no caching.

An entry is one ``.npz`` (no pickled objects) named by the hash of its key:

* the tokenizer: a hash of its full serialized state (vocabulary, normalizer, pre-tokenizer,
  post-processor, added tokens; minus the truncation/padding settings that every call rewrites),
  its special-token ids, padding and truncation sides and model input names;
* every parameter that can change the result (``doc_stride`` only for sliding windows, ``seed``
  only when ``max_offset`` draws random shifts, labels on or off);
* the content of the examples (ids, questions, contexts, answers and their starts; text, pair
  and label for classification), in order;
* the cache format, the encoder's own version (``WINDOWS_VERSION`` / ``ENCODING_VERSION``, bumped
  when its output changes) and the transformers / tokenizers versions.

The file also holds its key, checked on reading, so a changed key is always a miss. Files are
written to a temporary name and renamed into place, so several processes may fill the cache at
once (the last rename wins; each file is complete); an unreadable, truncated or corrupt file is
a miss and is rebuilt. A hit refreshes the file's time, which :func:`prune_cache` uses to drop
the least recently used entries beyond a size or age bound.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

CACHE_FORMAT = "harness.encodings"
CACHE_VERSION = 1
SUFFIX = ".npz"
KINDS = ("qa-windows", "clf-texts")
# deflate level: on DRCD dev windows (35 MB raw) level 3 writes 1.7 MB in 0.42 s and reads in 0.14 s;
# numpy's savez_compressed (level 6) 1.1 MB in 1.16 s / 0.13 s; plain savez 35 MB in 0.08 s / 0.06 s
COMPRESS_LEVEL = 3
STALE_TEMP_S = 3600.0  # a temporary file older than this is a writer that died


ENCODINGS = "encodings"  # the cache's folder under a workspace's cache/


def _sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything of ``tokenizer`` that can change an encoding (a fast tokenizer)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError("encodings are cached for fast tokenizers only (no backend_tokenizer)")
    text = backend.to_str()
    # The serialized state starts with version, truncation and padding; the last two are whatever
    # the previous call set (transformers sets them per call), so they are left out.
    cut = text.find(',"added_tokens":')
    head = None
    if text.startswith("{") and cut > 0:
        try:
            head = json.loads(text[:cut] + "}")
        except ValueError:
            head = None
    if isinstance(head, dict):
        body = text[cut:]
    else:  # another layout: parse it all
        head, body = json.loads(text), ""
    for volatile in ("truncation", "padding"):
        head.pop(volatile, None)
    attrs = {
        "class": type(tokenizer).__name__,
        "padding_side": getattr(tokenizer, "padding_side", None),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
        "model_input_names": list(getattr(tokenizer, "model_input_names", []) or []),
        "split_special_tokens": bool(getattr(tokenizer, "split_special_tokens", False)),
        "pad_token_type_id": getattr(tokenizer, "pad_token_type_id", 0),
    }
    for name in ("pad", "cls", "sep", "bos", "eos", "unk", "mask"):
        attrs[f"{name}_token_id"] = getattr(tokenizer, f"{name}_token_id", None)
    return _sha(json.dumps([head, attrs], sort_keys=True, ensure_ascii=False, default=str) + body)


def _tagged(value) -> str:
    """A value as a string that keeps its type (None, "", 1 and "1" all differ)."""
    if value is None:
        return "n"
    if isinstance(value, str):
        return "s" + value
    return f"{type(value).__name__}:{value!r}"


def examples_fingerprint(examples: Sequence) -> str:
    """A hash of the examples' content, in order (QA: id, question, context, answers, starts;
    classification: id, text, text pair, label).

    The hash covers the strings joined, every string's length and the answer counts and starts,
    so no choice of characters in the texts can make two different lists hash alike.
    """
    strings: list[str] = []
    ints: list[int] = []
    if all(hasattr(ex, "context") for ex in examples):  # QA Examples
        kind = b"qa"
        for ex in examples:
            strings += (ex.id, ex.question, ex.context, *ex.answers)
            ints.append(len(ex.answers))
            ints += ex.answer_starts
    else:  # TextExamples
        kind = b"text"
        for ex in examples:
            strings += (ex.id, ex.text, _tagged(ex.text_pair), _tagged(ex.label))
    strings = [s if isinstance(s, str) else _tagged(s) for s in strings]
    h = hashlib.sha256(kind)
    for part in (np.asarray(ints, dtype=np.int64), np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part.tobytes())
    h.update("\x00".join(strings).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _versions() -> dict:
    import tokenizers
    import transformers

    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def windows_key(tokenizer, examples: Sequence, max_length: int = 384, doc_stride: int = 128,
                max_query_length: int = 64, with_labels: bool = False, max_offset: int | None = None,
                seed: int = 0, split_chars: bool = False) -> dict:
    """The cache key of ``make_windows(tokenizer, examples, ...)`` (same defaults).

    Parameters that cannot change the result are left out, so that they do not split the cache:
    ``doc_stride`` in the ``max_offset`` variant, ``seed`` unless ``max_offset`` is non-zero.
    """
    from harness.tasks.qa.windows import WINDOWS_VERSION

    params = {"max_length": int(max_length), "max_query_length": int(max_query_length),
              "split_chars": bool(split_chars), "labels": bool(with_labels) or max_offset is not None}
    if max_offset is None:
        params["doc_stride"] = int(doc_stride)
    else:
        params["max_offset"] = int(max_offset)
        if max_offset:
            params["seed"] = int(seed)
    return {"kind": "qa-windows", "encoder_version": WINDOWS_VERSION, "params": params,
            "tokenizer": tokenizer_fingerprint(tokenizer), "examples": examples_fingerprint(examples),
            "n_examples": len(examples), **_versions()}


def texts_key(tokenizer, examples: Sequence, max_length: int, labels=False) -> dict:
    """The cache key of ``encode_texts(tokenizer, examples, max_length, labels)``."""
    from harness.tasks.clf.encode import ENCODING_VERSION

    targets = "none" if labels is False else "values" if labels is None else [str(x) for x in labels]
    return {"kind": "clf-texts", "encoder_version": ENCODING_VERSION,
            "params": {"max_length": int(max_length), "labels": targets},
            "tokenizer": tokenizer_fingerprint(tokenizer), "examples": examples_fingerprint(examples),
            "n_examples": len(examples), **_versions()}


def entry_path(cache_dir: str | Path, key: dict) -> Path:
    """Where the entry of ``key`` lives in ``cache_dir``."""
    digest = _sha(json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION, **key}, sort_keys=True))
    return Path(cache_dir) / f"{key['kind']}-{digest[:40]}{SUFFIX}"


def load_entry(path: Path, key: dict) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path`` for ``key``, or None (absent, unreadable, another key)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            if meta.get("format") != CACHE_FORMAT or meta.get("version") != CACHE_VERSION or meta.get("key") != key:
                return None
            return {k: z[k] for k in z.files if k != "meta"}  # reading checks each member's CRC
    except Exception:  # noqa: BLE001 - missing, truncated, corrupt or foreign: a miss, never a crash
        return None


def _savez(fileobj, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` at a faster deflate level (the file is an ordinary ``.npz``).

    Padded windows are mostly padding: DRCD dev at 384 tokens is 35 MB raw, 1.7 MB deflated.
    """
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def store_entry(path: Path, key: dict, arrays: dict[str, np.ndarray]) -> bool:
    """Write ``arrays`` under ``key`` atomically (temporary file, then rename). False if it failed."""
    meta = json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key, "created": time.time()})
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            _savez(f, {"meta": np.asarray(meta), **arrays})
        os.replace(tmp, path)
        return True
    except OSError:  # read-only or full disk: the caller still has its encoding
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return False


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def cached_windows(cache_dir: str | Path | None, tokenizer, examples: Sequence, **kwargs):
    """``make_windows(tokenizer, examples, **kwargs)``, read from ``cache_dir`` when built before."""
    from harness.tasks.qa.windows import Windows, make_windows

    if cache_dir is None:
        return make_windows(tokenizer, examples, **kwargs)
    key = windows_key(tokenizer, examples, **kwargs)
    path = entry_path(cache_dir, key)
    arrays = load_entry(path, key)
    if arrays is not None:
        try:
            windows = Windows.from_arrays(arrays)
            if _consistent_windows(windows, examples):
                _touch(path)
                return windows
        except (KeyError, ValueError, TypeError):
            pass
    windows = make_windows(tokenizer, examples, **kwargs)
    store_entry(path, key, windows.to_arrays())
    return windows


def _consistent_windows(w, examples) -> bool:
    n = len(w.input_ids)
    rows = [w.lengths, w.example_index, w.cls_index] + [a for a in (w.start_positions, w.end_positions) if a is not None]
    return (w.input_ids.ndim == 2 and w.offsets.shape == (*w.input_ids.shape, 2) and all(len(a) == n for a in rows)
            and (w.token_type_ids is None or w.token_type_ids.shape == w.input_ids.shape)
            and w.example_ids == [ex.id for ex in examples])


def cached_texts(cache_dir: str | Path | None, tokenizer, examples: Sequence, max_length: int, labels=False):
    """``encode_texts(tokenizer, examples, max_length, labels)``, read from ``cache_dir`` when built before."""
    from harness.tasks.clf.encode import Encoded, encode_texts

    if cache_dir is None:
        return encode_texts(tokenizer, examples, max_length, labels=labels)
    key = texts_key(tokenizer, examples, max_length, labels)
    path = entry_path(cache_dir, key)
    arrays = load_entry(path, key)
    if arrays is not None:
        try:
            enc = Encoded.from_arrays(arrays)
            n = len(enc.input_ids)
            if (len(enc.lengths) == n and (enc.labels is None or len(enc.labels) == n)
                    and (labels is False) == (enc.labels is None) and enc.example_ids == [ex.id for ex in examples]):
                _touch(path)
                return enc
        except (KeyError, ValueError, TypeError):
            pass
    enc = encode_texts(tokenizer, examples, max_length, labels=labels)
    store_entry(path, key, enc.to_arrays())
    return enc


def prune_cache(cache_dir: str | Path | None, max_bytes: int | None = None, max_age_s: float | None = None,
                now: float | None = None) -> dict:
    """Drop cache entries older than ``max_age_s`` (since last use), then the least recently used
    until at most ``max_bytes`` remain; also temporary files of writers that died.

    Only files this module writes are touched. Returns ``{"removed", "freed_bytes", "kept", "kept_bytes"}``.
    """
    out = {"removed": 0, "freed_bytes": 0, "kept": 0, "kept_bytes": 0}
    if cache_dir is None or not Path(cache_dir).is_dir():
        return out
    now = time.time() if now is None else now
    entries = []
    for p in Path(cache_dir).iterdir():
        ours = p.name.endswith(SUFFIX) and any(p.name.startswith(f"{kind}-") for kind in KINDS)
        temp = p.name.startswith(".") and p.name.endswith(".tmp") and SUFFIX in p.name
        if not (ours or temp) or not p.is_file():
            continue
        try:
            st = p.stat()
        except OSError:
            continue
        if temp:
            if now - st.st_mtime > STALE_TEMP_S:
                _remove(p, st.st_size, out)
            continue
        entries.append((st.st_mtime, st.st_size, p))
    entries.sort(key=lambda e: e[0])  # oldest first
    keep = []
    for mtime, size, p in entries:
        if max_age_s is not None and now - mtime > max_age_s:
            _remove(p, size, out)
        else:
            keep.append((mtime, size, p))
    total = sum(size for _, size, _ in keep)
    while keep and max_bytes is not None and total > max_bytes:
        _, size, p = keep.pop(0)
        _remove(p, size, out)
        total -= size
    out["kept"], out["kept_bytes"] = len(keep), total
    return out


def _remove(path: Path, size: int, out: dict) -> None:
    try:
        path.unlink()
    except OSError:
        return
    out["removed"] += 1
    out["freed_bytes"] += size
