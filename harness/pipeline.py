"""The verbs the CLI calls: train a run, predict a split, submit (and record on the board), score a
file, run the demo.

Each takes a ``Competition`` (what data) and a ``Workspace`` (where results go) and returns plain
values; printing is the CLI's job (``echo``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from harness.common.errors import HarnessError
from harness.common.io import atomic_write, atomic_write_json, storage_error
from harness.common.names import check_name
from harness.common.workspace import Workspace
from harness.competition import Competition
from harness.config import RunConfig, resolve
from harness.recipes import Recipe, get_recipe, with_checkpoint
from harness.runs import MODEL, RunBuilder, find_run, new_run_path

PENDING_RESULT = ".result.csv.pending"


# ---- configuration and language ------------------------------------------------------------

def run_config(comp: Competition, ws: Workspace, recipe_name: str, overrides: Mapping | None = None,
               model_path: str | None = None, echo: Callable | None = print) -> tuple[Recipe, RunConfig]:
    """The recipe and the one resolved configuration of a run on ``comp`` (all checks done here)."""
    recipe = with_checkpoint(get_recipe(recipe_name, ws.root), model_path)
    cfg = resolve(recipe, comp.kind, lang=comp.lang, metric=comp.metric, overrides=overrides)
    if echo and recipe.lang not in ("any", comp.lang):
        echo(f"note: recipe {recipe.name} is for '{recipe.lang}' text but competition {comp.name} is '{comp.lang}'")
    return recipe, cfg


def check_language(comp: Competition, examples: Sequence, echo: Callable | None = print) -> None:
    """Warn when the competition's declared language contradicts its text."""
    from harness.common.lang import detect_language

    found, share = detect_language(comp.kind.texts(list(examples)[:2000]))
    if echo and found != comp.lang:
        echo(f"warning: competition {comp.name} declares lang = \"{comp.lang}\" but its training text looks "
             f"{'Chinese' if found == 'zh' else 'English'} ({100 * share:.0f}% of the letters are CJK): metrics and "
             f"windows follow the declared language; set lang = \"{found}\" in {comp.root / 'competition.toml'} "
             "if that is wrong")


# ---- train, predict ---------------------------------------------------------------------------

def train_run(comp: Competition, ws: Workspace, recipe_name: str, overrides: Mapping | None = None,
              model_path: str | None = None, name: str | None = None, use_dev: bool = True, progress: bool = True,
              echo: Callable | None = print):
    """Train one run on the competition's train split (scored on dev when it has one); the run
    appears under ``runs/`` only once it is complete.

    Under ``accelerate launch --num_processes N`` every process calls this: they train data-parallel
    (:mod:`harness.train.loop`), the main process chooses the run name and alone builds, prints and
    commits the one run folder; the others print nothing and get the same result."""
    from harness.train.loop import Launch, fit

    launch = Launch()
    echo = echo if launch.is_main else None
    recipe, cfg = run_config(comp, ws, recipe_name, overrides, model_path, echo)
    train = comp.examples("train")
    if not train:
        raise HarnessError(f"the train split of {comp.name} holds no examples")
    check_language(comp, train, echo)
    dev = comp.examples("dev") if use_dev and comp.path("dev") else None

    def choose() -> str:
        ws.sweep()
        return str(new_run_path(ws.runs, name, recipe.name))

    final = launch.decide(choose, barrier=False)  # one name on every process (a timestamp may differ)
    with RunBuilder(final, group=launch if launch.n > 1 else None) as build:
        result = fit(comp.kind, recipe, cfg, train, build.path, dev_examples=dev, progress=progress, echo=echo,
                     cache_dir=ws.cache, extra={"competition": comp.name})
        result.run = build.commit(require=_required(dev is not None, True))
    result.run_dir = result.run.path
    return result


def _required(has_dev: bool, has_model: bool) -> list[str]:
    """What a run must hold to be complete: config, metrics, and the weights + tokenizer and dev
    logits it promised."""
    parts = ["config.json", "metrics.json"]
    if has_model:
        parts += [f"{MODEL}/config.json", f"{MODEL}/tokenizer_config.json"]
    if has_dev:
        parts.append("logits/dev.npz")
    return parts


