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
  sampled: they are tuned on each finished trial's saved logits (:func:`tune_decoding`).
  Parameters a task ignores (QA windowing for classification) are never sampled.
* **Storage**: SQLite for one worker, Optuna's journal file for ``--n-jobs`` > 1 (SQLite is not
  made for parallel writers), or any ``--storage`` URL. The search configuration (recipe,
  overrides, space, folds, sampler + seed, pruner) lives in the study's user attrs; the same
  command resumes, a contradicting one is refused unless ``--new``.
* **Crash safety**: a trial is built in ``trials/.NNNN.partial`` and renamed when complete, then
  told to Optuna. On start, RUNNING trials whose worker (host + pid + process start time) is dead
  are marked FAIL and their parameters re-queued (or marked COMPLETE when their folder was
  already renamed into place). Workers on one host serialise ask/recover with a file lock.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import gc
import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.artifacts import LogitSet, atomic_write_text
from harness.competition import Competition
from harness.errors import HarnessError
from harness.folds import group_keys, grouped_folds  # noqa: F401  (re-exported)
from harness.qa.task import merge_fold_logits  # noqa: F401  (re-exported)
from harness.task import get_task
from harness.recipes import Recipe, get_recipe, with_checkpoint
from harness.workspace import Workspace, check_name

CONFIG_ATTR = "harness_search"
CONFIG_VERSION = 1
DECODING_PARAMS = ("max_answer_length", "n_best", "null_threshold")
SEARCH_FILE = "search.json"
SQLITE_FILE = "study.db"
JOURNAL_FILE = "journal.log"
TRIAL_FILE = "trial.json"
DEFAULT_TRIALS = 20
DEFAULT_FOLDS = 5
MAX_CONSECUTIVE_FAILURES = 3

SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "gp": "GPSampler", "qmc": "QMCSampler",
            "cmaes": "CmaEsSampler"}
PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner", "wilcoxon": "WilcoxonPruner",
           "threshold": "ThresholdPruner", "hyperband": "HyperbandPruner", "sha": "SuccessiveHalvingPruner",
           "successive_halving": "SuccessiveHalvingPruner", "none": "NopPruner", "nop": "NopPruner"}
DEFAULT_DEV_PRUNER = {"name": "median", "kwargs": {"n_startup_trials": 5, "n_warmup_steps": 1}}
DEFAULT_KFOLD_PRUNER = {"name": "wilcoxon", "kwargs": {"p_threshold": 0.1}}


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# ---- specs: sampler / pruner / space ----------------------------------------------------------

def parse_spec(text: str | dict | None, table: dict, what: str) -> dict | None:
    """``"median"`` or ``"median(n_startup_trials=1, n_warmup_steps=0)"`` -> {"name", "kwargs"}."""
    if text is None or isinstance(text, dict):
        return text
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if isinstance(node, ast.Name):
        name, kwargs = node.id, {}
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
        try:
            name, kwargs = node.func.id, {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        except ValueError:
            name, kwargs = None, {}
    else:
        name, kwargs = None, {}
    if name is None or name.lower() not in table:
        raise HarnessError(f"bad {what} '{text}'",
                           hint=f"NAME or NAME(key=value, ...), NAME one of {', '.join(sorted(table))}")
    return {"name": name.lower(), "kwargs": kwargs}


def make_sampler(spec: dict, seed: int):
    optuna = _optuna()
    cls = getattr(optuna.samplers, SAMPLERS[spec["name"]])
    kwargs = dict(spec.get("kwargs") or {})
    kwargs.setdefault("seed", seed)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, ImportError, ModuleNotFoundError) as e:
        raise HarnessError(f"cannot build sampler {spec['name']}({kwargs}): {e}") from None


def make_pruner(spec: dict):
    optuna = _optuna()
    cls = getattr(optuna.pruners, PRUNERS[spec["name"]])
    try:
        return cls(**(spec.get("kwargs") or {}))
    except (TypeError, ValueError) as e:
        raise HarnessError(f"cannot build pruner {spec['name']}({spec.get('kwargs')}): {e}") from None


def _scipy_available() -> bool:
    try:
        import scipy.stats  # noqa: F401
    except ImportError:
        return False
    return True


