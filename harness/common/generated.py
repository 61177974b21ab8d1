"""Generated data folders (the demo competitions): the files plus a manifest of what made them.

The manifest (JSON) holds the generator's parameters and each file's SHA-256, so a second call
with the same parameters skips the work, while changed parameters or an edited or missing file
regenerate everything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable


def is_stale(out_dir: str | Path, manifest: str, wanted: dict, files: Iterable[str]) -> bool:
    """True unless ``out_dir/manifest`` records ``wanted`` and ``files``, all present and unmodified."""
    out_dir = Path(out_dir)
    try:
        saved = json.loads((out_dir / manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    if any(saved.get(k) != v for k, v in wanted.items()):
        return True
    hashes = saved.get("files") or {}
    if set(hashes) != set(files):
        return True
    return any(not (out_dir / name).is_file() or hashlib.sha256((out_dir / name).read_bytes()).hexdigest() != digest
               for name, digest in hashes.items())


def write_generated(out_dir: str | Path, blobs: dict[str, bytes], manifest: str, params: dict) -> None:
    """Write ``blobs`` (file name -> bytes) into ``out_dir``, then the manifest (last: its presence
    marks a complete folder)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        (out_dir / name).write_bytes(blob)
    record = {**params, "files": {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}}
    (out_dir / manifest).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
