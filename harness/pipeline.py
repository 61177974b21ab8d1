"""The verbs the CLI calls: train a run, predict a split, submit, run the demo.

Each takes a ``Competition`` (what data) and a ``Workspace`` (where results go) and returns
plain values; printing is the CLI's job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from harness.runs import atomic_write_text
from harness.competition import Competition
from harness.common.errors import HarnessError
from harness.recipes import Recipe, get_recipe, with_checkpoint
from harness.common.workspace import Workspace


def run_params(recipe: Recipe, comp: Competition, overrides: dict | None = None) -> dict:
    params = recipe.params(overrides, task=comp.task)
    params.setdefault("metric", comp.metric)
    if recipe.lang not in ("any", comp.lang):
        print(f"note: recipe {recipe.name} is for '{recipe.lang}' text but competition {comp.name} is '{comp.lang}'")
    return params


def train_run(comp: Competition, ws: Workspace, recipe_name: str, overrides: dict | None = None,
              model_path: str | None = None, name: str | None = None, use_dev: bool = True, progress: bool = True):
    """Train one run on the competition's train split (scored on dev when it has one)."""
    from harness.train.loop import train_model

    recipe = with_checkpoint(get_recipe(recipe_name, ws.root), model_path)
    params = run_params(recipe, comp, overrides)
    train = comp.examples("train")
    dev = comp.examples("dev") if use_dev and comp.path("dev") else None
    run_dir = ws.new_run_dir(name, recipe.name)
    return train_model(recipe, params, train, run_dir, dev_examples=dev, lang=comp.lang, progress=progress,
                       extra_config={"competition": comp.name}, task=comp.task)


def predict_split(comp: Competition, ws: Workspace, run: str, split: str = "test", progress: bool = True) -> Path:
    from harness.train.loop import predict_run

    examples = comp.examples(split)
    return predict_run(ws.run_dir(run), examples, split, progress=progress)


def _member_logits(comp: Competition, ws: Workspace, run_dir: Path, split: str, progress: bool, task):
    """A run's logits for a split, predicting them first when the run has none yet."""
    path = run_dir / "logits" / f"{split}.npz"
    if not path.exists():
        predict_split(comp, ws, str(run_dir), split, progress=progress)
    return task.load_logits(path)


def _validation_logits(run_dirs: Sequence[Path], task):
    """Each member's dev logits, else out-of-fold logits, when all members have the same kind."""
    for kind in ("dev", "oof"):
        paths = [d / "logits" / f"{kind}.npz" for d in run_dirs]
        if all(p.exists() for p in paths):
            return kind, [task.load_logits(p) for p in paths]
    return None, None


def _labelled(comp: Competition, ids: Sequence[str]) -> list:
    """The competition's labelled examples (train, dev) with these ids, in this order."""
    by_id = {}
    for split in ("train", "dev"):
        if comp.path(split):
            by_id.update({ex.id: ex for ex in comp.examples(split)})
    return [by_id[i] for i in ids if i in by_id and by_id[i].labelled]


