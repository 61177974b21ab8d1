"""Where things live in a workspace (the folder holding ``competition.toml``).

    competition.toml   the competition declaration (`harness init`)
    data/              generated data (the demo competitions)
    runs/NAME/         one training run each: config, metrics, model, logits (harness.runs; delete freely)
    studies/NAME/      Optuna studies: storage, trial runs, plots (delete a study folder to forget it)
    submissions/       NAME.csv + NAME.json sidecars (what you upload); dev submissions NAME.dev.csv
    leaderboard/       board.sqlite: the local leaderboard (delete to reset)
    cache/             encodings/: tokenized windows and texts reused by every run, trial, fold and prediction;
                       tokenizers/: WordPiece vocabularies of scratch recipes (delete freely)
    result.csv         the latest test submission (the file to upload)
"""

from __future__ import annotations

from pathlib import Path


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
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def result_csv(self) -> Path:
        return self.root / "result.csv"

    def sweep(self) -> None:
        """Remove what killed commands left: partial runs and trials whose process is gone, stale
        temporary files. Cheap; called when a command starts."""
        from harness.common.io import sweep_temporaries
        from harness.runs import sweep_partials

        sweep_partials(self.runs)
        if self.studies.is_dir():
            for trials in self.studies.glob("*/trials"):
                sweep_partials(trials)
        for folder in (self.runs, self.studies, self.submissions, self.leaderboard, self.cache):
            sweep_temporaries(folder)
        sweep_temporaries(self.root, recursive=False)
