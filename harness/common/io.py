"""Writing files so that a reader (or a crash) never sees half of one: the one atomic writer.

Every file the harness writes goes through :func:`atomic_write` (or its text/JSON forms): the
bytes go to an exclusive temporary file beside the target (``.NAME.<pid>.<random>.tmp``), are
flushed and fsynced, and the temporary file is renamed over the target. A kill leaves either the
old file or the new one, plus at most a stale ``.tmp`` that :func:`sweep_temporaries` removes
on a later start. Errors of the file system (read-only folder, full disk, no permission) become
one-line :class:`~harness.common.errors.HarnessError` s naming the path.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import time
from pathlib import Path
from typing import Callable

from harness.common.errors import HarnessError

TMP_SUFFIX = ".tmp"
STALE_SECONDS = 3600  # a temporary file older than this, whose writer is gone, is swept


def storage_error(e: OSError, path, doing: str = "write") -> HarnessError:
    """A one-line error for a file-system failure at ``path`` (read-only, full disk, permission)."""
    reason = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied", errno.ENOSPC: "the disk is full",
              errno.EDQUOT: "the disk quota is exceeded"}.get(e.errno, e.strerror or str(e))
    hint = {errno.ENOSPC: "free some space (old runs/, studies/ or cache/ folders can go) and rerun",
            errno.EDQUOT: "free some space and rerun"}.get(
        e.errno, "run the command in a folder you can write to (--workspace DIR)")
    return HarnessError(f"cannot {doing} {path}: {reason}", hint=hint)


def _temp_beside(path: Path) -> tuple[int, Path]:
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write(path: str | Path, write: Callable) -> Path:
    """Call ``write(binary file)`` on a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temp_beside(path)
    except OSError as e:
        raise storage_error(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise storage_error(e, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | Path) -> dict:
    """A JSON file's object; {} when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temporaries(folder: str | Path, max_age: float = STALE_SECONDS, recursive: bool = True) -> int:
    """Delete ``.NAME.<pid>.<random>.tmp`` files under ``folder`` whose writer process is gone, or
    that are older than ``max_age`` seconds. Returns how many went."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    gone = 0
    now = time.time()
    for tmp in (folder.rglob if recursive else folder.glob)(f".*{TMP_SUFFIX}"):
        parts = tmp.name.rsplit(".", 3)  # ['.NAME', pid, random, 'tmp']
        try:
            pid = int(parts[1])
        except (IndexError, ValueError):
            pid = -1
        try:
            old = now - tmp.stat().st_mtime > max_age
            if old or (pid > 0 and not pid_alive(pid)):
                tmp.unlink()
                gone += 1
        except OSError:
            continue
    return gone
