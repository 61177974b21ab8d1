"""What every click command shares: the workspace/competition context and friendly errors."""

from __future__ import annotations

import errno
import sys
from functools import wraps
from pathlib import Path

import click

from harness.common.errors import HarnessError

_STORAGE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)
_DB_PHRASES = {"readonly database": "the file system is read-only (or the file is not writable)",
               "read-only file system": "the file system is read-only",
               "unable to open database file": "the folder cannot be written",
               "database or disk is full": "the disk is full", "no space left on device": "the disk is full",
               "disk i/o error": "a disk error (is the disk full?)"}


def environment_error(e: BaseException) -> HarnessError | None:
    """A one-line HarnessError for a failure of the machine rather than the harness (read-only
    folder, full disk, permission, a database file that cannot be written); None for anything else."""
    from harness.common.io import storage_error

    for exc in (e, e.__cause__, e.__context__):
        if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
            return storage_error(exc, exc.filename or "a file")
        text = str(exc or "").lower()
        for phrase, reason in _DB_PHRASES.items():
            if exc is not None and phrase in text:
                return HarnessError(f"cannot write to the workspace: {reason}",
                                    hint="run the command in a folder you can write to (--workspace DIR), "
                                         "or free some space")
    return None


def friendly(fn):
    """Turn HarnessError (and file-system failures) into one clear line (+ hint) and exit 2, never a
    traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as e:
            _fail(e)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as e:
            known = environment_error(e)
            if known is None:
                raise
            _fail(known)

    return wrapper


def _fail(e: HarnessError):
    click.echo(f"error: {e.message}", err=True)
    if e.hint:
        click.echo(f"  hint: {e.hint}", err=True)
    sys.exit(2)


class _Ctx:
    def __init__(self, competition: str | None, workspace: str | None):
        self._competition = competition
        self._workspace = workspace

    @property
    def workspace(self):
        from harness.common.workspace import Workspace

        if self._workspace:
            return Workspace(self._workspace)
        if self._competition:
            p = Path(self._competition)
            return Workspace(p if p.is_dir() else p.parent)
        return Workspace(Path.cwd())

    @property
    def competition(self):
        from harness.competition import load_competition

        return load_competition(self._competition or self.workspace.root)


pass_ctx = click.make_pass_decorator(_Ctx)


class TaskKind(click.ParamType):
    """A registered task kind (checked when the command runs, so kinds registered by plugins count)."""

    name = "KIND"

    def convert(self, value, param, ctx):
        from harness.tasks.base import get_task

        try:
            return get_task(value).kind
        except HarnessError as e:
            self.fail(f"{e.message} ({e.hint})", param, ctx)


set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="override a recipe parameter, e.g. --set lr=3e-5 (repeatable); "
                               "`harness recipes --params` lists them")
model_path_option = click.option("--model-path", type=click.Path(), help="local checkpoint folder to use instead "
                                 "of the recipe's hub checkpoint")
