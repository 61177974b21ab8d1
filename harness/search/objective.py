"""One search trial: sample, train and score it (dev mode: epochs reported to the pruner; k-fold:
folds reported, out-of-fold logits merged), tune decoding on its logits, and commit its run folder."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from harness.common.io import atomic_write_json, read_json
from harness.config import RunConfig
from harness.runs import CONFIG, METRICS, MODEL, TRIAL_RECORD, Run, RunBuilder, trial_ref
from harness.search.setup import SearchSetup
from harness.search.space import (
    suggest,
)
from harness.search.storage import (
    import_optuna,
)
from harness.train.memory import free_memory

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
            attrs.update(best_epoch=result.best_epoch, **result.best, prepare_s=round(result.prepare_s, 3),
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
        fold_info.append({"fold": f, "n": len(held), "best_epoch": result.best_epoch, **result.best,
                          "prepare_s": round(result.prepare_s, 3)})
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
    attrs = {"fold_scores": scores, "folds": fold_info, "prepare_s": round(sum(fi["prepare_s"] for fi in fold_info), 3), **{f"oof_{m}": v for m, v in oof_scores.items()}}
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


