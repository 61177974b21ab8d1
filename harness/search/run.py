"""Hyperparameter search over a recipe's space with Optuna: dev or k-fold scoring, for any task kind.

One study per folder::

    studies/NAME/
      study.db            Optuna storage (SQLite, one worker) -- or journal.log (--n-jobs > 1)
      search.json         storage URL + the search configuration (also in the study's user attrs)
      trials/0003/        one finished trial: config.json, metrics.json, trial.json,
                          logits/dev.npz (dev mode, + model/ for the top --keep trials)
                          or logits/oof.npz + folds/K/ (k-fold mode)
      history.html        optimisation history; importances.html: parameter importances

Design, in short:

* **Objective** = the best epoch's dev score (dev mode) or the mean of the folds' best-epoch
  scores (k-fold), never the last evaluation. Each epoch (dev) or fold (k-fold) is reported to
  the pruner. Trial 0 of a new study is the recipe defaults (enqueued), so the best trial is
  never worse than the defaults on the search's own data.
* **Folds** come from the task (``harness.folds``): QA folds are grouped (no paragraph/context
  in two folds) and balanced by question count; classification folds are stratified by label
  (grouped by a group column when there is one). Deterministic for a seed. Every k-fold trial
  writes one merged out-of-fold logits file covering every pooled example exactly once.
* **Decoding-only parameters** (QA: ``max_answer_length``, ``n_best``, ``null_threshold``) are not
  sampled: they are tuned on each finished trial's saved logits (:func:`harness.tasks.qa.tune.tune_decoding`).
  Parameters a task ignores (QA windowing for classification) are never sampled.
* **Configuration**: the search configuration (recipe, overrides, space, folds, sampler + seed,
  pruner) lives in the study's user attrs; the same command resumes, a contradicting one is
  refused unless ``--new``.
* **Storage and crash safety** (:mod:`harness.search.storage`): SQLite for one worker, a journal
  file for ``--n-jobs`` > 1. A trial is built in ``trials/.NNNN.partial`` and renamed when
  complete, then told to Optuna; on start, RUNNING trials of dead workers are failed and re-queued.

This module holds the study setup, the objective (one trial, dev or k-fold), the worker loop and
``harness search`` itself (:func:`run_search`, with its extra worker processes). The rest:

* :mod:`harness.search.space` -- sampler / pruner specs and the search space;
* :mod:`harness.search.storage` -- storage URLs, the study lock, worker liveness, dead-trial recovery,
  finding and loading a study;
* :mod:`harness.search.data` -- the examples a study trains and scores on;
* :mod:`harness.tasks.qa.tune` -- decoding-only tuning of QA logits;
* :mod:`harness.train.memory` -- freeing memory between trainings;
* :mod:`harness.search.plots` -- ``history.html`` / ``importances.html``;
* :mod:`harness.search.results` -- ``harness trials`` (the trials table) and ``harness refit``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from harness.common.errors import HarnessError
from harness.common.io import atomic_write_json, atomic_write_text, read_json
from harness.common.names import check_name
from harness.common.workspace import Workspace
from harness.competition import Competition
from harness.config import RunConfig, resolve
from harness.recipes import Recipe, get_recipe, with_checkpoint
from harness.runs import CONFIG, METRICS, MODEL, TRIAL_RECORD, Run, RunBuilder, trial_dir, trial_ref
from harness.search.data import fingerprint, load_data
from harness.search.plots import write_plots
from harness.search.space import (
    PRUNERS,
    SAMPLERS,
    check_space,
    default_pruner,
    default_trial_params,
    make_pruner,
    make_sampler,
    parse_spec,
    suggest,
)
from harness.search.storage import (
    SEARCH_FILE,
    StorageLost,
    archive_study,
    ask_new_trial,
    create_study_once,
    dashboard_target,
    import_optuna,
    load_config,
    open_storage,
    recover_dead_trials,
    resolve_storage,
    session_seed,
    study_config,
    study_lock,
    worker_identity,
)
from harness.train.loop import TrainingDiverged
from harness.train.memory import clear_frames, free_memory

CONFIG_VERSION = 1
DEFAULT_TRIALS = 20
DEFAULT_FOLDS = 5
MAX_CONSECUTIVE_FAILURES = 3


# ---- the search context -------------------------------------------------------------------

@dataclass
class SearchSetup:
    comp: Competition
    ws: Workspace
    name: str
    storage: str
    config: dict
    recipe: Recipe
    train: list = field(default_factory=list)  # dev mode: train; k-fold: the pooled examples
    dev: list | None = None
    splits: list[str] | None = None
    folds: np.ndarray | None = None

    @property
    def study_dir(self) -> Path:
        return self.ws.studies / self.name

    @property
    def task(self):
        return self.comp.kind

    @property
    def trials_dir(self) -> Path:
        return self.study_dir / "trials"

    def trial_dir(self, number: int) -> Path:
        return trial_dir(self.study_dir, number)

    def partial_dir(self, number: int) -> Path:
        """Where this process builds trial ``number`` (:class:`~harness.runs.RunBuilder`)."""
        return RunBuilder(self.trial_dir(number)).path

    def params(self, sampled: dict) -> RunConfig:
        """The resolved configuration of a trial: the recipe's, the study's overrides, the sampled values."""
        return resolve(self.recipe, self.task, lang=self.comp.lang, metric=self.config["metric"],
                       overrides={**self.config["overrides"], **sampled}, source="search parameters")

    def load_study(self, worker_index: int = 0):
        """The study with its pruner and a sampler seeded for this worker session only (from os.urandom:
        workers started at once, as processes or on other hosts, must not replay each other's draws; a
        seed in the sampler spec would make them do so, so it is replaced). The seed is ``study.sampler_seed``
        and each trial records it (user attr ``sampler_seed``). ``worker_index`` is kept for callers."""
        optuna = import_optuna()
        seed = session_seed()
        spec = self.config["sampler"]
        spec = {**spec, "kwargs": {k: v for k, v in (spec.get("kwargs") or {}).items() if k != "seed"}}
        study = optuna.load_study(study_name=self.name, storage=open_storage(self.storage),
                                  sampler=make_sampler(spec, seed), pruner=make_pruner(self.config["pruner"]))
        study.sampler_seed = seed
        return study


def build_config(comp: Competition, recipe: Recipe, *, mode: str, folds: int | None, pool_dev: bool, metric: str,
                 overrides: dict, model_path: str | None, space: dict | None, sampler: dict | None,
                 pruner: dict | None, seed: int) -> dict:
    """The search configuration saved in the study (everything a resume must reproduce)."""
    full_space = check_space(space if space is not None else recipe.search_space(),
                             "--space" if space is not None else f"recipe {recipe.name} space")
    task = comp.kind
    resolve(recipe, task, lang=comp.lang, metric=metric, overrides=overrides)  # bad overrides: one line, now
    unused, decoding = task.unused_params, task.decoding_params
    sampled = {k: v for k, v in full_space.items() if k not in overrides and k not in decoding and k not in unused}
    decoding_space = {k: v for k, v in full_space.items() if k in decoding and k not in unused}
    if pruner is None:
        pruner = default_pruner(mode)
    return {
        "version": CONFIG_VERSION, "competition": comp.name, "recipe": recipe.name, "model_path": model_path,
        "mode": mode, "folds": folds if mode == "kfold" else None, "pool_dev": bool(pool_dev) if mode == "kfold"
        else False, "metric": metric, "overrides": dict(overrides), "space": sampled,
        "decoding_space": decoding_space, "sampler": sampler or {"name": "tpe", "kwargs": {}},
        "pruner": pruner, "seed": int(seed),
    }


# what the command line may contradict (compared only when given again)
COMPARED = ("recipe", "model_path", "mode", "folds", "pool_dev", "metric", "overrides", "space", "sampler",
            "pruner", "seed")


def _differences(saved: dict, asked: dict) -> list[str]:
    out = []
    for k in COMPARED:
        if k in asked and asked[k] != saved.get(k):
            out.append(f"{k}: study has {json.dumps(saved.get(k), default=str)}, "
                       f"command asks {json.dumps(asked[k], default=str)}")
    return out


def prepare_search(comp: Competition, ws: Workspace, *, recipe: str | None = None, study: str | None = None,
                   storage: str | None = None, n_jobs: int = 1, folds: int | None = None, dev: bool | None = None,
                   metric: str | None = None, overrides: dict | None = None, model_path: str | None = None,
                   pool_dev: bool | None = None, space: dict | None = None, sampler: str | dict | None = None,
                   pruner: str | dict | None = None, seed: int | None = None, new: bool = False,
                   echo=print) -> tuple[SearchSetup, bool]:
    """Create or resume a study; returns (setup, created). Arguments left None are restored."""
    import_optuna()
    if folds is not None and dev:
        raise HarnessError("--folds and --dev exclude each other")
    if dev and pool_dev:
        raise HarnessError("--pool-dev needs k-fold scoring (--folds K)", hint="dev mode scores on dev")
    mode = "kfold" if folds is not None else ("dev" if dev else None)
    if study is None:
        if recipe is None:
            raise HarnessError("which study?", hint="pass --recipe R (a new or default-named study) or --study NAME")
        if mode is None:
            mode = "dev" if comp.path("dev") and not pool_dev else "kfold"
        study = f"{recipe}-dev" if mode == "dev" else f"{recipe}-{folds or DEFAULT_FOLDS}fold"
    check_name(study)
    study_dir = ws.studies / study
    sampler_spec = parse_spec(sampler, SAMPLERS, "sampler")
    pruner_spec = parse_spec(pruner, PRUNERS, "pruner")
    if overrides:  # refused now, before any study is created or changed
        from harness.config import check_params

        check_params(overrides, "--set")
    if space is not None:
        check_space(space, "--space")
    if sampler_spec is not None:
        make_sampler(sampler_spec, 0)
    if pruner_spec is not None:
        make_pruner(pruner_spec)
    asked = {k: v for k, v in {
        "recipe": recipe, "model_path": model_path, "mode": mode, "folds": folds, "pool_dev": pool_dev,
        "metric": metric, "overrides": overrides, "space": space, "sampler": sampler_spec, "pruner": pruner_spec,
        "seed": seed}.items() if v is not None}

    with study_lock(study_dir):
        url = resolve_storage(study_dir, storage, n_jobs, echo)
        store = open_storage(url)
        exists, saved = study_config(store, study)  # waits while another host is creating it
        if exists and saved is None:
            raise HarnessError(f"study '{study}' in {url} was not made by `harness search`",
                               hint="pick another --study name")
        if saved is not None and new:
            archive_study(study, url, store, study_dir, echo)
            url = resolve_storage(study_dir, storage, n_jobs, echo)
            store = open_storage(url)
            saved = None
        if saved is not None:
            want = {k: v for k, v in asked.items() if k != "space"}
            if space is not None:
                r = with_checkpoint(get_recipe(saved["recipe"], ws.root), saved.get("model_path"))
                built = check_space(space, "--space")
                ov = overrides if overrides is not None else saved["overrides"]
                want["space"] = {k: v for k, v in built.items() if k not in ov and k not in comp.kind.decoding_params}
            diff = _differences(saved, want)
            if diff:
                raise HarnessError(f"study '{study}' was started with another configuration:\n  " + "\n  ".join(diff),
                                   hint="repeat the original command to resume, pass --new to start the study over "
                                        "(the old one is archived), or choose another --study")
            config = saved
            created = False
        else:
            if recipe is None:
                raise HarnessError(f"no study '{study}' yet", hint="pass --recipe R to start it")
            if mode is None:
                mode = "dev" if comp.path("dev") and not pool_dev else "kfold"
            r = with_checkpoint(get_recipe(recipe, ws.root), model_path)
            metric = metric or comp.metric
            config = build_config(comp, r, mode=mode, folds=(folds or DEFAULT_FOLDS) if mode == "kfold" else None,
                                  pool_dev=bool(pool_dev), metric=metric, overrides=overrides or {},
                                  model_path=model_path, space=space, sampler=sampler_spec, pruner=pruner_spec,
                                  seed=0 if seed is None else seed)
            created = True
        r = with_checkpoint(get_recipe(config["recipe"], ws.root), config.get("model_path"))
        train, dev_examples, splits = load_data(comp, config["mode"], config["pool_dev"])
        task = comp.kind
        if not train:
            raise HarnessError(f"competition '{comp.name}' has no labelled training examples to search on")
        known = task.metrics(task.label_info(train))
        if config["metric"] not in known:
            raise HarnessError(f"metric '{config['metric']}' is not scored for this competition",
                               hint=f"use --metric with one of {', '.join(known)}")
        fold_of = None
        if config["mode"] == "kfold":
            fold_of = task.folds(train, int(config["folds"]), int(config["seed"]), splits)
        fp = fingerprint(train, fold_of) + ("" if dev_examples is None else "-" + fingerprint(dev_examples))
        if created:
            config["data"] = {"n": len(train), "n_dev": len(dev_examples or []), "fingerprint": fp}
            defaults = default_trial_params(
                SearchSetup(comp, ws, study, url, config, r).params({}).flat(), config["space"])
            joined = create_study_once(store, study, config, defaults)
            if joined is not None:  # another host (or process) created it a moment ago: join its study
                diff = _differences(joined, {k: config[k] for k in asked})
                if diff:
                    raise HarnessError(f"study '{study}' was just created by another worker with another "
                                       "configuration:\n  " + "\n  ".join(diff),
                                       hint="run the same command on every host, or choose another --study")
                echo(f"note: study '{study}' was created by another worker a moment ago; joining it")
                config, created = joined, False
            elif config["pruner"]["name"] == "wilcoxon" and config["mode"] == "kfold" and int(config["folds"]) < 5:
                echo(f"note: WilcoxonPruner cannot prune before fold 4; with {config['folds']} folds it never "
                     "prunes (use --pruner median to prune on the running mean)")
        if not created and config.get("data", {}).get("fingerprint") not in (None, fp):
            raise HarnessError(f"study '{study}': the competition data (or its folds) differ from the study's",
                               hint="pass --new to start over on the current data, or choose another --study; "
                                    "every host of a shared study needs the same competition files")
        setup = SearchSetup(comp, ws, study, url, config, r, train, dev_examples, splits, fold_of)
        atomic_write_text(study_dir / SEARCH_FILE, json.dumps(
            {"study": study, "storage": url, "config": config}, indent=2, default=str))
        recover_dead_trials(setup, echo)
    return setup, created


# ---- one trial ------------------------------------------------------------------------------

def run_trial(setup: SearchSetup, trial, echo: Callable | None = None) -> float:
    """Train (and score) one trial into its run folder (visible only once complete); return the objective."""
    optuna = import_optuna()
    from harness.train.loop import fit

    study_cfg, task = setup.config, setup.task
    metric = study_cfg["metric"]
    sampled = suggest(trial, study_cfg["space"])
    cfg = setup.params(sampled)
    ref = trial_ref(setup.name, trial.number)
    extra = {"competition": setup.comp.name, "study": setup.name, "trial": trial.number, "ref": ref}
    attrs: dict = {}
    t0 = time.time()
    lines = (lambda text: echo(f"  trial {trial.number} {text}")) if echo else None
    with RunBuilder(setup.trial_dir(trial.number), ref) as build:
        if study_cfg["mode"] == "dev":
            def on_epoch(epoch: int, entry: dict) -> None:
                trial.report(float(entry[metric]), epoch)
                if epoch < cfg.training.epochs and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch} ({metric} {entry[metric]:.2f})")

            result = fit(task, setup.recipe, cfg, setup.train, build.path, dev_examples=setup.dev, on_epoch=on_epoch,
                         progress=False, echo=lines, cache_dir=setup.ws.cache, extra={**extra, "mode": "dev"})
            value = float(result.best[metric])
            attrs.update(best_epoch=result.best_epoch, **result.best,
                         history=[{k: h.get(k) for k in ("epoch", "loss", *result.best)} for h in result.history])
            logits, scored = result.dev_logits, setup.dev
            require = [CONFIG, METRICS, "logits/dev.npz", f"{MODEL}/config.json"]
            del result
        else:
            logits, value, fold_attrs = _run_folds(setup, trial, cfg, build.path, extra, lines)
            attrs.update(fold_attrs)
            scored, require = setup.train, [CONFIG, METRICS, "logits/oof.npz"]
        tuned = task.tune_decoding(logits, scored, cfg, study_cfg.get("decoding_space", {}), metric)
        if tuned is not None:
            attrs.update(decoding=tuned["params"], **{f"decoded_{m}": tuned[m] for m in task.metrics({}) if m in tuned})
            if tuned[metric] > tuned["base"][metric]:  # predict/submit/refit of this trial decode the tuned way
                run_config = read_json(build.path / CONFIG)
                tuned_cfg = cfg.with_params(tuned["params"], "decoding tuned on the trial's logits")
                atomic_write_json(build.path / CONFIG, {**run_config, **tuned_cfg.to_dict(),
                                                        "decoding_tuned": {"from": cfg.to_dict()["decoding"], **tuned}})
        attrs["dir"] = str(setup.trial_dir(trial.number).relative_to(setup.ws.root))
        attrs["seconds"] = round(time.time() - t0, 1)
        atomic_write_json(build.path / TRIAL_RECORD, {"number": trial.number, "value": value, "metric": metric,
                                                      "params": sampled, "full_params": cfg.flat(),
                                                      "user_attrs": attrs})
        build.commit(require=require)
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    return value


def _run_folds(setup: SearchSetup, trial, cfg: RunConfig, trial_path: Path, extra: dict, echo):
    optuna = import_optuna()
    from harness.train.loop import fit

    study_cfg, task = setup.config, setup.task
    metric, k = study_cfg["metric"], int(study_cfg["folds"])
    examples, fold_of = setup.train, setup.folds
    wilcoxon = study_cfg["pruner"]["name"] == "wilcoxon"
    scores, parts, fold_info = [], [], []
    info = task.label_info(examples)
    for f in range(k):
        held = np.flatnonzero(fold_of == f)
        fit_rows = np.flatnonzero(fold_of != f)
        fold_dir = trial_path / "folds" / str(f)
        fold_dir.mkdir(parents=True, exist_ok=True)
        fold_echo = (lambda text, f=f: echo(f"fold {f}: {text}")) if echo else None
        result = fit(task, setup.recipe, cfg, [examples[i] for i in fit_rows], fold_dir,
                     dev_examples=[examples[i] for i in held], info=info, save_model=False, progress=False,
                     echo=fold_echo, cache_dir=setup.ws.cache, extra={**extra, "fold": f, "folds": k})
        parts.append((held, result.dev_logits))
        score = float(result.best[metric])
        scores.append(score)
        fold_info.append({"fold": f, "n": len(held), "best_epoch": result.best_epoch, **result.best})
        del result
        shutil.rmtree(fold_dir / MODEL, ignore_errors=True)
        shutil.rmtree(fold_dir / "logits", ignore_errors=True)  # merged into oof.npz below
        # WilcoxonPruner pairs the folds' own scores across trials; the others see the running mean
        trial.report(score if wilcoxon else float(np.mean(scores)), f)
        if f < k - 1 and trial.should_prune():  # never throw away a finished trial
            raise optuna.TrialPruned(f"pruned after fold {f} (mean {metric} {np.mean(scores):.2f})")
        free_memory(cuda_only=True)
    ids = [ex.id for ex in examples]
    meta = {"split": "oof", "study": setup.name, "trial": trial.number, "folds": k,
            "fold_of": [int(x) for x in fold_of], "splits": setup.splits}
    oof = task.merge_folds(parts, ids, meta)
    merged = task.evaluate(oof, examples, cfg, info)
    task.save_logits(trial_path / "logits" / "oof.npz", oof, meta)
    value = float(np.mean(scores))
    atomic_write_json(trial_path / CONFIG, {**cfg.to_dict(), "label_info": info, "n_train": len(examples),
                                            "mode": "kfold", **extra, "folds": k, "pool_dev": study_cfg["pool_dev"],
                                            "fold_best_epochs": [fi["best_epoch"] for fi in fold_info]})
    oof_scores = {m: merged[m] for m in task.metrics(info)}
    atomic_write_json(trial_path / METRICS, {"folds": fold_info, "mean": {metric: value}, "oof": oof_scores})
    attrs = {"fold_scores": scores, "folds": fold_info, **{f"oof_{m}": v for m, v in oof_scores.items()}}
    return oof, value, attrs


def keep_top_models(setup: SearchSetup, study, keep: int) -> None:
    """Dev mode: delete the saved models of complete trials outside the top ``keep``."""
    from optuna.trial import TrialState

    if setup.config["mode"] != "dev":
        return
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ranked = sorted(done, key=lambda t: (-t.value, t.number))
    for t in ranked[max(keep, 0):]:
        Run(setup.trial_dir(t.number)).drop_model()


# ---- the worker loop ------------------------------------------------------------------------

def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _params_text(params: dict) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def worker_loop(setup: SearchSetup, n_trials: int, deadline: float | None = None, keep: int = 3,
                worker_index: int = 0, echo: Callable = print, bar: bool = False) -> int:
    """Run trials until the study has ``n_trials`` COMPLETE+PRUNED trials (or the deadline). Returns
    the number of trials this worker ran."""
    optuna = import_optuna()
    from optuna.trial import TrialState
    from tqdm.auto import tqdm

    study = setup.load_study(worker_index)
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)
    metric = setup.config["metric"]
    n_done = len(study.get_trials(deepcopy=False, states=finished_states))
    progress = tqdm(total=n_trials, initial=min(n_done, n_trials), desc="trials", unit="trial", disable=not bar,
                    leave=False, dynamic_ncols=True)
    write = tqdm.write if bar else echo
    ran, failures = 0, 0
    try:
        while True:
            if deadline is not None and time.time() >= deadline:
                write("timeout reached: no new trial started")
                break
            with study_lock(setup.study_dir):
                trials = study.get_trials(deepcopy=False)
                done = sum(t.state in finished_states for t in trials)
                running = sum(t.state == TrialState.RUNNING for t in trials)
                if done + running >= n_trials:
                    break
                # every parameter sampled now, never a configuration another trial has (stops when exhausted)
                trial = ask_new_trial(study, setup.config["space"], write,
                                      attrs={"worker": worker_identity(), "sampler_seed": study.sampler_seed})
                if trial is None:
                    break
            ran += 1
            t0 = time.time()
            state, value, note = TrialState.COMPLETE, None, ""
            try:
                value = run_trial(setup, trial, write)
            except optuna.TrialPruned as e:
                clear_frames(e)
                state, note = TrialState.PRUNED, str(e)
            except KeyboardInterrupt:
                trial.set_user_attr("requeued", True)
                study.tell(trial, state=TrialState.FAIL)
                study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
                raise
            except TrainingDiverged as e:  # a bad configuration: FAIL, and go on
                clear_frames(e)
                state, note = TrialState.FAIL, e.message
                trial.set_user_attr("error", note[:2000])
            except StorageLost:  # the trial stays RUNNING: the rerun's dead-trial recovery re-queues it
                raise
            except HarnessError:
                study.tell(trial, state=TrialState.FAIL)
                raise
            except Exception as e:  # a bad configuration the loop did not name: record it, go on
                clear_frames(e)
                state, note = TrialState.FAIL, f"{type(e).__name__}: {e}"
                trial.set_user_attr("error", note[:2000])
            finally:
                free_memory()
            if state == TrialState.COMPLETE:
                study.tell(trial, value)
                failures = 0
                keep_top_models(setup, study, keep)
            else:
                study.tell(trial, state=state)
                failures = failures + 1 if state == TrialState.FAIL else 0
            progress.update(1 if state != TrialState.FAIL else 0)
            write(_trial_line(study, trial.number, state, value, metric, time.time() - t0, note))
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise HarnessError(f"{failures} trials failed in a row (last: {note})",
                                   hint=f"see `harness trials --study {setup.name}`")
    finally:
        progress.close()
    return ran


def _trial_line(study, number: int, state, value, metric: str, seconds: float, note: str) -> str:
    t = study.get_trials(deepcopy=False)[number] if number < len(study.get_trials(deepcopy=False)) else None
    params = _params_text(t.params) if t is not None else ""
    try:
        best = study.best_trial
        best_text = f"best {best.value:.2f} (#{best.number})"
    except ValueError:
        best_text = "best -"
    if state.name == "COMPLETE":
        head = f"{metric} {value:.2f}"
        if t is not None and "decoded_" + metric in t.user_attrs:
            head += f" (decoded {t.user_attrs['decoded_' + metric]:.2f})"
    elif state.name == "PRUNED":
        head = f"pruned: {note.split(' (')[0]}" if note else "pruned"
    else:
        head = f"failed: {note[:200]}"
    return f"trial {number:>3} {state.name:<8} {head:<34} {best_text:<18} {seconds:5.0f}s  {params}"


# ---- the command ----------------------------------------------------------------------------

def check_search_arguments(*, n_trials: int, timeout: float | None, folds: int | None, n_jobs: int, keep: int,
                           seed: int | None) -> None:
    """One line for each argument of ``harness search`` out of range (checked before any study is touched)."""
    checks = [(n_trials, "--trials", lambda v: isinstance(v, int) and v >= 1, "a whole number >= 1"),
              (timeout, "--timeout", lambda v: v is None or (isinstance(v, (int, float)) and v > 0), "seconds > 0"),
              (folds, "--folds", lambda v: v is None or (isinstance(v, int) and v >= 2), "a whole number >= 2"),
              (n_jobs, "--n-jobs", lambda v: isinstance(v, int) and v >= 1, "a whole number >= 1"),
              (keep, "--keep", lambda v: isinstance(v, int) and v >= 0, "a whole number >= 0"),
              (seed, "--seed", lambda v: v is None or (isinstance(v, int) and v >= 0), "a whole number >= 0")]
    for value, flag, ok, what in checks:
        if not ok(value):
            raise HarnessError(f"{flag} {value}: must be {what}")


def run_search(comp: Competition, ws: Workspace, *, recipe: str | None = None, n_trials: int = DEFAULT_TRIALS,
               timeout: float | None = None, folds: int | None = None, dev: bool | None = None,
               metric: str | None = None, study: str | None = None, storage: str | None = None, n_jobs: int = 1,
               overrides: dict | None = None, model_path: str | None = None, pool_dev: bool | None = None,
               space: dict | None = None, sampler: str | dict | None = None, pruner: str | dict | None = None,
               seed: int | None = None, keep: int = 3, new: bool = False, progress: bool = True,
               plots: bool = True, echo: Callable = print) -> dict:
    """Create or resume a study and run it to ``n_trials`` finished (COMPLETE + PRUNED) trials.

    ``n_trials`` counts the whole study, so the same command started again finishes what a
    killed one left. ``n_jobs`` > 1 starts that many worker processes on one journal storage.
    """
    check_search_arguments(n_trials=n_trials, timeout=timeout, folds=folds, n_jobs=n_jobs, keep=keep, seed=seed)
    setup, created = prepare_search(
        comp, ws, recipe=recipe, study=study, storage=storage, n_jobs=n_jobs, folds=folds, dev=dev, metric=metric,
        overrides=overrides, model_path=model_path, pool_dev=pool_dev, space=space, sampler=sampler, pruner=pruner,
        seed=seed, new=new, echo=echo)
    ws.sweep()  # what killed trials left (their partial folders, stale temporary files)
    cfg = setup.config
    scoring = "dev" if cfg["mode"] == "dev" else (
        f"{cfg['folds']}-fold ({comp.kind.fold_rule})" f"{' (train+dev pooled)' if cfg['pool_dev'] else ''}")
    echo(f"{'new' if created else 'resuming'} study '{setup.name}': recipe {cfg['recipe']}, {scoring} {cfg['metric']}, "
         f"{len(setup.train)} {comp.kind.unit}, sampler {cfg['sampler']['name']}, pruner {cfg['pruner']['name']}; "
         f"space: {', '.join(cfg['space']) or '(empty)'}")
    deadline = time.time() + timeout if timeout else None
    children = []
    if n_jobs > 1:
        if setup.storage.startswith("sqlite"):
            echo("warning: several workers on SQLite: Optuna advises against parallel writers (use a journal or "
                 "a database server URL)")
        for i in range(1, n_jobs):
            args = {"root": str(ws.root), "competition": str(comp.root), "study": setup.name,
                    "storage": setup.storage, "n_trials": n_trials, "deadline": deadline, "keep": keep,
                    "worker": i}
            children.append(subprocess.Popen(
                [sys.executable, "-c", "import sys; from harness.search.run import worker_main; worker_main(sys.argv[1])",
                 json.dumps(args)], env=_worker_env(i, n_jobs)))
        _share_cpu(n_jobs)
    try:
        worker_loop(setup, n_trials, deadline, keep, 0, echo, bar=progress and n_jobs == 1)
        for p in children:
            p.wait()
    except BaseException:
        import signal

        for p in children:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in children:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    bad = [p.returncode for p in children if p.returncode]
    if bad:
        echo(f"warning: {len(bad)} worker process(es) exited with an error (codes {bad})")
    return finish_search(setup, plots=plots, echo=echo)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        return 0


def _worker_env(index: int, n_jobs: int) -> dict:
    """Environment of worker ``index``: its share of the CPU threads, and one GPU each when there are several
    (unless the user set OMP_NUM_THREADS / CUDA_VISIBLE_DEVICES)."""
    env = dict(os.environ)
    threads = str(max(1, _cpus() // n_jobs))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    gpus = _gpus()
    if gpus > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    return env


def _share_cpu(n_jobs: int) -> None:
    """The first worker (this process) takes its share of the CPU threads too."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    try:
        import torch

        torch.set_num_threads(max(1, min(torch.get_num_threads(), _cpus() // n_jobs)))
    except ImportError:  # pragma: no cover
        pass


def worker_main(arg: str) -> None:
    """Entry point of the extra worker processes of ``--n-jobs``."""
    from harness.competition import load_competition

    a = json.loads(arg)
    try:
        comp = load_competition(a["competition"])
        ws = Workspace(a["root"])
        setup = open_setup(ws, a["study"], comp, storage=a["storage"])
        worker_loop(setup, int(a["n_trials"]), a.get("deadline"), int(a.get("keep", 3)), int(a["worker"]), print)
    except HarnessError as e:
        print(f"error (worker {a.get('worker')}): {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def open_setup(ws: Workspace, name: str, comp: Competition, storage: str | None = None) -> SearchSetup:
    """The setup of an existing study (configuration read from the study)."""
    config, url = load_config(ws, name, storage)
    recipe = with_checkpoint(get_recipe(config["recipe"], ws.root), config.get("model_path"))
    train, dev, splits = load_data(comp, config["mode"], config["pool_dev"])
    fold_of = comp.kind.folds(train, int(config["folds"]), int(config["seed"]), splits) \
        if config["mode"] == "kfold" else None
    return SearchSetup(comp, ws, name, url, config, recipe, train, dev, splits, fold_of)


def finish_search(setup: SearchSetup, plots: bool = True, echo: Callable = print) -> dict:
    optuna = import_optuna()
    study = optuna.load_study(study_name=setup.name, storage=open_storage(setup.storage))
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    out = {"study": setup.name, "storage": setup.storage, "dir": setup.study_dir, "counts": counts,
           "best": None, "plots": []}
    try:
        best = study.best_trial
    except ValueError:
        best = None
    if best is not None:
        out["best"] = {"number": best.number, "value": best.value, "params": dict(best.params),
                       "dir": setup.trial_dir(best.number), "decoding": best.user_attrs.get("decoding"),
                       "decoded": best.user_attrs.get("decoded_" + setup.config["metric"])}
    if plots:
        try:
            out["plots"] = write_plots(study, setup.study_dir, setup.config["metric"])
        except Exception as e:  # a plot never fails a search
            echo(f"warning: could not write the plots ({type(e).__name__}: {e})")
    summary = ", ".join(f"{v} {k.lower()}" for k, v in counts.items() if v)
    echo(f"study '{setup.name}': {summary or 'no trials'}")
    if best is not None:
        echo(f"best: trial {best.number} {setup.config['metric']} {best.value:.2f} {_params_text(best.params)} "
             f"-> {setup.trial_dir(best.number)}")
    echo(f"dashboard: optuna-dashboard {dashboard_target(setup.storage)}")  # never a password
    return out