def check_space(space: dict, recipe: Recipe) -> dict:
    """Validate ``{param: ["log"|"float"|"int", lo, hi(, step)] | ["cat", [choices]]}``."""
    known = recipe.params()
    out = {}
    for name, spec in space.items():
        if name not in known:
            raise HarnessError(f"search space names unknown parameter '{name}'",
                               hint=f"known: {', '.join(sorted(known))}")
        if not isinstance(spec, (list, tuple)) or not spec or spec[0] not in ("log", "float", "int", "cat"):
            raise HarnessError(f"bad search space entry {name} = {spec!r}",
                               hint='use ["log", lo, hi], ["float", lo, hi], ["int", lo, hi] or ["cat", [a, b]]')
        kind = spec[0]
        if kind == "cat":
            if len(spec) != 2 or not isinstance(spec[1], (list, tuple)) or not spec[1]:
                raise HarnessError(f"bad search space entry {name} = {spec!r}", hint='["cat", [choice, ...]]')
            out[name] = ["cat", list(spec[1])]
        else:
            if len(spec) not in (3, 4) or not all(isinstance(v, (int, float)) for v in spec[1:]) or spec[1] > spec[2]:
                raise HarnessError(f"bad search space entry {name} = {spec!r}", hint=f'["{kind}", low, high]')
            if kind == "log" and spec[1] <= 0:
                raise HarnessError(f"search space {name}: a log range needs low > 0")
            out[name] = [kind, *spec[1:]]
    return out


def suggest(trial, space: dict) -> dict:
    out = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "log":
            out[name] = trial.suggest_float(name, float(spec[1]), float(spec[2]), log=True)
        elif kind == "float":
            out[name] = trial.suggest_float(name, float(spec[1]), float(spec[2]),
                                            step=float(spec[3]) if len(spec) > 3 else None)
        elif kind == "int":
            out[name] = trial.suggest_int(name, int(spec[1]), int(spec[2]), step=int(spec[3]) if len(spec) > 3 else 1)
        else:
            out[name] = trial.suggest_categorical(name, spec[1])
    return out


def _in_space(value, spec) -> bool:
    if spec[0] == "cat":
        return any(value == c and type(value) is type(c) for c in spec[1])
    return isinstance(value, (int, float)) and not isinstance(value, bool) and spec[1] <= value <= spec[2]


def default_trial_params(params: dict, space: dict) -> dict:
    """The recipe defaults restricted to the sampled space (enqueued as trial 0)."""
    return {k: params[k] for k, spec in space.items() if _in_space(params[k], spec)}


def decoding_grid(space: dict, params: dict, examples: Sequence) -> dict:
    """Values :func:`tune_decoding` tries: the space's decoding entries (+ the current values).

    ``n_best`` is left at its value: it only shapes the n-best list, never the best answer.
    ``null_threshold`` is tuned ("auto": quantiles of the null-minus-best score gaps) only when
    some example is unanswerable.
    """
    mal = int(params["max_answer_length"])
    spec = space.get("max_answer_length")
    if spec and spec[0] == "cat":
        values = [int(v) for v in spec[1]]
    elif spec:
        values = [int(round(v)) for v in np.linspace(spec[1], spec[2], 5)]
    else:
        values = [v for v in (10, 20, 30, 50, 100) if v <= int(params["max_length"])]
    grid = {"max_answer_length": sorted(set(values) | {mal})}
    if any(getattr(ex, "is_impossible", False) for ex in examples):
        grid["null_threshold"] = [params.get("null_threshold"), "auto"]
    return grid


# ---- decoding-only tuning ----------------------------------------------------------------------

def tune_decoding(logits: LogitSet, examples: Sequence, grid: dict | None = None, metric: str = "em",
                  base: dict | None = None) -> dict:
    """Best decoding parameters for saved logits, without retraining.

    ``grid`` maps ``max_answer_length`` / ``n_best`` / ``null_threshold`` to lists of values
    (``null_threshold`` may hold ``None`` = never predict "" and ``"auto"`` = 21 quantiles of the
    examples' null-minus-best score gaps). ``base`` holds the values used so far; they are tried
    first and kept on ties. Returns ``{"params", "em", "f1", "metric", "base": {"em", "f1"}}``.
    """
    from harness.qa.decode import decode_windows
    from harness.qa.metrics import qa_scores

    if list(logits.example_ids) != [ex.id for ex in examples]:
        raise HarnessError("tune_decoding: the logits were made for other examples")
    base = {"max_answer_length": 30, "n_best": 20, "null_threshold": None, **(base or {})}
    base = {k: base[k] for k in DECODING_PARAMS}
    grid = dict(grid or {})
    unknown = set(grid) - set(DECODING_PARAMS)
    if unknown:
        raise HarnessError(f"tune_decoding: {sorted(unknown)} are not decoding parameters",
                           hint=f"decoding parameters: {', '.join(DECODING_PARAMS)}")

    def values(name):
        vs = [base[name]] + [v for v in grid.get(name, []) if v != base[name]]
        return list(dict.fromkeys(vs))

    refs = {ex.id: list(ex.answers) for ex in examples if ex.labelled}
    ids = [ex.id for ex in examples]
    other = "f1" if metric == "em" else "em"
    best, best_key, base_scores = None, None, None
    for mal in values("max_answer_length"):
        for nb in values("n_best"):
            preds = decode_windows(logits.start_logits, logits.end_logits, logits.windows, examples,
                                   max_answer_length=int(mal), n_best=int(nb), null_threshold=None)
            gap = preds.null_scores - preds.scores
            thresholds = []
            for t in values("null_threshold"):
                if t == "auto":
                    finite = gap[np.isfinite(gap)]
                    thresholds += [float(q) for q in np.quantile(finite, np.linspace(0, 1, 21))] if len(finite) else []
                else:
                    thresholds.append(t)
            for thr in dict.fromkeys(thresholds):
                if thr is None:
                    texts = preds.texts
                else:
                    texts = ["" if g > float(thr) else t for t, g in zip(preds.texts, gap)]
                sc = qa_scores(dict(zip(ids, texts)), refs)
                key = (round(sc[metric], 9), round(sc[other], 9))
                if base_scores is None:
                    base_scores = {"em": sc["em"], "f1": sc["f1"]}
                if best_key is None or key > best_key:
                    best_key = key
                    best = {"params": {"max_answer_length": int(mal), "n_best": int(nb), "null_threshold": thr},
                            "em": sc["em"], "f1": sc["f1"]}
    best["metric"] = metric
    best["base"] = base_scores
    return best