def submit(comp: Competition, ws: Workspace, runs: Sequence[str], name: str | None = None, split: str = "test",
           weights: Sequence[float] | None = None, fit: str | None = None, agg: str = "max",
           space: str = "logprob", progress: bool = True) -> dict:
    """Ensemble one or more runs into ``submissions/NAME.csv`` (+ sidecar JSON) and ``result.csv``.

    One run goes through the same path (an ensemble of one predicts exactly what the single
    model predicts). Weights are equal, given, or fitted (``fit`` = "greedy" | "optuna") on the
    members' dev or out-of-fold logits; the validation figures go into the sidecar and the
    leaderboard, scored by the competition's task (EM/F1 for QA, accuracy/MCC/... for classification).
    """
    import shutil

    from harness.submission import write_submission
    from harness.tasks.base import get_task
    from harness.common.workspace import check_name

    task = get_task(comp.task)
    run_dirs = [ws.run_dir(r) for r in runs]
    name = check_name(name or "-".join(d.name for d in run_dirs)[:100])
    configs = [json.loads((d / "config.json").read_text()) for d in run_dirs]
    kinds = {c.get("task", "qa") for c in configs}
    if kinds != {task.kind}:
        raise HarnessError(f"runs of task(s) {sorted(kinds)} cannot be submitted to a {task.kind} competition")
    params, info = configs[0]["params"], configs[0].get("label_info") or {}
    if weights is not None and len(weights) != len(runs):
        raise HarnessError(f"{len(weights)} weights for {len(runs)} runs")
    kind, val_members = _validation_logits(run_dirs, task)
    val_examples = _labelled(comp, val_members[0].example_ids) if val_members else []
    report = {}
    if fit:
        if not val_examples:
            raise HarnessError("cannot fit weights: the runs have no common dev or out-of-fold logits",
                               hint="train with a dev split, or refit trials of a k-fold search")
        weights, report = task.fit_weights(val_members, val_examples, comp.metric, fit, params, agg, space)
        weights = [float(w) for w in weights]
    weights = list(weights) if weights is not None else [1.0] * len(runs)
    val_preds, val_scores = None, None
    if val_examples:
        val_preds = task.ensemble(val_members, val_examples, weights, params, agg, space)
        val_scores = task.score(val_preds, val_examples, info)
    examples = comp.examples(split)
    members = [_member_logits(comp, ws, d, split, progress, task) for d in run_dirs]
    preds = task.ensemble(members, examples, weights, params, agg, space)
    written = {k: comp.label_map.get(str(v), v) for k, v in preds.items()} if comp.label_map else preds
    path = write_submission(ws.submissions / f"{name}.csv", written, [ex.id for ex in examples],
                            id_column=comp.id_column, answer_column=comp.answer_column,
                            strip_commas=comp.strip_commas)
    test_gold = comp.examples("test_gold") if split == "test" and comp.path("test_gold") else None
    sidecar = {"name": name, "competition": comp.name, "task": task.kind, "split": split,
               "members": [str(d) for d in run_dirs], "weights": weights, "fit": fit, "agg": agg, "space": space,
               "decoding": {k: params[k] for k in ("max_answer_length", "n_best")} if task.kind == "qa" else None,
               "validation": None if val_scores is None else
               {"kind": kind, **val_scores, "n": len([ex for ex in val_examples if ex.labelled])},
               "fit_report": _jsonable(report)}
    test_scores = task.score(preds, test_gold, info) if test_gold and any(ex.labelled for ex in test_gold) else None
    sidecar["test"] = test_scores
    atomic_write_text(ws.submissions / f"{name}.json", json.dumps(sidecar, indent=2, ensure_ascii=False))
    shutil.copyfile(path, ws.result_csv)
    task.record(ws, name, [d.name for d in run_dirs], val_preds, val_examples or None,
                preds if test_gold else None, test_gold, {"weights": weights, "kind": kind}, info, comp.metric)
    return {"csv": path, "result": ws.result_csv, "n": len(examples), "sidecar": sidecar}


def _jsonable(value):
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _demo_spec(task: str) -> dict:
    """What differs between the built-in demos: name, generator, layout, language, scorer."""
    if task == "classification":
        from harness.tasks.clf.demo import generate_clf_demo
        from harness.scoring import score_label_file

        return {"name": "demo-clf", "generate": generate_clf_demo, "layout": "csv", "lang": "en",
                "unit": "reviews", "score": score_label_file, "flags": " --task classification"}
    from harness.tasks.qa.demo import generate_demo
    from harness.scoring import score_file

    return {"name": "demo", "generate": generate_demo, "layout": "hw7", "lang": "zh", "unit": "questions",
            "score": score_file, "flags": ""}


def run_demo(ws: Workspace, recipe: str = "tiny", overrides: dict | None = None, seed: int = 0,
             progress: bool = True, echo=print, task: str = "qa") -> dict:
    """Generate a demo competition into the workspace, train, predict test, submit, and score the
    written CSV against the generated test labels. ``task``: the Chinese reading-comprehension
    demo ("qa") or the 3-class review one ("classification").

    Returns ``{"run", "dev": best dev scores, "test": the CSV's test scores, "result", "csv"}``.
    """
    from harness.competition import FILENAME, init_competition, load_competition

    spec = _demo_spec(task)
    existing = ws.root / FILENAME
    if existing.exists() and load_competition(existing).name != spec["name"]:
        raise HarnessError(f"{existing} declares another competition",
                           hint=f"run the demo in an empty folder: `harness -w {spec['name']}-ws demo{spec['flags']}`")
    data_dir = ws.root / "data" / spec["name"]
    files = spec["generate"](data_dir, seed=seed)
    comp = init_competition(spec["name"], ws.root, str(files["train"]), str(files["dev"]), str(files["test"]),
                            str(files["test_gold"]), layout=spec["layout"], lang=spec["lang"], task=task)
    echo(f"{spec['name']} competition: {len(comp.examples('train'))} train / {len(comp.examples('dev'))} dev / "
         f"{len(comp.examples('test'))} test {spec['unit']} in {data_dir}")
    result = train_run(comp, ws, recipe, overrides, name=None, progress=progress)
    out = submit(comp, ws, [str(result.run_dir)], name=f"{spec['name']}-{recipe}", progress=progress)
    report = spec["score"](out["csv"], comp.examples("test_gold"), comp.id_column, comp.answer_column)
    return {"run": result.run_dir, "dev": result.best, "test": report.scores, "result": out["result"],
            "csv": out["csv"]}
