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
  file for ``--n-jobs`` > 1. A trial is built in a hidden partial folder and renamed when
  complete, then told to Optuna; on start, RUNNING trials of dead workers are failed and re-queued.

The package, one job per module:

* :mod:`harness.search.setup` -- the search configuration, creating or resuming a study (this text);
* :mod:`harness.search.objective` -- one trial: train and score (dev or k-fold) into its run folder;
* :mod:`harness.search.workers` -- the worker loop, extra worker processes and ``harness search``;
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.common.errors import HarnessError
from harness.common.io import atomic_write_text
from harness.common.names import check_name
from harness.common.workspace import Workspace
from harness.competition import Competition
from harness.config import RunConfig, resolve
from harness.recipes import Recipe, get_recipe, with_checkpoint
from harness.runs import RunBuilder, trial_dir
from harness.search.data import fingerprint, load_data
from harness.search.space import (
    PRUNERS,
    SAMPLERS,
    check_space,
    default_pruner,
    default_trial_params,
    make_pruner,
    make_sampler,
    parse_spec,
)
from harness.search.storage import (
    SEARCH_FILE,
    archive_study,
    create_study_once,
    import_optuna,
    load_config,
    open_storage,
    recover_dead_trials,
    resolve_storage,
    session_seed,
    study_config,
    study_lock,
)

CONFIG_VERSION = 1
DEFAULT_FOLDS = 5


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
    full_space = check_space(space if space is not None else recipe.search_space(comp.kind.kind),
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


def open_setup(ws: Workspace, name: str, comp: Competition, storage: str | None = None) -> SearchSetup:
    """The setup of an existing study (configuration read from the study)."""
    config, url = load_config(ws, name, storage)
    recipe = with_checkpoint(get_recipe(config["recipe"], ws.root), config.get("model_path"))
    train, dev, splits = load_data(comp, config["mode"], config["pool_dev"])
    fold_of = comp.kind.folds(train, int(config["folds"]), int(config["seed"]), splits) \
        if config["mode"] == "kfold" else None
    return SearchSetup(comp, ws, name, url, config, recipe, train, dev, splits, fold_of)


