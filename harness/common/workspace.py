"""Where things live in a workspace (the folder holding ``competition.toml``).

    competition.toml   the competition declaration (`harness init`)
    data/              generated data (the demo competition)
    runs/NAME/         one training run each: config, metrics, model, logits (delete freely)
    studies/NAME/      Optuna studies: storage, trial runs, plots (delete a study folder to forget it)
    submissions/       NAME.csv + NAME.json sidecars (what you upload)
    leaderboard/       board.sqlite: the local leaderboard (delete to reset)
    result.csv         a copy of the latest submission
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from harness.common.errors import HarnessError


class Workspace:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def studies(self) -> Path:
        return self.root / "studies"

    @property
    def submissions(self) -> Path:
        return self.root / "submissions"

    @property
    def leaderboard(self) -> Path:
        return self.root / "leaderboard"

    @property
    def result_csv(self) -> Path:
        return self.root / "result.csv"

    def new_run_dir(self, name: str | None, prefix: str) -> Path:
        if name:
            check_name(name)
            path = self.runs / name
            if (path / "metrics.json").exists():
                raise HarnessError(f"run '{name}' already exists at {path}",
                                   hint="pick another --name or delete that folder")
            return path
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.runs / f"{prefix}-{stamp}"
        k = 1
        while path.exists():
            k += 1
            path = self.runs / f"{prefix}-{stamp}-{k}"
        return path

    def run_dir(self, ref: str) -> Path:
        """A run by name (under runs/), or by path (a run dir, a study trial dir)."""
        for candidate in (Path(ref), self.runs / ref, self.root / ref):
            if (candidate / "config.json").exists():
                return candidate.resolve()
        known = sorted(p.name for p in self.runs.glob("*") if (p / "config.json").exists()) if self.runs.exists() else []
        raise HarnessError(f"no run named '{ref}'",
                           hint=f"known runs: {', '.join(known[-10:])}" if known else "train one with `harness train`")


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise HarnessError(f"bad name '{name}'", hint="use letters, digits, '.', '_' and '-' (max 100)")
    return name
