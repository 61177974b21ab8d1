"""The worker loop (ask a new configuration, run the trial, tell the result), the extra worker
processes of ``--n-jobs``, and ``harness search`` itself (:func:`run_search`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Callable

from harness.common.errors import HarnessError
from harness.common.workspace import Workspace
from harness.competition import Competition
from harness.search.objective import keep_top_models, run_trial
from harness.search.plots import write_plots
from harness.search.setup import SearchSetup, open_setup, prepare_search
from harness.search.storage import (
    StorageLost,
    ask_new_trial,
    dashboard_target,
    import_optuna,
    open_storage,
    study_lock,
    worker_identity,
)
from harness.train.loop import TrainingDiverged
from harness.train.memory import clear_frames, free_memory

DEFAULT_TRIALS = 20
MAX_CONSECUTIVE_FAILURES = 3


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
                trial.set_user_attr("diverged", True)  # tried: never drawn again (see storage._trial_key)
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
                [sys.executable, "-c", "import sys; from harness.search.workers import worker_main; worker_main(sys.argv[1])",
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


def finish_search(setup: SearchSetup, plots: bool = True, echo: Callable = print) -> dict:
    optuna = import_optuna()
    study = optuna.load_study(study_name=setup.name, storage=open_storage(setup.storage))
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    duplicate = [t.state == TrialState.FAIL and t.user_attrs.get("duplicate_of") is not None for t in trials]
    counts = {s.name: sum(t.state == s and not d for t, d in zip(trials, duplicate)) for s in TrialState}
    counts["DUPLICATE (refused)"] = sum(duplicate)
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
