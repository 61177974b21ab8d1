"""What every click command shares: the workspace/competition context and friendly errors."""

from __future__ import annotations

import sys
from functools import wraps
from pathlib import Path

import click

from harness.common.errors import HarnessError


def friendly(fn):
    """Turn HarnessError into one clear line (+ hint) and exit 2, never a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as e:
            click.echo(f"error: {e.message}", err=True)
            if e.hint:
                click.echo(f"  hint: {e.hint}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


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


set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="override a recipe parameter, e.g. --set lr=3e-5 (repeatable)")
model_path_option = click.option("--model-path", type=click.Path(), help="local checkpoint folder to use instead "
                                 "of the recipe's hub checkpoint")
