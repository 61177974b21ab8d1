"""The verbs the CLI calls: train a run, predict a split, submit, run the demo.

Each takes a ``Competition`` (what data) and a ``Workspace`` (where results go) and returns
plain values; printing is the CLI's job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from harness.artifacts import atomic_write_text, load_logits
from harness.competition import Competition
from harness.errors import HarnessError
from harness.recipes import Recipe, get_recipe, with_checkpoint
from harness.workspace import Workspace


def run_params(recipe: Recipe, comp: Competition, overrides: dict | None = None) -> dict:
    params = recipe.params(overrides)
    params.setdefault("metric", comp.metric)
    if recipe.lang not in ("any", comp.lang):
        print(f"note: recipe {recipe.name} is for '{recipe.lang}' text but competition {comp.name} is '{comp.lang}'")
    return params


def train_run(comp: Competition, ws: Workspace, recipe_name: str, overrides: dict | None = None,
              model_path: str | None = None, name: str | None = None, use_dev: bool = True, progress: bool = True):
    """Train one run on the competition's train split (scored on dev when it has one)."""
    from harness.train import train_qa

    recipe = with_checkpoint(get_recipe(recipe_name, ws.root), model_path)
    params = run_params(recipe, comp, overrides)
    params["metric"] = comp.metric
    train = comp.examples("train")
    dev = comp.examples("dev") if use_dev and comp.path("dev") else None
    run_dir = ws.new_run_dir(name, recipe.name)
    return train_qa(recipe, params, train, run_dir, dev_examples=dev, lang=comp.lang, progress=progress,
                    extra_config={"competition": comp.name})


def predict_split(comp: Competition, ws: Workspace, run: str, split: str = "test", progress: bool = True) -> Path:
    from harness.train import predict_run

    examples = comp.examples(split)
    return predict_run(ws.run_dir(run), examples, split, progress=progress)


def answers_from_runs(comp: Competition, ws: Workspace, runs: Sequence[str], split: str = "test",
                      decode_overrides: dict | None = None, progress: bool = True) -> tuple[dict, list, dict]:
    """(answers by id, the split's examples, decoding params) from one or more runs' logits."""
    from harness.qa.decode import decode_windows

    examples = comp.examples(split)
    if len(runs) != 1:
        raise HarnessError("ensembles of several runs are not available yet", hint="pass one run")
    run_dir = ws.run_dir(runs[0])
    logits_path = run_dir / "logits" / f"{split}.npz"
    if not logits_path.exists():
        predict_split(comp, ws, runs[0], split, progress=progress)
    logits = load_logits(logits_path)
    config = json.loads((run_dir / "config.json").read_text())
    params = {**config["params"], **(decode_overrides or {})}
    _check_same_examples(logits.example_ids, examples, logits_path)
    preds = decode_windows(logits.start_logits, logits.end_logits, logits.windows, examples,
                           max_answer_length=int(params["max_answer_length"]), n_best=int(params["n_best"]),
                           null_threshold=params.get("null_threshold"))
    answers = preds.to_dict()
    return answers, examples, params


def _check_same_examples(ids: Sequence[str], examples, source) -> None:
    if list(ids) != [ex.id for ex in examples]:
        raise HarnessError(f"{source} was predicted on other examples than the current data file",
                           hint="re-run `harness predict` for this split")


def submit(comp: Competition, ws: Workspace, runs: Sequence[str], name: str | None = None, split: str = "test",
           progress: bool = True) -> dict:
    """Write ``submissions/NAME.csv`` (+ sidecar JSON) and copy it to ``result.csv``."""
    import shutil

    from harness.submit import write_submission
    from harness.workspace import check_name

    name = check_name(name or "-".join(Path(r).name for r in runs)[:100])
    answers, examples, params = answers_from_runs(comp, ws, runs, split, progress=progress)
    path = write_submission(ws.submissions / f"{name}.csv", answers, [ex.id for ex in examples],
                            id_column=comp.id_column, answer_column=comp.answer_column,
                            strip_commas=comp.strip_commas)
    sidecar = {"name": name, "competition": comp.name, "split": split, "members": [str(r) for r in runs],
               "weights": [1.0] * len(runs), "decoding": {k: params.get(k) for k in
                                                          ("max_answer_length", "n_best", "null_threshold")}}
    atomic_write_text(ws.submissions / f"{name}.json", json.dumps(sidecar, indent=2, ensure_ascii=False))
    shutil.copyfile(path, ws.result_csv)
    return {"csv": path, "result": ws.result_csv, "n": len(examples), "sidecar": sidecar}


def run_demo(ws: Workspace, recipe: str = "tiny", overrides: dict | None = None, seed: int = 0,
             progress: bool = True, echo=print) -> dict:
    """Generate the demo competition into the workspace, train, predict test, submit, score."""
    from harness.competition import FILENAME, init_competition, load_competition
    from harness.data import read_examples
    from harness.data.demo import generate_demo
    from harness.scoring import score_file

    existing = ws.root / FILENAME
    if existing.exists() and load_competition(existing).name != "demo":
        raise HarnessError(f"{existing} declares another competition",
                           hint="run the demo in an empty folder: `harness -w demo-ws demo`")
    data_dir = ws.root / "data" / "demo"
    generate_demo(data_dir, seed=seed)
    comp = init_competition("demo", ws.root, str(data_dir / "train.json"), str(data_dir / "dev.json"),
                            str(data_dir / "test.json"), str(data_dir / "test_gold.json"), layout="hw7", lang="zh")
    echo(f"demo competition: {len(comp.examples('train'))} train / {len(comp.examples('dev'))} dev / "
         f"{len(comp.examples('test'))} test questions in {data_dir}")
    result = train_run(comp, ws, recipe, overrides, name=None, progress=progress)
    out = submit(comp, ws, [str(result.run_dir)], name=f"demo-{recipe}", progress=progress)
    report = score_file(out["csv"], read_examples(comp.path("test_gold"), layout="hw7"),
                        id_column=comp.id_column, answer_column=comp.answer_column)
    return {"run": result.run_dir, "dev_em": result.best.get("em", 0.0), "dev_f1": result.best.get("f1", 0.0),
            "test_em": report.em, "test_f1": report.f1, "result": out["result"], "csv": out["csv"]}
