"""What a search samples and how: sampler and pruner specs, and the recipe's search space.

* ``--sampler`` / ``--pruner`` take ``NAME`` or ``NAME(key=value, ...)`` (:func:`parse_spec`),
  NAME one of :data:`SAMPLERS` / :data:`PRUNERS`. Default pruning: median per epoch (dev mode),
  Wilcoxon across folds (k-fold; median when scipy is missing).
* A space maps a recipe parameter to ``["log"|"float"|"int", lo, hi(, step)]`` or
  ``["cat", [choices]]`` (:func:`check_space`); trial 0 of a new study is the recipe defaults
  restricted to the space (:func:`default_trial_params`).
"""

from __future__ import annotations

import ast
import copy

from harness.common.errors import HarnessError
from harness.common.names import unknown_hint
from harness.search.storage import import_optuna

SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "gp": "GPSampler", "qmc": "QMCSampler",
            "cmaes": "CmaEsSampler"}
PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner", "wilcoxon": "WilcoxonPruner",
           "threshold": "ThresholdPruner", "hyperband": "HyperbandPruner", "sha": "SuccessiveHalvingPruner",
           "successive_halving": "SuccessiveHalvingPruner", "none": "NopPruner", "nop": "NopPruner"}
DEFAULT_DEV_PRUNER = {"name": "median", "kwargs": {"n_startup_trials": 5, "n_warmup_steps": 1}}
DEFAULT_KFOLD_PRUNER = {"name": "wilcoxon", "kwargs": {"p_threshold": 0.1}}


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
    optuna = import_optuna()
    cls = getattr(optuna.samplers, SAMPLERS[spec["name"]])
    kwargs = dict(spec.get("kwargs") or {})
    kwargs.setdefault("seed", seed)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, ImportError, ModuleNotFoundError) as e:
        raise HarnessError(f"cannot build sampler {spec['name']}({kwargs}): {e}") from None


def make_pruner(spec: dict):
    optuna = import_optuna()
    cls = getattr(optuna.pruners, PRUNERS[spec["name"]])
    try:
        return cls(**(spec.get("kwargs") or {}))
    except (TypeError, ValueError) as e:
        raise HarnessError(f"cannot build pruner {spec['name']}({spec.get('kwargs')}): {e}") from None


def default_pruner(mode: str) -> dict:
    """The pruner of a study that names none: median per epoch (dev), Wilcoxon across folds (k-fold)."""
    pruner = copy.deepcopy(DEFAULT_DEV_PRUNER if mode == "dev" else DEFAULT_KFOLD_PRUNER)
    if pruner["name"] == "wilcoxon" and not _scipy_available():
        pruner = {"name": "median", "kwargs": {"n_startup_trials": 5, "n_warmup_steps": 0}}
    return pruner


def _scipy_available() -> bool:
    try:
        import scipy.stats  # noqa: F401
    except ImportError:
        return False
    return True


def check_space(space: dict, source: str = "search space") -> dict:
    """Validate ``{param: ["log"|"float"|"int", lo, hi(, step)] | ["cat", [choices]]}``: known parameters,
    well-formed entries, and every value the entry can produce allowed for the parameter."""
    from harness.config import PARAMS, SPECS, check_value

    if not isinstance(space, dict):
        raise HarnessError(f"{source}: expected a table of parameters, got {type(space).__name__}")
    out = {}
    for name, spec in space.items():
        if name not in SPECS:
            raise HarnessError(f"{source}: unknown parameter '{name}'", hint=unknown_hint(name, PARAMS, "parameters"))
        if not isinstance(spec, (list, tuple)) or not spec or spec[0] not in ("log", "float", "int", "cat"):
            raise HarnessError(f"{source}: bad entry {name} = {spec!r}",
                               hint='use ["log", lo, hi], ["float", lo, hi], ["int", lo, hi] or ["cat", [a, b]]')
        kind = spec[0]
        if kind == "cat":
            if len(spec) != 2 or not isinstance(spec[1], (list, tuple)) or not spec[1]:
                raise HarnessError(f"{source}: bad entry {name} = {spec!r}", hint='["cat", [choice, ...]]')
            for choice in spec[1]:
                check_value(name, choice, f"{source} {name}")
            out[name] = ["cat", list(spec[1])]
        else:
            numbers = spec[1:]
            if (len(spec) not in (3, 4) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    for v in numbers) or spec[1] > spec[2]):
                raise HarnessError(f"{source}: bad entry {name} = {spec!r}", hint=f'["{kind}", low, high]')
            if kind == "log" and spec[1] <= 0:
                raise HarnessError(f"{source}: {name}: a log range needs low > 0")
            if kind != "int" and SPECS[name][1].metadata["kind"] is int:
                raise HarnessError(f"{source}: {name} = {spec!r}: {name} is an integer",
                                   hint='["int", low, high] or ["cat", [...]]')
            if kind == "int" and (SPECS[name][1].metadata["kind"] is not int
                                  or not all(float(v).is_integer() for v in numbers)):
                raise HarnessError(f"{source}: {name} = {spec!r}: an int range needs an integer parameter and bounds")
            for bound in spec[1:3]:
                check_value(name, int(bound) if kind == "int" else bound, f"{source} {name}")
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