# ---- storage -------------------------------------------------------------------------------

def open_storage(url: str):
    """An Optuna storage from ``sqlite:///...`` (or any SQLAlchemy URL), ``journal:PATH`` or ``PATH.log``."""
    optuna = _optuna()
    if url.startswith("journal:") or (("://" not in url) and url.endswith((".log", ".journal", ".jsonl"))):
        path = url[len("journal:"):] if url.startswith("journal:") else url
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise HarnessError(f"bad --storage '{url}'",
                           hint="sqlite:///path.db, postgresql://..., mysql://..., or journal:path.log")
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except ImportError as e:
        raise HarnessError(f"cannot open storage {url}: {e}", hint="install the database driver") from None


def resolve_storage(study_dir: Path, storage: str | None, n_jobs: int, echo=print) -> str:
    """The storage URL of a study: given > recorded in search.json > SQLite (1 job) / journal (more)."""
    recorded = _read_json(study_dir / SEARCH_FILE).get("storage")
    if storage:
        if recorded and recorded != storage and (study_dir / SEARCH_FILE).exists():
            echo(f"note: study folder {study_dir} recorded storage {recorded}; using {storage} as asked")
        return storage
    if recorded:
        if n_jobs > 1 and recorded.startswith("sqlite"):
            raise HarnessError(f"study {study_dir.name} is stored in SQLite, which Optuna advises against for "
                               "parallel writers", hint="resume it with --n-jobs 1, or start a new study (--new or "
                               "another --study) with --n-jobs > 1, which uses a journal file")
        return recorded
    if n_jobs > 1:
        echo(f"--n-jobs {n_jobs}: storing the study in the journal file {study_dir / JOURNAL_FILE} "
             "(Optuna advises against parallel writers on SQLite)")
        return f"journal:{study_dir / JOURNAL_FILE}"
    return f"sqlite:///{study_dir / SQLITE_FILE}"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def study_lock(study_dir: Path):
    """Serialise setup/recovery/ask between the workers of one host (an flock on studies/NAME/.lock)."""
    import fcntl

    study_dir.mkdir(parents=True, exist_ok=True)
    with open(study_dir / ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ---- workers and liveness ------------------------------------------------------------------

def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None  # field 22: start time in clock ticks


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def worker_identity() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _proc_start(pid)}