def predict_split(comp: Competition, ws: Workspace, run: str, split: str = "test", progress: bool = True) -> Path:
    from harness.train.predict import predict_run

    return predict_run(find_run(ws, run), comp.kind, comp.examples(split), split, progress=progress,
                       cache_dir=ws.cache)


# ---- submit -----------------------------------------------------------------------------------

def _labelled(comp: Competition, ids: Sequence[str]) -> list:
    """The competition's labelled examples (train, dev) with these ids, in this order (``dev:`` ids are
    dev's under a pooled k-fold study)."""
    by_id = {}
    for split in ("train", "dev"):
        if comp.path(split):
            for ex in comp.examples(split):
                by_id[ex.id] = ex
                if split == "dev":
                    by_id.setdefault(f"dev:{ex.id}", ex)
    out = []
    for q in ids:
        ex = by_id.get(q)
        if ex is not None and ex.labelled:
            out.append(ex if ex.id == q else _renamed(ex, q))
    return out


def _renamed(ex, new_id: str):
    from dataclasses import replace

    return replace(ex, id=new_id)


def check_options(task, options: Mapping | None) -> dict:
    """Ensemble options the task takes (``agg``, ``space``), defaults filled in; others refused."""
    out = {}
    for key, value in (options or {}).items():
        if value is None:
            continue
        allowed = task.ensemble_options.get(key)
        if allowed is None:
            raise HarnessError(f"--{key} does not apply to a {task.kind} competition",
                               hint=f"options: {', '.join(task.ensemble_options) or 'none'}")
        if value not in allowed:
            raise HarnessError(f"--{key} {value!r}: one of {', '.join(allowed)}")
        out[key] = value
    return {k: v[0] for k, v in task.ensemble_options.items()} | out


