"""Using a study's trials: the table of ``harness trials`` and ``harness refit`` (retrain a trial's
configuration on all training data, one run per seed, and predict test)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

from harness.competition import Competition
from harness.common.errors import HarnessError
from harness.train.memory import free_memory
from harness.recipes import get_recipe, with_checkpoint
from harness.search.data import load_data, split_examples
from harness.search.storage import TRIAL_FILE, import_optuna, load_config, open_storage, read_json
from harness.common.workspace import Workspace


def trials_table(ws: Workspace, name: str, storage: str | None = None):
    """A pandas DataFrame: number, state, score, decoded score, params..., seconds, path."""
    import pandas as pd

    config, url = load_config(ws, name, storage)
    study = import_optuna().load_study(study_name=name, storage=open_storage(url))
    metric = config["metric"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        d = ws.studies / name / "trials" / f"{t.number:04d}"
        row = {"number": t.number, "state": t.state.name,
               metric: None if t.value is None else round(t.value, 2),
               "decoded": None if t.user_attrs.get("decoded_" + metric) is None
               else round(t.user_attrs["decoded_" + metric], 2)}
        row.update({k: v for k, v in t.params.items()})
        if config["mode"] == "kfold" and t.user_attrs.get("oof_" + metric) is not None:
            row["oof"] = round(t.user_attrs["oof_" + metric], 2)  # the pooled out-of-fold score ("decoded" tunes it)
        row["seconds"] = None if t.duration is None else round(t.duration.total_seconds(), 1)
        row["model"] = "yes" if (d / "model").exists() else ""
        row["path"] = str(d.relative_to(ws.root)) if (d / TRIAL_FILE).exists() else ""
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
    return df


def _pick_trial(study, which: str | int):
    from optuna.trial import TrialState

    if str(which) == "best":
        try:
            return study.best_trial
        except ValueError:
            raise HarnessError(f"study '{study.study_name}' has no complete trial yet") from None
    try:
        number = int(which)
    except ValueError:
        raise HarnessError(f"--trial takes 'best' or a trial number, got '{which}'") from None
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise HarnessError(f"study '{study.study_name}' has no trial {number}")
    t = trials[number]
    if t.state != TrialState.COMPLETE:
        raise HarnessError(f"trial {number} is {t.state.name}, not COMPLETE", hint="pick a complete trial")
    return t


def refit(comp: Competition, ws: Workspace, study_name: str, trial: str | int = "best",
          seeds: Sequence[int] | None = None, storage: str | None = None, progress: bool = True,
          echo: Callable = print) -> list[Path]:
    """Retrain a trial's configuration on all training data, one run per seed; predict test.

    Training data: train (+ dev when the study pooled it). A study that kept dev out scores the
    refit on dev each epoch (best epoch kept, as ``harness train``); a pooled one keeps the last
    epoch. The trial's out-of-fold (or dev) logits are copied to ``logits/oof.npz`` of each run.
    """
    from harness.train.loop import predict_run, train_model

    config, url = load_config(ws, study_name, storage)
    study = import_optuna().load_study(study_name=study_name, storage=open_storage(url))
    t = _pick_trial(study, trial)
    trial_dir = ws.studies / study_name / "trials" / f"{t.number:04d}"
    recipe = with_checkpoint(get_recipe(config["recipe"], ws.root), config.get("model_path"))
    run_config = read_json(trial_dir / "config.json")
    params = dict(run_config.get("params") or {})
    if not params:  # folder gone: rebuild from the study
        params = recipe.params({**config["overrides"], **t.params}, task=comp.task)
        params.update(t.user_attrs.get("decoding") or {})
    params["metric"] = config["metric"]
    pooled = config["mode"] == "kfold" and config["pool_dev"]
    train, _, _ = load_data(comp, "kfold", pooled)
    dev = None
    if not pooled and comp.path("dev"):
        dev = [ex for ex in split_examples(comp, "dev") if ex.labelled] or None
    source = trial_dir / "logits" / ("oof.npz" if config["mode"] == "kfold" else "dev.npz")
    seeds = list(seeds) if seeds else [int(params["seed"])]
    runs = []
    for seed in seeds:
        name = f"{study_name}-t{t.number}-s{seed}"
        run_dir = ws.runs / name
        trained = (run_dir / "metrics.json").exists() and (run_dir / "model").exists()
        predicted = not comp.path("test") or (run_dir / "logits" / "test.npz").exists()
        if trained and predicted:
            echo(f"run {name} exists: skipped (delete {run_dir} to redo it)")
            runs.append(run_dir)
            continue
        if not trained:
            p = {**params, "seed": int(seed)}
            echo(f"refit trial {t.number} seed {seed}: {len(train)} training questions"
                 f"{'' if dev is None else f', scored on {len(dev)} dev'} -> {run_dir}")
            result = train_model(recipe, p, train, run_dir, dev_examples=dev, lang=comp.lang, progress=progress,
                                 task=comp.task, extra_config={"competition": comp.name, "study": study_name,
                                                               "trial": t.number, "refit": True, "pooled": pooled})
            if result.best:
                echo(f"  dev {config['metric']} {result.best[config['metric']]:.2f} (epoch {result.best_epoch})")
            del result
            free_memory()
        if source.exists():
            (run_dir / "logits").mkdir(parents=True, exist_ok=True)
            tmp = run_dir / "logits" / ".oof.npz.tmp"
            shutil.copyfile(source, tmp)
            os.replace(tmp, run_dir / "logits" / "oof.npz")
        if comp.path("test"):
            path = predict_run(run_dir, comp.examples("test"), "test", progress=progress)
            echo(f"  wrote {path}")
        runs.append(run_dir)
    return runs