def worker_alive(info: dict | None) -> bool | None:
    """True/False for a worker of this host; None when it runs elsewhere (cannot tell)."""
    if not info:
        return False
    if info.get("host") != socket.gethostname():
        return None
    pid = int(info.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _proc_state(pid) in ("Z", "X"):
        return False
    start = info.get("start")
    now = _proc_start(pid)
    return not (start and now and start != now)  # a different process reusing the pid


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
        return get_task(self.comp.task)

    @property
    def trials_dir(self) -> Path:
        return self.study_dir / "trials"

    def trial_dir(self, number: int) -> Path:
        return self.trials_dir / f"{number:04d}"

    def partial_dir(self, number: int) -> Path:
        return self.trials_dir / f".{number:04d}.partial"

    def params(self, sampled: dict) -> dict:
        p = self.recipe.params({**self.config["overrides"], **sampled}, task=self.comp.task)
        p["metric"] = self.config["metric"]
        return p

    def load_study(self, worker_index: int = 0):
        optuna = _optuna()
        n_existing = len(optuna.load_study(study_name=self.name, storage=open_storage(self.storage))
                         .get_trials(deepcopy=False))
        # a seed per session and worker: a restarted or parallel sampler must not replay old draws
        seed = int(self.config["seed"]) + 1000 * worker_index + n_existing
        return optuna.load_study(study_name=self.name, storage=open_storage(self.storage),
                                 sampler=make_sampler(self.config["sampler"], seed),
                                 pruner=make_pruner(self.config["pruner"]))


def _examples(comp: Competition, split: str) -> list:
    return list(comp.examples(split)) if comp.path(split) else []


def load_data(comp: Competition, mode: str, pool_dev: bool):
    """(train-or-pooled examples, dev examples or None, split names or None)."""
    train = [ex for ex in _examples(comp, "train") if ex.labelled]
    dev = [ex for ex in _examples(comp, "dev") if ex.labelled] if comp.path("dev") else []
    if mode == "dev":
        if not dev:
            raise HarnessError(f"competition '{comp.name}' has no labelled dev split to score trials on",
                               hint="use --folds K (grouped k-fold on train)")
        return train, dev, None
    if not pool_dev:
        return train, None, ["train"] * len(train)
    if not dev:
        raise HarnessError("--pool-dev: the competition has no labelled dev split")
    train_ids = {ex.id for ex in train}
    if any(ex.id in train_ids for ex in dev):  # HW7 numbers both files from 0
        dev = [replace(ex, id=f"dev:{ex.id}") for ex in dev]
    return train + dev, None, ["train"] * len(train) + ["dev"] * len(dev)


def _fingerprint(examples, folds=None) -> str:
    h = hashlib.sha1()
    for i, ex in enumerate(examples):
        h.update(f"{ex.id}\t{'' if folds is None else int(folds[i])}\n".encode())
    return h.hexdigest()[:16]


def build_config(comp: Competition, recipe: Recipe, *, mode: str, folds: int | None, pool_dev: bool, metric: str,
                 overrides: dict, model_path: str | None, space: dict | None, sampler: dict | None,
                 pruner: dict | None, seed: int) -> dict:
    """The search configuration saved in the study (everything a resume must reproduce)."""
    full_space = check_space(space if space is not None else recipe.search_space(), recipe)
    recipe.params(overrides)  # unknown keys -> clear error
    unused = get_task(comp.task).unused_params
    sampled = {k: v for k, v in full_space.items()
               if k not in overrides and k not in DECODING_PARAMS and k not in unused}
    decoding_space = {k: v for k, v in full_space.items() if k in DECODING_PARAMS and k not in unused}
    if pruner is None:
        pruner = copy.deepcopy(DEFAULT_DEV_PRUNER if mode == "dev" else DEFAULT_KFOLD_PRUNER)
        if pruner["name"] == "wilcoxon" and not _scipy_available():
            pruner = {"name": "median", "kwargs": {"n_startup_trials": 5, "n_warmup_steps": 0}}
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
    optuna = _optuna()
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
    asked = {k: v for k, v in {
        "recipe": recipe, "model_path": model_path, "mode": mode, "folds": folds, "pool_dev": pool_dev,
        "metric": metric, "overrides": overrides, "space": space, "sampler": sampler_spec, "pruner": pruner_spec,
        "seed": seed}.items() if v is not None}

    with study_lock(study_dir):
        url = resolve_storage(study_dir, storage, n_jobs, echo)
        store = open_storage(url)
        existing = {s.study_name: s for s in optuna.get_all_study_summaries(store, include_best_trial=False)}
        saved = existing[study].user_attrs.get(CONFIG_ATTR) if study in existing else None
        if study in existing and saved is None:
            raise HarnessError(f"study '{study}' in {url} was not made by `harness search`",
                               hint="pick another --study name")
        if saved is not None and new:
            _archive_study(study, url, store, study_dir, echo)
            url = resolve_storage(study_dir, storage, n_jobs, echo)
            store = open_storage(url)
            saved = None
        if saved is not None:
            want = {k: v for k, v in asked.items() if k != "space"}
            if space is not None:
                r = with_checkpoint(get_recipe(saved["recipe"], ws.root), saved.get("model_path"))
                built = check_space(space, r)
                ov = overrides if overrides is not None else saved["overrides"]
                want["space"] = {k: v for k, v in built.items() if k not in ov and k not in DECODING_PARAMS}
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
        task = get_task(comp.task)
        known = task.metrics(task.label_info(train, {}))
        if config["metric"] not in known:
            raise HarnessError(f"metric '{config['metric']}' is not scored for this competition",
                               hint=f"use --metric with one of {', '.join(known)}")
        fold_of = None
        if config["mode"] == "kfold":
            fold_of = get_task(comp.task).folds(train, int(config["folds"]), int(config["seed"]), splits)
        fp = _fingerprint(train, fold_of) + ("" if dev_examples is None else "-" + _fingerprint(dev_examples))
        if created:
            config["data"] = {"n": len(train), "n_dev": len(dev_examples or []), "fingerprint": fp}
            st = optuna.create_study(study_name=study, storage=store, direction="maximize")
            st.set_user_attr(CONFIG_ATTR, config)
            defaults = default_trial_params(
                SearchSetup(comp, ws, study, url, config, r).params({}), config["space"])
            st.enqueue_trial(defaults, user_attrs={"defaults": True})
            if config["pruner"]["name"] == "wilcoxon" and config["mode"] == "kfold" and int(config["folds"]) < 5:
                echo(f"note: WilcoxonPruner cannot prune before fold 4; with {config['folds']} folds it never "
                     "prunes (use --pruner median to prune on the running mean)")
        elif config.get("data", {}).get("fingerprint") not in (None, fp):
            raise HarnessError(f"study '{study}': the competition data (or its folds) changed since the study began",
                               hint="pass --new to start over on the current data, or choose another --study")
        setup = SearchSetup(comp, ws, study, url, config, r, train, dev_examples, splits, fold_of)
        atomic_write_text(study_dir / SEARCH_FILE, json.dumps(
            {"study": study, "storage": url, "config": config}, indent=2, default=str))
        recover_dead_trials(setup, echo)
    return setup, created


def _archive_study(name: str, url: str, store, study_dir: Path, echo) -> None:
    optuna = _optuna()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    inside = str(study_dir) in url
    if not inside:  # a shared database: keep a copy of the old study under another name
        optuna.copy_study(from_study_name=name, from_storage=store, to_storage=store,
                          to_study_name=f"{name}.old-{stamp}")
        optuna.delete_study(study_name=name, storage=store)
    archived = study_dir.with_name(f"{study_dir.name}.old-{stamp}")
    for child in list(study_dir.iterdir()):
        if child.name == ".lock":
            continue
        archived.mkdir(parents=True, exist_ok=True)
        shutil.move(str(child), archived / child.name)
    echo(f"--new: archived the previous study '{name}' in {archived}")


def recover_dead_trials(setup: SearchSetup, echo=print) -> list[int]:
    """RUNNING trials of dead workers (this host): FAIL + re-queue, or COMPLETE when their dir is done.

    Call with the study lock held. Returns the numbers of the trials handled.
    """
    optuna = _optuna()
    from optuna.trial import TrialState

    store = open_storage(setup.storage)
    study = optuna.load_study(study_name=setup.name, storage=store)
    handled = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        info = t.user_attrs.get("worker")
        alive = worker_alive(info)
        if alive:
            continue
        if alive is None:
            echo(f"note: trial {t.number} is running on {info.get('host')} (pid {info.get('pid')}); left alone")
            continue
        done = _read_json(setup.trial_dir(t.number) / TRIAL_FILE)
        if done.get("value") is not None:
            for k, v in done.get("user_attrs", {}).items():
                store.set_trial_user_attr(t._trial_id, k, v)
            store.set_trial_state_values(t._trial_id, TrialState.COMPLETE, [float(done["value"])])
            echo(f"trial {t.number}: its worker died after finishing; recorded as COMPLETE ({done['value']:.2f})")
        else:
            store.set_trial_user_attr(t._trial_id, "requeued", True)
            store.set_trial_state_values(t._trial_id, TrialState.FAIL)
            user_attrs = {"retry_of": t.number}
            if t.user_attrs.get("defaults"):
                user_attrs["defaults"] = True
            study.enqueue_trial(dict(t.params), user_attrs=user_attrs)
            shutil.rmtree(setup.partial_dir(t.number), ignore_errors=True)
            echo(f"trial {t.number}: left RUNNING by a dead worker (pid {(info or {}).get('pid')}); "
                 "marked FAIL, its parameters re-queued")
        handled.append(t.number)
    return handled


# ---- one trial ------------------------------------------------------------------------------

def _clear_frames(exc: BaseException) -> None:
    """Drop the locals of the frames an exception holds (the model and optimizer of a pruned run)."""
    import traceback

    tb = exc.__traceback__
    if tb is not None:
        traceback.clear_frames(tb)


def free_memory(cuda_only: bool = False) -> None:
    """gc + ``torch.cuda.empty_cache()`` (between trials; between folds only on CUDA: gc costs ~0.5 s)."""
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        cuda = False
    if cuda_only and not cuda:
        return
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()


def run_trial(setup: SearchSetup, trial) -> float:
    """Train (and score) one trial; write its folder atomically; return the objective."""
    optuna = _optuna()
    from harness.train import train_model

    cfg = setup.config
    metric = cfg["metric"]
    sampled = suggest(trial, cfg["space"])
    params = setup.params(sampled)
    partial, final = setup.partial_dir(trial.number), setup.trial_dir(trial.number)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    extra = {"competition": setup.comp.name, "study": setup.name, "trial": trial.number}
    attrs: dict = {}
    t0 = time.time()
    if cfg["mode"] == "dev":
        def on_epoch(epoch: int, entry: dict) -> None:
            trial.report(float(entry[metric]), epoch)
            if epoch < int(params["epochs"]) and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({metric} {entry[metric]:.2f})")

        result = train_model(setup.recipe, params, setup.train, partial, dev_examples=setup.dev,
                             lang=setup.comp.lang, on_epoch=on_epoch, progress=False, extra_config=extra,
                             task=setup.comp.task)
        value = float(result.best[metric])
        attrs.update(best_epoch=result.best_epoch, **result.best,
                     history=[{k: h.get(k) for k in ("epoch", "loss", *result.best)} for h in result.history])
        logits = result.dev_logits
        scored = setup.dev
        del result
    else:
        logits, value, fold_attrs = _run_folds(setup, trial, params, partial, extra)
        attrs.update(fold_attrs)
        scored = setup.train
    tuned = None
    if setup.task.tunes_decoding:
        grid = decoding_grid(cfg.get("decoding_space", {}), params, scored)
        tuned = tune_decoding(logits, scored, grid, metric, base=params)
        attrs.update(decoding=tuned["params"], decoded_em=tuned["em"], decoded_f1=tuned["f1"])
    # predict/submit/refit of this trial use the tuned decoding
    if tuned is not None and tuned[metric] > tuned["base"][metric]:
        config_path = partial / "config.json"
        run_config = _read_json(config_path)
        run_config["params"] = {**run_config.get("params", params), **tuned["params"]}
        run_config["decoding_tuned"] = {"from": {k: params.get(k) for k in DECODING_PARAMS}, **tuned}
        atomic_write_text(config_path, json.dumps(run_config, indent=2, ensure_ascii=False, default=str))
    attrs["dir"] = str(final.relative_to(setup.ws.root))
    attrs["seconds"] = round(time.time() - t0, 1)
    # the trial record, written last: its presence marks a complete trial folder
    atomic_write_text(partial / TRIAL_FILE, json.dumps(
        {"number": trial.number, "value": value, "metric": metric, "params": sampled, "full_params": params,
         "user_attrs": attrs}, indent=2, default=str))
    if final.exists():  # a stale folder of an earlier attempt with this number
        shutil.rmtree(final)
    os.replace(partial, final)
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    return value


def _run_folds(setup: SearchSetup, trial, params: dict, trial_dir: Path, extra: dict):
    optuna = _optuna()
    from harness.train import train_model

    cfg = setup.config
    task = setup.task
    metric, k = cfg["metric"], int(cfg["folds"])
    examples, fold_of = setup.train, setup.folds
    wilcoxon = cfg["pruner"]["name"] == "wilcoxon"
    scores, parts, fold_info = [], [], []
    info = task.label_info(examples, params)
    for f in range(k):
        held = np.flatnonzero(fold_of == f)
        fit = np.flatnonzero(fold_of != f)
        fold_dir = trial_dir / "folds" / str(f)
        result = train_model(setup.recipe, params, [examples[i] for i in fit], fold_dir,
                             dev_examples=[examples[i] for i in held], lang=setup.comp.lang, progress=False,
                             extra_config={**extra, "fold": f, "folds": k}, save_model=False, task=task.kind,
                             label_info=info)
        parts.append((held, result.dev_logits))
        score = float(result.best[metric])
        scores.append(score)
        fold_info.append({"fold": f, "n": len(held), "best_epoch": result.best_epoch, **result.best})
        del result
        shutil.rmtree(fold_dir / "model", ignore_errors=True)
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
    merged = task.evaluate(oof, examples, params, info)
    task.save_logits(trial_dir / "logits" / "oof.npz", oof, meta)
    value = float(np.mean(scores))
    config = {"recipe": setup.recipe.name, "checkpoint": setup.recipe.checkpoint, "task": task.kind,
              "lang": setup.comp.lang, "params": params, "label_info": info, "n_train": len(examples),
              "mode": "kfold", **extra, "folds": k, "pool_dev": cfg["pool_dev"]}
    atomic_write_text(trial_dir / "config.json", json.dumps(config, indent=2, ensure_ascii=False, default=str))
    oof_scores = {m: merged[m] for m in task.metrics(info)}
    metrics = {"folds": fold_info, "mean": {metric: value}, "oof": oof_scores}
    atomic_write_text(trial_dir / "metrics.json", json.dumps(metrics, indent=2))
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
        shutil.rmtree(setup.trial_dir(t.number) / "model", ignore_errors=True)


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
    optuna = _optuna()
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
                trial = study.ask()
                trial.set_user_attr("worker", worker_identity())
            ran += 1
            t0 = time.time()
            state, value, note = TrialState.COMPLETE, None, ""
            try:
                value = run_trial(setup, trial)
            except optuna.TrialPruned as e:
                _clear_frames(e)
                state, note = TrialState.PRUNED, str(e)
            except KeyboardInterrupt:
                trial.set_user_attr("requeued", True)
                study.tell(trial, state=TrialState.FAIL)
                study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
                shutil.rmtree(setup.partial_dir(trial.number), ignore_errors=True)
                raise
            except HarnessError:
                study.tell(trial, state=TrialState.FAIL)
                shutil.rmtree(setup.partial_dir(trial.number), ignore_errors=True)
                raise
            except Exception as e:  # a bad configuration (NaN, ...): record it, go on
                _clear_frames(e)
                state, note = TrialState.FAIL, f"{type(e).__name__}: {e}"
                trial.set_user_attr("error", note[:2000])
            finally:
                if state != TrialState.COMPLETE or value is None:
                    shutil.rmtree(setup.partial_dir(trial.number), ignore_errors=True)
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
    if n_jobs < 1:
        raise HarnessError("--n-jobs must be at least 1")
    setup, created = prepare_search(
        comp, ws, recipe=recipe, study=study, storage=storage, n_jobs=n_jobs, folds=folds, dev=dev, metric=metric,
        overrides=overrides, model_path=model_path, pool_dev=pool_dev, space=space, sampler=sampler, pruner=pruner,
        seed=seed, new=new, echo=echo)
    cfg = setup.config
    scoring = "dev" if cfg["mode"] == "dev" else (
        f"{cfg['folds']}-fold {'grouped' if comp.task == 'qa' else 'stratified'}"
        f"{' (train+dev pooled)' if cfg['pool_dev'] else ''}")
    echo(f"{'new' if created else 'resuming'} study '{setup.name}': recipe {cfg['recipe']}, {scoring} {cfg['metric']}, "
         f"{len(setup.train)} questions, sampler {cfg['sampler']['name']}, pruner {cfg['pruner']['name']}; "
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
                [sys.executable, "-c", "import sys; from harness.search import worker_main; worker_main(sys.argv[1])",
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
    fold_of = get_task(comp.task).folds(train, int(config["folds"]), int(config["seed"]), splits) \
        if config["mode"] == "kfold" else None
    return SearchSetup(comp, ws, name, url, config, recipe, train, dev, splits, fold_of)


def find_study(ws: Workspace, name: str | None) -> str:
    known = sorted(p.parent.name for p in ws.studies.glob(f"*/{SEARCH_FILE}")) if ws.studies.exists() else []
    if name:
        return check_name(name)
    if len(known) == 1:
        return known[0]
    if not known:
        raise HarnessError("no study in this workspace", hint="start one with `harness search --recipe R`")
    raise HarnessError("several studies: which one?", hint=f"--study one of {', '.join(known)}")


def load_config(ws: Workspace, name: str, storage: str | None = None) -> tuple[dict, str]:
    record = _read_json(ws.studies / name / SEARCH_FILE)
    url = storage or record.get("storage")
    if not url:
        raise HarnessError(f"no study '{name}' in {ws.studies}", hint="pass --storage URL for a study stored elsewhere")
    optuna = _optuna()
    try:
        st = optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        raise HarnessError(f"study '{name}' not found in {url}") from None
    config = st.user_attrs.get(CONFIG_ATTR)
    if not config:
        raise HarnessError(f"study '{name}' was not made by `harness search`")
    return config, url


def load_study(ws: Workspace, name: str, storage: str | None = None):
    _, url = load_config(ws, name, storage)
    return _optuna().load_study(study_name=name, storage=open_storage(url))


def finish_search(setup: SearchSetup, plots: bool = True, echo: Callable = print) -> dict:
    optuna = _optuna()
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
    url = setup.storage
    target = url[len("journal:"):] if url.startswith("journal:") else url
    echo(f"dashboard: optuna-dashboard {target}")
    return out


# ---- trials table and refit ---------------------------------------------------------------

def trials_table(ws: Workspace, name: str, storage: str | None = None):
    """A pandas DataFrame: number, state, score, decoded score, params..., seconds, path."""
    import pandas as pd

    config, url = load_config(ws, name, storage)
    study = _optuna().load_study(study_name=name, storage=open_storage(url))
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
    import shutil as _shutil

    from harness.train import predict_run, train_model

    config, url = load_config(ws, study_name, storage)
    study = _optuna().load_study(study_name=study_name, storage=open_storage(url))
    t = _pick_trial(study, trial)
    trial_dir = ws.studies / study_name / "trials" / f"{t.number:04d}"
    recipe = with_checkpoint(get_recipe(config["recipe"], ws.root), config.get("model_path"))
    run_config = _read_json(trial_dir / "config.json")
    params = dict(run_config.get("params") or {})
    if not params:  # folder gone: rebuild from the study
        params = recipe.params({**config["overrides"], **t.params}, task=comp.task)
        params.update(t.user_attrs.get("decoding") or {})
    params["metric"] = config["metric"]
    pooled = config["mode"] == "kfold" and config["pool_dev"]
    train, _, _ = load_data(comp, "kfold", pooled)
    dev = None
    if not pooled and comp.path("dev"):
        dev = [ex for ex in _examples(comp, "dev") if ex.labelled] or None
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
            _shutil.copyfile(source, tmp)
            os.replace(tmp, run_dir / "logits" / "oof.npz")
        if comp.path("test"):
            path = predict_run(run_dir, comp.examples("test"), "test", progress=progress)
            echo(f"  wrote {path}")
        runs.append(run_dir)
    return runs


# ---- plots (self-contained SVG; optuna.visualization when plotly is installed) --------------

def write_plots(study, folder: Path, metric: str) -> list[Path]:
    folder = Path(folder)
    out = []
    try:
        import plotly  # noqa: F401

        from optuna import visualization as vis

        vis.plot_optimization_history(study).write_html(str(folder / "history.html"))
        out.append(folder / "history.html")
        try:
            vis.plot_param_importances(study).write_html(str(folder / "importances.html"))
            out.append(folder / "importances.html")
        except (ValueError, RuntimeError):
            pass
        return out
    except ImportError:
        pass
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    atomic_write_text(folder / "history.html", _page(f"{study.study_name}: optimisation history",
                                                     _history_svg(trials, metric)))
    out.append(folder / "history.html")
    try:
        from optuna.importance import get_param_importances

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = get_param_importances(study)
        body = _bars_svg(importances) if importances else "<p>no varying parameter</p>"
    except (ValueError, RuntimeError, ImportError, ZeroDivisionError) as e:
        body = f"<p>parameter importances need at least two complete trials ({e})</p>"
    atomic_write_text(folder / "importances.html", _page(f"{study.study_name}: parameter importances", body))
    out.append(folder / "importances.html")
    return out


def _page(title: str, body: str) -> str:
    from html import escape

    return (f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<body style='font-family:sans-serif'><h3>{escape(title)}</h3>{body}</body>")


def _history_svg(trials, metric: str, w: int = 720, h: int = 360, m: int = 48) -> str:
    pts = [(t.number, t.value, t.state.name) for t in trials if t.value is not None and math.isfinite(t.value)]
    if not pts:
        return "<p>no finished trials yet</p>"
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 1, y1 + 1

    def X(x):
        return m + (x - x0) / (x1 - x0) * (w - 2 * m)

    def Y(y):
        return h - m - (y - y0) / (y1 - y0) * (h - 2 * m)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}'>",
             f"<line x1='{m}' y1='{h - m}' x2='{w - m}' y2='{h - m}' stroke='#444'/>",
             f"<line x1='{m}' y1='{m}' x2='{m}' y2='{h - m}' stroke='#444'/>",
             f"<text x='{w / 2}' y='{h - 10}' text-anchor='middle' font-size='12'>trial</text>",
             f"<text x='14' y='{h / 2}' font-size='12' transform='rotate(-90 14 {h / 2})' "
             f"text-anchor='middle'>{metric}</text>",
             f"<text x='{m - 4}' y='{Y(y1) + 4}' text-anchor='end' font-size='10'>{y1:.2f}</text>",
             f"<text x='{m - 4}' y='{Y(y0) + 4}' text-anchor='end' font-size='10'>{y0:.2f}</text>"]
    best, line = -math.inf, []
    for x, y, state in sorted(pts):
        if state == "COMPLETE":
            best = max(best, y)
        if best > -math.inf:
            line.append(f"{X(x):.1f},{Y(best):.1f}")
        color = "#1f77b4" if state == "COMPLETE" else "#bbb"
        parts.append(f"<circle cx='{X(x):.1f}' cy='{Y(y):.1f}' r='4' fill='{color}'><title>trial {x} {state} "
                     f"{y:.2f}</title></circle>")
    if line:
        parts.append(f"<polyline points='{' '.join(line)}' fill='none' stroke='#d62728'/>")
    parts.append("</svg><p>blue: complete trials, grey: pruned (last reported value), red: best so far</p>")
    return "".join(parts)


def _bars_svg(importances: dict, w: int = 720, row: int = 26) -> str:
    from html import escape

    h = row * len(importances) + 20
    top = max(importances.values()) or 1.0
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}'>"]
    for i, (name, v) in enumerate(importances.items()):
        y = 10 + i * row
        parts.append(f"<text x='150' y='{y + 15}' text-anchor='end' font-size='12'>{escape(name)}</text>")
        parts.append(f"<rect x='160' y='{y}' width='{(w - 260) * v / top:.1f}' height='{row - 8}' fill='#1f77b4'/>")
        parts.append(f"<text x='{165 + (w - 260) * v / top:.1f}' y='{y + 15}' font-size='12'>{v:.3f}</text>")
    parts.append("</svg>")
    return "".join(parts)