def submit(comp: Competition, ws: Workspace, runs: Sequence[str], name: str | None = None, split: str = "test",
           weights: Sequence[float] | None = None, fit: str | None = None, options: Mapping | None = None,
           progress: bool = True) -> dict:
    """Ensemble one or more runs (or trials, ``STUDY/tN``) into a submission and record it on the board.

    ``split="test"``: ``submissions/NAME.csv``, copied to ``result.csv`` (the file to upload) in step
    with the board entry. ``split="dev"``: ``submissions/NAME.dev.csv``, marked as a dev submission on
    the board; ``result.csv`` is left alone. One run goes through the same path (an ensemble of one
    predicts exactly what the single model predicts). Weights are equal, given, or fitted (``fit`` =
    "greedy" | "optuna") on the members' dev or out-of-fold logits.
    """
    task = comp.kind
    members = [find_run(ws, r) for r in runs]
    if not members:
        raise HarnessError("nothing to submit", hint="pass --run RUN or --runs A,B,C")
    name = check_name(name or "-".join(m.ref.replace("/", "-") for m in members)[:100])
    configs = [m.run_config() for m in members]
    kinds = {c.task for c in configs}
    if kinds != {task.kind}:
        raise HarnessError(f"runs of task(s) {sorted(kinds)} cannot be submitted to a {task.kind} competition")
    cfg, info = configs[0], members[0].config().get("label_info") or {}
    options = check_options(task, options)
    if weights is not None and len(weights) != len(members):
        raise HarnessError(f"{len(weights)} weights for {len(members)} runs")
    ws.sweep()
    finish_result(ws)

    validation = [m.validation_logits() for m in members]
    val_members, val_examples, val_kind = None, [], None
    if all(path is not None for _, path in validation):
        val_members = [task.load_logits(path) for _, path in validation]
        common = set(val_members[0].example_ids).intersection(*(v.example_ids for v in val_members[1:]))
        val_examples = _labelled(comp, [q for q in val_members[0].example_ids if q in common])
        val_kind = "+".join(dict.fromkeys(kind for kind, _ in validation))
    report = {}
    if fit:
        if not val_examples:
            raise HarnessError("cannot fit weights: the runs have no common dev or out-of-fold logits",
                               hint="train with a dev split, or use trials of a search (STUDY/tN)")
        weights, report = _fit_grouped(task, members, validation, val_members, val_examples, comp.metric, fit, cfg,
                                       options)
    weights = [float(w) for w in weights] if weights is not None else [1.0] * len(members)
    val_preds = task.ensemble(val_members, val_examples, weights, cfg, options) if val_examples else None
    val_scores = task.score(val_preds, val_examples, info) if val_examples else None

    examples = comp.examples(split)
    logits = [_member_logits(comp, ws, m, split, progress) for m in members]
    preds = task.ensemble(logits, examples, weights, cfg, options)
    written = {k: comp.label_map.get(str(v), v) for k, v in preds.items()} if comp.label_map else preds
    from harness.submission import write_submission

    csv_path = ws.submissions / (f"{name}.csv" if split == "test" else f"{name}.{split}.csv")
    write_submission(csv_path, written, [ex.id for ex in examples], id_column=comp.id_column,
                     answer_column=comp.answer_column, strip_commas=comp.strip_commas)
    gold = comp.examples("test_gold") if split == "test" and comp.path("test_gold") else (
        examples if split != "test" else None)
    test_scores = task.score(preds, gold, info) if split == "test" and gold and any(
        ex.labelled for ex in gold) else None
    sidecar = {"name": name, "competition": comp.name, "task": task.kind, "split": split,
               "members": [m.ref for m in members], "member_paths": [str(m.path) for m in members],
               "weights": weights, "fit": fit, "options": options,
               "decoding": {k: v for k, v in cfg.flat().items() if k in task.decoding_params} or None,
               "validation": None if val_scores is None else {"kind": val_kind, **val_scores, "n": len(val_examples)},
               "fit_report": _jsonable(report), "test": test_scores, "csv": str(csv_path)}
    atomic_write_json(ws.submissions / f"{name}.json" if split == "test" else ws.submissions / f"{name}.{split}.json",
                      sidecar)
    digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    pending = ws.root / PENDING_RESULT
    if split == "test":  # result.csv: staged now, moved into place once the board agrees
        atomic_write(pending, lambda f: f.write(csv_path.read_bytes()))
    if split == "test":
        record_entry(ws, task, name, [m.ref for m in members], val_preds, val_examples or None, preds, gold, info,
                     comp.metric, kind="submission", extra={"weights": weights, "validation": val_kind},
                     result={"name": name, "sha256": digest})
    else:  # a dev submission: its own predictions are its dev scores
        record_entry(ws, task, name, [m.ref for m in members], preds, examples, None, None, info, comp.metric,
                     kind="dev-submission", extra={"weights": weights, "split": split})
    if split == "test":
        finish_result(ws)
    return {"csv": csv_path, "result": ws.result_csv if split == "test" else None, "n": len(examples),
            "sidecar": sidecar}


def _fit_grouped(task, members, validation, val_members, val_examples, metric, method, cfg, options):
    """Fitted member weights. Members that share one validation file (refit seeds of one trial all
    point at the trial's dev/OOF logits) cannot be told apart on it: the weight is fitted per file
    and split equally among the members that share it."""
    groups: dict[str, list[int]] = {}
    for i, (_, path) in enumerate(validation):
        groups.setdefault(str(Path(path).resolve()), []).append(i)
    order = list(groups.values())
    weights, report = task.fit_weights([val_members[g[0]] for g in order], val_examples, metric, method, cfg, options)
    out = [0.0] * len(members)
    for w, g in zip(weights, order):
        for i in g:
            out[i] = float(w) / len(g)
    if len(order) < len(members):
        report = {**report, "groups": [[members[i].ref for i in g] for g in order],
                  "note": "members sharing a validation file share its fitted weight equally"}
    return out, report


def _member_logits(comp: Competition, ws: Workspace, run, split: str, progress: bool):
    """A run's logits for a split, predicting them first when the run has none yet (or the data changed)."""
    task = comp.kind
    if not run.has_logits(split):
        predict_split(comp, ws, str(run.path), split, progress=progress)
    return task.load_logits(run.logits_path(split))


