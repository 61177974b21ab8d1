"""`harness search` / `trials` / `refit`: dev and grouped k-fold studies, pruning, resume after
SIGKILL, several workers on one journal, decoding-only tuning.

The training tests use the offline ``tiny`` recipe on a 200/60/30-question demo competition,
one thread, ``epochs=1`` and ``max_steps=6``: a trial takes a few seconds. At that budget EM/F1
are noise, so the tests check the machinery (objective = best epoch, trial 0 = the recipe
defaults, OOF coverage, pruning, recovery), not that searching finds a good model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.common.errors import HarnessError
from harness.common.workspace import Workspace
from harness.folds import group_keys, grouped_folds
from harness.search.space import PRUNERS, SAMPLERS, check_space, parse_spec
from harness.search.storage import load_study, resolve_storage, worker_alive, worker_identity
from harness.tasks.qa.example import Example
from harness.tasks.qa.tune import decoding_grid, tune_decoding

FAST = ["--set", "epochs=1", "--set", "max_steps=6", "--set", "batch_size=16", "--metric", "f1", "--quiet"]


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on a shared 2-core box two threads are several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ws(tmp_path_factory, one_thread) -> Path:
    from harness.competition import init_competition
    from harness.tasks.qa.demo import generate_demo

    root = tmp_path_factory.mktemp("search-ws")
    p = generate_demo(root / "data", seed=0, n_train=200, n_dev=60, n_test=30)
    init_competition("demo", root, str(p["train"]), str(p["dev"]), str(p["test"]), str(p["test_gold"]),
                     layout="hw7", lang="zh")
    return root


def invoke(ws: Path, *args: str):
    result = CliRunner().invoke(main, ["-w", str(ws), "-c", str(ws), *args], catch_exceptions=False)
    return result


def sub_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return env


def harness_cmd(ws: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())",
            "-w", str(ws), "-c", str(ws), *args]


def states(study) -> dict[int, str]:
    return {t.number: t.state.name for t in study.get_trials(deepcopy=False)}


# ---- fast unit tests ------------------------------------------------------------------------

def _ex(i: int, group: str, context: str | None = None) -> Example:
    return Example(id=str(i), question=f"q{i}", context=context or f"context of {group}", answers=("a",),
                   answer_starts=(0,), group=group)


def test_grouped_folds_keep_groups_whole_and_balance():
    rng = np.random.default_rng(0)
    examples, i = [], 0
    for g in range(40):
        for _ in range(int(rng.integers(1, 9))):
            examples.append(_ex(i, f"p{g}"))
            i += 1
    folds = grouped_folds(examples, 5, seed=3)
    assert set(folds.tolist()) == set(range(5))
    for g in {ex.group for ex in examples}:
        assert len({int(folds[j]) for j, ex in enumerate(examples) if ex.group == g}) == 1
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= 8  # greedy by size: within one group of each other
    assert (grouped_folds(examples, 5, seed=3) == folds).all()  # deterministic
    with pytest.raises(HarnessError):
        grouped_folds(examples[:3], 5)


def test_group_keys_merge_same_context_across_splits():
    a = _ex(0, "0", context="shared paragraph")
    b = _ex(0, "0", context="shared paragraph")  # the dev file numbers its paragraphs from 0 too
    c = _ex(1, "1", context="train only")
    d = _ex(1, "1", context="dev only")
    keys = group_keys([a, c, b, d], ["train", "train", "dev", "dev"])
    assert keys[0] == keys[2]  # same context: one group
    assert len({keys[0], keys[1], keys[3]}) == 3  # same paragraph number in two files: two groups


def test_specs_and_space_validation():
    from harness.recipes import get_recipe

    assert parse_spec("median(n_startup_trials=1, n_warmup_steps=0)", PRUNERS, "pruner") == \
        {"name": "median", "kwargs": {"n_startup_trials": 1, "n_warmup_steps": 0}}
    assert parse_spec("tpe", SAMPLERS, "sampler") == {"name": "tpe", "kwargs": {}}
    for bad in ("nope", "median(1)", "median(x=foo)"):
        with pytest.raises(HarnessError):
            parse_spec(bad, PRUNERS, "pruner")
    tiny = get_recipe("tiny")
    assert check_space({"lr": ("log", 1e-5, 1e-3), "batch_size": ["cat", (16, 32)]}, tiny) == \
        {"lr": ["log", 1e-5, 1e-3], "batch_size": ["cat", [16, 32]]}
    for bad in ({"nope": ["log", 1, 2]}, {"lr": ["log", 0, 1]}, {"lr": ["cat", []]}, {"lr": ["float", 2, 1]}):
        with pytest.raises(HarnessError):
            check_space(bad, tiny)


def test_storage_choice(tmp_path):
    d = tmp_path / "studies" / "s"
    assert resolve_storage(d, None, 1, echo=lambda *_: None) == f"sqlite:///{d / 'study.db'}"
    notes = []
    assert resolve_storage(d, None, 2, echo=notes.append) == f"journal:{d / 'journal.log'}"
    assert "SQLite" in notes[0]
    assert resolve_storage(d, "postgresql://h/db", 4, echo=lambda *_: None) == "postgresql://h/db"


def test_worker_liveness():
    me = worker_identity()
    assert worker_alive(me) is True
    assert worker_alive({**me, "start": "1"}) is False  # same pid, another process (pid reuse)
    assert worker_alive({**me, "host": "elsewhere"}) is None
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert worker_alive({"host": me["host"], "pid": p.pid, "start": None}) is False
    assert worker_alive(None) is False


# ---- dev search -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dev_study(ws):
    t0 = time.time()
    result = invoke(ws, "search", "-r", "tiny", "--trials", "6", *FAST)
    assert result.exit_code == 0, result.output
    print(f"6-trial dev search: {time.time() - t0:.0f} s")
    return result


@pytest.mark.slow
def test_dev_search_best_is_at_least_the_defaults(ws, dev_study):
    from harness.competition import load_competition
    from harness.config import resolve
    from harness.recipes import get_recipe
    from harness.train.loop import fit

    study = load_study(Workspace(ws), "tiny-dev")
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 6
    assert "best: trial" in dev_study.output
    t0 = study.trials[0]
    # trial 0 is the recipe defaults (enqueued when the study was created) ...
    recipe = get_recipe("tiny")
    comp = load_competition(ws)
    cfg = resolve(recipe, comp.kind, lang=comp.lang, metric="f1",
                  overrides={"epochs": 1, "max_steps": 6, "batch_size": 16})
    params = cfg.flat()
    assert t0.user_attrs.get("defaults") is True
    assert t0.params == {k: params[k] for k in t0.params}
    assert set(t0.params) == {"lr", "warmup_ratio", "weight_decay", "doc_stride"}  # decoding + --set not sampled
    # ... so the best trial is at least what the defaults score on the same data
    ref = fit(comp.kind, recipe, cfg, comp.examples("train"), ws / "runs" / "defaults",
              dev_examples=comp.examples("dev"), progress=False, echo=None)
    assert study.best_value >= ref.best["f1"] - 1e-9
    assert t0.value == pytest.approx(ref.best["f1"])  # the objective is the best epoch's score
    # trial folders: run-like (config.json), dev logits, models only for the top --keep 3
    trial_dirs = sorted((ws / "studies" / "tiny-dev" / "trials").iterdir())
    assert [d.name for d in trial_dirs] == [f"{t.number:04d}" for t in done if t.state.name == "COMPLETE"]
    for d in trial_dirs:
        assert (d / "config.json").exists() and (d / "metrics.json").exists() and (d / "logits" / "dev.npz").exists()
    assert sum((d / "model").exists() for d in trial_dirs) == min(3, len(trial_dirs))
    assert (ws / "studies" / "tiny-dev" / "trials" / f"{study.best_trial.number:04d}" / "model").exists()
    assert (ws / "studies" / "tiny-dev" / "history.html").exists()
    assert (ws / "studies" / "tiny-dev" / "importances.html").exists()
    # a trial folder is a run: `harness predict --run studies/NAME/trials/NNNN`
    best_dir = f"studies/tiny-dev/trials/{study.best_trial.number:04d}"
    r = invoke(ws, "predict", "--run", str(ws / best_dir), "--data", "test")
    assert r.exit_code == 0, r.output
    assert (ws / best_dir / "logits" / "test.npz").exists()


@pytest.mark.slow
def test_resume_refuses_a_changed_configuration(ws, dev_study):
    r = invoke(ws, "search", "-r", "tiny", "--trials", "6", *FAST[:-3], "--set", "epochs=2", "--metric", "f1")
    assert r.exit_code == 2
    assert "another configuration" in r.output and "overrides" in r.output and "--new" in r.output
    r = invoke(ws, "search", "--study", "tiny-dev", "--folds", "3")
    assert r.exit_code == 2 and "mode" in r.output
    # the same command again: the study already has its 6 trials, nothing is retrained
    n = len(load_study(Workspace(ws), "tiny-dev").trials)
    r = invoke(ws, "search", "-r", "tiny", "--trials", "6", *FAST)
    assert r.exit_code == 0, r.output
    assert "resuming study 'tiny-dev'" in r.output
    assert len(load_study(Workspace(ws), "tiny-dev").trials) == n


@pytest.mark.slow
def test_tune_decoding_on_saved_logits(ws, dev_study):
    from harness.competition import load_competition
    from harness.tasks.qa.logits import load_logits

    study = load_study(Workspace(ws), "tiny-dev")
    best = study.best_trial
    logits = load_logits(ws / "studies" / "tiny-dev" / "trials" / f"{best.number:04d}" / "logits" / "dev.npz")
    dev = load_competition(ws).examples("dev")
    base = {"max_answer_length": 20, "n_best": 20, "null_threshold": None}
    out = tune_decoding(logits, dev, {"max_answer_length": [5, 10, 20, 40], "null_threshold": [None, "auto"]},
                        "f1", base)
    assert out[out["metric"]] >= out["base"]["f1"]
    assert out["params"]["max_answer_length"] in (5, 10, 20, 40)
    assert best.user_attrs["decoded_f1"] >= best.value - 1e-9  # tuned after every trial, >= the trained decoding
    assert decoding_grid({}, {"max_answer_length": 20, "max_length": 128}, dev) == \
        {"max_answer_length": [10, 20, 30, 50, 100]}
    with pytest.raises(HarnessError):
        tune_decoding(logits, dev[1:], {}, "f1")


@pytest.mark.slow
def test_trials_and_refit_cli(ws, dev_study):
    r = invoke(ws, "trials", "--study", "tiny-dev")
    assert r.exit_code == 0, r.output
    assert "COMPLETE" in r.output and "studies/tiny-dev/trials/0000" in r.output and "lr" in r.output
    assert "recipe defaults" in r.output
    study = load_study(Workspace(ws), "tiny-dev")
    b = study.best_trial.number
    r = invoke(ws, "refit", "--trial", "best", "--study", "tiny-dev", "--quiet")
    assert r.exit_code == 0, r.output
    run = ws / "runs" / f"tiny-dev-t{b}-s42"
    for f in ("config.json", "metrics.json", "logits/test.npz", "model", "COMPLETE"):
        assert (run / f).exists(), f
    assert not (run / "logits" / "dev.npz").exists()  # trained on train + dev: nothing held out
    config = json.loads((run / "config.json").read_text())
    assert config["study"] == "tiny-dev" and config["trial"] == b and config["refit"] is True
    assert config["training"]["lr"] == pytest.approx(study.best_trial.params["lr"])
    assert config["training"]["epochs"] == study.best_trial.user_attrs["best_epoch"]
    assert config["validation_logits"].endswith(f"trials/{b:04d}/logits/dev.npz")
    from harness.competition import load_competition

    comp = load_competition(ws)
    assert config["n_train"] == len(comp.examples("train")) + len(comp.examples("dev"))
    r = invoke(ws, "refit", "--trial", "best", "--study", "tiny-dev", "--quiet")  # idempotent
    assert r.exit_code == 0 and "exists: skipped" in r.output
    r = invoke(ws, "refit", "--trial", "99", "--study", "tiny-dev")
    assert r.exit_code == 2 and "no trial 99" in r.output
    r = invoke(ws, "trials", "--sort")
    assert r.exit_code == 0 and "study 'tiny-dev'" in r.output  # the only study so far: no --study needed


# ---- k-fold ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_kfold_search_oof_covers_every_example_once(ws):
    from harness.competition import load_competition
    from harness.search.data import load_data
    from harness.tasks.qa.logits import load_logits

    t0 = time.time()
    r = invoke(ws, "search", "-r", "tiny", "--study", "kf", "--folds", "3", "--pool-dev", "--trials", "1", *FAST)
    assert r.exit_code == 0, r.output
    print(f"3-fold search, 1 trial: {time.time() - t0:.0f} s")
    study = load_study(Workspace(ws), "kf")
    t = study.trials[0]
    assert t.state.name == "COMPLETE"
    assert sorted(t.intermediate_values) == [0, 1, 2]  # one report per fold
    assert t.value == pytest.approx(np.mean(t.user_attrs["fold_scores"]))
    comp = load_competition(ws)
    pooled, _, splits = load_data(comp, "kfold", True)
    assert len(pooled) == len(comp.examples("train")) + len(comp.examples("dev"))
    oof = load_logits(ws / "studies" / "kf" / "trials" / "0000" / "logits" / "oof.npz")
    ids = oof.example_ids
    assert ids == [ex.id for ex in pooled] and len(set(ids)) == len(ids)  # dev ids made unique ("dev:N")
    w = oof.windows
    assert set(w.example_index.tolist()) == set(range(len(pooled)))  # every example has windows
    for i in range(len(pooled)):  # ... from one fold only: no window twice
        starts = [int(w.offsets[j][w.offsets[j][:, 0] >= 0][0, 0]) for j in np.flatnonzero(w.example_index == i)]
        assert len(starts) == len(set(starts))
    fold_of = np.asarray(oof.meta["fold_of"])
    keys = group_keys(pooled, splits)
    for g in set(keys):  # folds never split a group
        assert len({int(fold_of[i]) for i in range(len(pooled)) if keys[i] == g}) == 1
    assert set(fold_of.tolist()) == {0, 1, 2}
    # the OOF logits decode to the pooled answers: their score is recorded
    assert "oof_f1" in t.user_attrs and "decoded_f1" in t.user_attrs
    assert not (ws / "studies" / "kf" / "trials" / "0000" / "folds" / "0" / "model").exists()


# ---- pruning --------------------------------------------------------------------------------

@pytest.mark.slow
def test_pruning_fires_on_a_bad_space(ws):
    # lr in [1e-9, 1e-8] leaves the model at its random init; a trial under F1 50 after its
    # first epoch (of 2) is stopped. The defaults (lr 2e-3) lie outside this space: not enqueued.
    r = invoke(ws, "search", "-r", "tiny", "--study", "bad", "--trials", "2", "--space", 'lr=["log",1e-9,1e-8]',
               "--pruner", "threshold(lower=50.0)", "--set", "epochs=2", "--set", "max_steps=6",
               "--set", "batch_size=16", "--metric", "f1", "--quiet")
    assert r.exit_code == 0, r.output
    study = load_study(Workspace(ws), "bad")
    assert [t.state.name for t in study.trials] == ["PRUNED"] * 2
    for t in study.trials:
        assert list(t.intermediate_values) == [1]  # stopped after epoch 1 of 2
        assert 1e-9 <= t.params["lr"] <= 1e-8
    assert r.output.count("PRUNED") == 2
    trials_dir = ws / "studies" / "bad" / "trials"
    assert not trials_dir.exists() or not any(trials_dir.iterdir())  # nothing left of pruned trials


# ---- crash safety ---------------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_then_resume_loses_nothing(ws):
    args = ["search", "-r", "tiny", "--study", "kill", "--trials", "2", *FAST]
    trials_dir = ws / "studies" / "kill" / "trials"
    proc = subprocess.Popen(harness_cmd(ws, *args), env=sub_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 180
    try:
        while not ((trials_dir / "0000").exists() and any(trials_dir.glob(".0001.partial-*"))):
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "the first trial did not finish in time"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    study = load_study(Workspace(ws), "kill")
    before = {t.number: t for t in study.get_trials(deepcopy=True)}
    assert states(study) == {0: "COMPLETE", 1: "RUNNING"}
    r = invoke(ws, *args)
    assert r.exit_code == 0, r.output
    assert "trial 1: left RUNNING by a dead worker" in r.output
    study = load_study(Workspace(ws), "kill")
    after = {t.number: t for t in study.get_trials(deepcopy=True)}
    assert states(study) == {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE"}
    # the finished trial is kept as it was, not rerun
    assert after[0].value == before[0].value and after[0].datetime_complete == before[0].datetime_complete
    # the dead trial's parameters ran again, as trial 2
    assert after[1].user_attrs.get("requeued") is True
    assert after[2].params == before[1].params and after[2].user_attrs.get("retry_of") == 1
    assert sorted(p.name for p in trials_dir.iterdir()) == ["0000", "0002"]


@pytest.mark.slow
def test_two_workers_share_one_journal(ws):
    t0 = time.time()
    r = invoke(ws, "search", "-r", "tiny", "--study", "par", "--trials", "4", "--n-jobs", "2", *FAST)
    assert r.exit_code == 0, r.output
    print(f"--n-jobs 2, 4 trials: {time.time() - t0:.0f} s")
    assert "journal" in r.output
    assert (ws / "studies" / "par" / "journal.log").exists() and not (ws / "studies" / "par" / "study.db").exists()
    study = load_study(Workspace(ws), "par")
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == 4
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    print("trials per worker:", {p: sum(t.user_attrs["worker"]["pid"] == p for t in trials) for p in pids})
    assert len(pids) == 2, f"one worker did all trials: {pids}"
    dirs = sorted(p.name for p in (ws / "studies" / "par" / "trials").iterdir())
    assert dirs == [f"{t.number:04d}" for t in trials if t.state.name == "COMPLETE"]


# ---- recovery bookkeeping (no training) -------------------------------------------------------

def test_recovery_of_dead_running_trials(ws):
    from harness.competition import load_competition
    from harness.search.setup import prepare_search
    from harness.search.space import suggest
    from harness.search.storage import recover_dead_trials, study_lock

    comp, workspace = load_competition(ws), Workspace(ws)
    setup, created = prepare_search(comp, workspace, recipe="tiny", study="rec", overrides={"epochs": 1},
                                    echo=lambda *_: None)
    assert created
    study = setup.load_study()
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    dead = {"host": worker_identity()["host"], "pid": p.pid, "start": None}
    workers = [dead, worker_identity(), {"host": "elsewhere", "pid": 1}, dead]
    asked = []
    for info in workers:
        t = study.ask()
        suggest(t, setup.config["space"])
        t.set_user_attr("worker", info)
        asked.append(t)
    assert asked[0].user_attrs.get("defaults") is True  # trial 0: the enqueued recipe defaults
    setup.partial_dir(0).mkdir(parents=True)
    # trial 3 finished its folder (renamed into place) but died before telling Optuna
    setup.trial_dir(3).mkdir(parents=True)
    (setup.trial_dir(3) / "trial.json").write_text(json.dumps({"value": 12.5, "user_attrs": {"em": 1.0}}))
    notes = []
    with study_lock(setup.study_dir):
        handled = recover_dead_trials(setup, notes.append)
    assert handled == [0, 3]
    assert any("elsewhere" in n for n in notes)
    trials = load_study(workspace, "rec").get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "RUNNING", "COMPLETE", "WAITING"]
    assert trials[3].value == 12.5 and trials[3].user_attrs["em"] == 1.0
    assert trials[4].user_attrs == {"retry_of": 0, "defaults": True}
    assert trials[4].system_attrs["fixed_params"] == trials[0].params  # re-queued with its parameters
    assert not setup.partial_dir(0).exists()
    with study_lock(setup.study_dir):  # a second pass (another worker) changes nothing
        assert recover_dead_trials(setup, notes.append) == []
    # a contradicting command is refused; --new archives the old study and starts over
    with pytest.raises(HarnessError, match="another configuration"):
        prepare_search(comp, workspace, recipe="tiny", study="rec", overrides={"epochs": 2}, echo=lambda *_: None)
    setup2, created = prepare_search(comp, workspace, recipe="tiny", study="rec", overrides={"epochs": 2}, new=True,
                                     echo=lambda *_: None)
    assert created and [t.state.name for t in load_study(workspace, "rec").trials] == ["WAITING"]
    archived = [d for d in (ws / "studies").iterdir() if d.name.startswith("rec.old-")]
    assert len(archived) == 1 and (archived[0] / "study.db").exists()


def test_trials_sort_puts_the_best_complete_trial_first(tmp_path, monkeypatch):
    # `harness trials --sort` ranks by the objective: complete trials first (highest score), then
    # pruned and failed ones; not by any other column (it once sorted by the state column)
    import pandas as pd

    import harness.search.results as results
    import harness.search.storage as storage

    df = pd.DataFrame({"number": [0, 1, 2, 3, 4, 5], "name": ["s/t0", "", "s/t2", "s/t3", "", "s/t5"],
                       "state": ["COMPLETE", "PRUNED", "COMPLETE", "COMPLETE", "FAIL", "COMPLETE"],
                       "accuracy": [83.25, 90.0, 85.25, 84.0, None, 85.25], "lr": [2e-4, 3e-4, 1.9e-4, 1e-4, 5e-4, 1e-4]})
    df.attrs["metric"] = "accuracy"
    monkeypatch.setattr(results, "trials_table", lambda ws, name, storage=None: df)
    monkeypatch.setattr(storage, "find_study", lambda ws, study: "s")
    r = CliRunner().invoke(main, ["-w", str(tmp_path), "trials", "--sort"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = [ln.split() for ln in r.output.splitlines()[2:]]
    assert [int(row[0]) for row in rows] == [2, 5, 3, 0, 1, 4]
    r = CliRunner().invoke(main, ["-w", str(tmp_path), "trials"], catch_exceptions=False)
    assert [int(ln.split()[0]) for ln in r.output.splitlines()[2:]] == [0, 1, 2, 3, 4, 5]
