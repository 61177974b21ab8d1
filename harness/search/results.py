"""Using a study's trials: the table of ``harness trials`` and ``harness refit`` (retrain a trial's
configuration on all labelled data, one run per seed, and predict test)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable, Sequence

from harness.common.errors import HarnessError
from harness.common.io import read_json
from harness.common.workspace import Workspace
from harness.competition import Competition
from harness.config import RunConfig
from harness.recipes import get_recipe, with_checkpoint
from harness.runs import CONFIG, METRICS, MODEL, Run, RunBuilder, trial_dir, trial_ref
from harness.search.data import load_data
from harness.search.storage import import_optuna, load_config, open_storage
from harness.train.memory import free_memory


def trials_table(ws: Workspace, name: str, storage: str | None = None):
    """A pandas DataFrame: number, name (STUDY/tN, what submit --runs takes), state, score, decoded
    score, params..., seconds, model, path."""
    import pandas as pd

    config, url = load_config(ws, name, storage)
    study = import_optuna().load_study(study_name=name, storage=open_storage(url))
    metric = config["metric"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        run = Run(trial_dir(ws.studies / name, t.number), trial_ref(name, t.number))
        usable = run.path.is_dir() and run.is_complete
        row = {"number": t.number, "name": run.ref if usable else "", "state": t.state.name,
               metric: None if t.value is None else round(t.value, 2),
               "decoded": None if t.user_attrs.get("decoded_" + metric) is None
               else round(t.user_attrs["decoded_" + metric], 2)}
        row.update({k: v for k, v in t.params.items()})
        if config["mode"] == "kfold" and t.user_attrs.get("oof_" + metric) is not None:
            row["oof"] = round(t.user_attrs["oof_" + metric], 2)  # the pooled out-of-fold score ("decoded" tunes it)
        row["seconds"] = None if t.duration is None else round(t.duration.total_seconds(), 1)
        row["model"] = "yes" if usable and (run.model_dir / "config.json").is_file() else ""
        row["path"] = str(run.path.relative_to(ws.root)) if usable else ""
        if t.user_attrs.get("retry_of") is not None:
            row["note"] = f"retry of {t.user_attrs['retry_of']}"
        elif t.user_attrs.get("requeued"):
            row["note"] = "worker died; re-queued"
        elif t.user_attrs.get("error"):
            row["note"] = str(t.user_attrs["error"])[:60]
        elif t.user_attrs.get("defaults"):
            row["note"] = "recipe defaults"
        rows.append(row)
    df = pd.DataFrame(rows)
    if "decoded" in df and df["decoded"].isna().all():  # nothing decoding-tuned (classification)
        df = df.drop(columns="decoded")
    if "note" in df:
        df["note"] = df["note"].fillna("")
    df.attrs["metric"] = metric  # the objective's column (studies maximise it)
    return df


def best_first(df):
    """The trials table best first: COMPLETE trials by their objective (highest first), then the
    others (pruned trials by their last reported score), ties in trial order."""
    metric = df.attrs.get("metric")
    if metric not in df:
        return df
    rank = df.assign(_unfinished=df["state"] != "COMPLETE", _score=-df[metric].astype(float))
    order = rank.sort_values(["_unfinished", "_score", "number"], na_position="last", kind="stable").index
    return df.loc[order]


def _pick_trial(study, which: str | int):
    from optuna.trial import TrialState

    if str(which) == "best":
        try:
            return study.best_trial
        except ValueError:
            raise HarnessError(f"study '{study.study_name}' has no complete trial yet") from None
    text = str(which)
    text = text.rsplit("/", 1)[-1].lstrip("tT")
    try:
        number = int(text)
    except ValueError:
        raise HarnessError(f"--trial takes 'best', a trial number or STUDY/tN, got '{which}'") from None
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise HarnessError(f"study '{study.study_name}' has no trial {number}")
    t = trials[number]
    if t.state != TrialState.COMPLETE:
        raise HarnessError(f"trial {number} is {t.state.name}, not COMPLETE", hint="pick a complete trial")
    return t


def refit_epochs(run_config: dict, metrics: dict) -> int:
    """How long a refit trains: the trial's best epoch (dev mode), the median of its folds' best
    epochs (k-fold), else its configured epochs."""
    if metrics.get("best_epoch"):
        return int(metrics["best_epoch"])
    folds = [e for e in run_config.get("fold_best_epochs") or [] if e]
    if folds:
        return max(1, int(round(statistics.median(folds))))
    return int(RunConfig.from_dict(run_config).training.epochs)


def refit(comp: Competition, ws: Workspace, study_name: str, trial: str | int = "best",
          seeds: Sequence[int] | None = None, storage: str | None = None, progress: bool = True,
          echo: Callable = print) -> list[Path]:
    """Retrain a trial's configuration on all labelled data (train + dev), one run per seed, for the
    trial's epoch count (:func:`refit_epochs`; nothing is held out to pick an epoch), and predict test.

    Each run is ``runs/STUDY-tN-sSEED``; it points at the trial's dev or out-of-fold logits
    (``validation_logits`` in its config), which ``harness submit --fit-weights`` uses to weigh it.
    """
    from harness.train.loop import fit
    from harness.train.predict import predict_run

    config, url = load_config(ws, study_name, storage)
    study = import_optuna().load_study(study_name=study_name, storage=open_storage(url))
    t = _pick_trial(study, trial)
    source = Run(trial_dir(ws.studies / study_name, t.number), trial_ref(study_name, t.number))
    why = source.problem()
    if why:
        raise HarnessError(f"trial {source.ref} is not usable: {why}", hint="rerun `harness search` to redo it")
    recipe = with_checkpoint(get_recipe(config["recipe"], ws.root), config.get("model_path"))
    run_config = source.config()
    cfg = RunConfig.from_dict(run_config)
    epochs = refit_epochs(run_config, read_json(source.path / METRICS))
    cfg = cfg.with_params({"epochs": epochs}, f"refit of {source.ref}")
    train, _, _ = load_data(comp, "kfold", bool(comp.path("dev")))  # train + dev: all labelled data
    kind, validation = source.validation_logits()
    seeds = list(seeds) if seeds else [cfg.training.seed]
    runs = []
    for seed in seeds:
        name = f"{study_name}-t{t.number}-s{seed}"
        final = ws.runs / name
        run = Run(final)
        if run.path.is_dir() and run.is_complete:
            echo(f"run {name} exists: skipped (delete {final} to redo it)")
        else:
            echo(f"refit {source.ref} seed {seed}: {epochs} epochs on {len(train)} labelled {comp.kind.unit} "
                 f"(train + dev) -> {final}")
            ws.sweep()
            with RunBuilder(final) as build:
                fit(comp.kind, recipe, cfg.with_params({"seed": int(seed)}), train, build.path, progress=progress,
                    echo=echo, cache_dir=ws.cache,
                    extra={"competition": comp.name, "study": study_name, "trial": t.number, "refit": True,
                           "refit_of": source.ref, "validation_logits": str(validation) if validation else None,
                           "validation_kind": kind})
                run = build.commit(require=[CONFIG, METRICS, f"{MODEL}/config.json"])
            free_memory()
        if comp.path("test") and not run.has_logits("test"):
            path = predict_run(run, comp.kind, comp.examples("test"), "test", progress=progress, cache_dir=ws.cache)
            echo(f"  wrote {path}")
        runs.append(run.path)
    return runs