def record_entry(ws: Workspace, task, name: str, members: Sequence[str], dev_preds, dev_examples, test_preds,
                 test_examples, info: Mapping, metric: str, kind: str = "submission", extra: Mapping | None = None,
                 result: Mapping | None = None, created=None) -> int | None:
    """Score predictions with the task and add (or replace) entry ``name`` on the workspace's board.
    A side without labelled examples is not scored; returns None (and adds nothing) when neither is,
    except that ``result`` (what result.csv holds) is still recorded."""
    from harness.board.store import Leaderboard

    def side(preds, examples):
        if preds is None or not examples:
            return None, None
        stats = task.board_stats(preds, examples, info)
        if stats is None:
            return None, None
        scheme, ids, values = stats
        return (scheme, (ids, values)), {q: preds.get(q) for q in ids}

    dev, dev_kept = side(dev_preds, dev_examples)
    test, test_kept = side(test_preds, test_examples)
    board = Leaderboard.for_workspace(ws)
    if dev is None and test is None:
        if result is not None:
            board.set_result(result)
        return None
    scheme = (dev or test)[0]
    return board.add_entry(name, kind=kind, members=list(members), dev_per_id=dev and dev[1],
                           test_per_id=test and test[1], extra=extra, dev_predictions=dev_kept,
                           test_predictions=test_kept, scheme=scheme, metrics=scheme.default_metrics(metric),
                           result=result, created=created)


def finish_result(ws: Workspace) -> None:
    """Complete (or undo) a submission's last step: a staged ``result.csv`` whose content the board
    recorded as the latest result is moved into place; any other staged file is dropped."""
    from harness.board.store import Leaderboard

    pending = ws.root / PENDING_RESULT
    if not pending.exists():
        return
    recorded = Leaderboard.for_workspace(ws).result_csv()
    try:
        if recorded and hashlib.sha256(pending.read_bytes()).hexdigest() == recorded.get("sha256"):
            os.replace(pending, ws.result_csv)
        else:
            pending.unlink()
    except OSError as e:
        raise storage_error(e, ws.result_csv) from None


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


# ---- score a file, the demo ------------------------------------------------------------------

def score_file(kind: str, pred, gold: str, layout: str | None = None, id_column: str | None = None,
               answer_column: str | None = None, options: Mapping | None = None):
    """``harness score``: a submission CSV against a gold file of task ``kind``."""
    from harness.tasks.base import get_task

    task = get_task(kind)
    layout = layout or task.detect_layout(gold)
    examples = task.read(gold, layout=layout, **{k: v for k, v in (options or {}).items() if v is not None})
    id_default, answer_default = task.submission_columns
    return task.score_file(pred, examples, id_column or id_default, answer_column or answer_default)


def run_demo(ws: Workspace, recipe: str = "tiny", overrides: Mapping | None = None, seed: int = 0,
             progress: bool = True, echo=print, task: str = "qa") -> dict:
    """Generate a demo competition of task kind ``task`` into the workspace, train, predict test,
    submit, and score the written CSV against the generated test labels.

    Returns ``{"run", "dev": best dev scores, "test": the CSV's test scores, "result", "csv"}``.
    """
    from harness.competition import FILENAME, init_competition, load_competition
    from harness.tasks.base import get_task

    kind = get_task(task)
    spec = kind.demo()
    existing = ws.root / FILENAME
    if existing.exists() and load_competition(existing).name != spec.name:
        raise HarnessError(f"{existing} declares another competition",
                           hint=f"run the demo in an empty folder: `harness -w {spec.name}-ws demo --task {task}`")
    data_dir = ws.root / "data" / spec.name
    files = spec.generate(data_dir, seed=seed)
    comp = init_competition(spec.name, ws.root, str(files["train"]), str(files["dev"]), str(files["test"]),
                            str(files["test_gold"]), layout=spec.layout, lang=spec.lang, task=task)
    echo(f"{spec.name} competition: {comp.counts['train']} train / {comp.counts['dev']} dev / "
         f"{comp.counts['test']} test {kind.unit} in {data_dir}")
    result = train_run(comp, ws, recipe, overrides, name=None, progress=progress, echo=echo)
    out = submit(comp, ws, [str(result.run_dir)], name=f"{spec.name}-{recipe}", progress=progress)
    report = kind.score_file(out["csv"], comp.examples("test_gold"), comp.id_column, comp.answer_column,
                             result.run.config().get("label_info"))
    return {"run": result.run_dir, "dev": result.best, "test": report.scores, "result": out["result"],
            "csv": out["csv"]}
