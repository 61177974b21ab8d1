"""The ``harness`` command line: parse, call the API, print. No logic lives here."""

from __future__ import annotations

import time

import click

from harness.cli.common import TaskKind, _Ctx, friendly, model_path_option, pass_ctx, set_option
from harness.common.errors import HarnessError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--competition", "-c", metavar="PATH", envvar="HARNESS_COMPETITION",
              help="competition.toml (or its folder); default: the current folder")
@click.option("--workspace", "-w", metavar="DIR", help="where runs/, studies/, submissions/, leaderboard/ live "
              "(default: the competition's folder)")
@click.version_option(package_name="harness")
@click.pass_context
def main(ctx, competition, workspace):
    """Fine-tune transformers for QA and text-classification competitions: search, ensemble, submit.

    \b
    Typical session:
      harness init hw7 --train train.json --dev dev.json --test test.json
      harness search --recipe macbert --trials 30 --folds 5
      harness submit --name mix1 --runs <runs or trials>
      harness leaderboard
    Try it offline first: `harness demo`.
    """
    ctx.obj = _Ctx(competition, workspace)


@main.command()
@click.argument("name")
@click.option("--train", "train", required=True, help="training file (or HF dataset name with --layout hf)")
@click.option("--dev", help="dev file with answers (scored locally)")
@click.option("--test", help="test file to predict for submission")
@click.option("--test-gold", help="the test answers, if you have them (a local private board)")
@click.option("--task", type=TaskKind(), default="qa", show_default=True,
              help="qa (extractive QA) or classification (text classification / regression)")
@click.option("--layout", type=click.Choice(["hw7", "squad", "csv", "jsonl", "hf"]),
              help="file layout (default: detected from the train file)")
@click.option("--lang", type=click.Choice(["zh", "en"]), help="the text's language (default: detected from the "
              "training text: Chinese when at least 30% of its letters are CJK)")
@click.option("--metric", help="what the competition ranks by: em/f1 (QA, default em); accuracy/f1/macro_f1/mcc or "
              "pearson/spearman/combined (classification, default accuracy)")
@click.option("--id-column", help="submission id column (default: ID for QA, id for classification)")
@click.option("--answer-column", help="submission answer/label column (default: Answer for QA, label for "
              "classification)")
@click.option("--strip-commas", is_flag=True, help="remove commas from answers in the CSV (as HW7's sample did)")
@click.option("--text-column", help="classification: the text column of the data (default: text)")
@click.option("--text-pair-column", help="classification: the second sentence's column (pair tasks)")
@click.option("--label-column", help="classification: the label column (default: label)")
@click.option("--input-id-column", help="classification: the data's id column (default: id; row numbers if absent)")
@click.option("--group-column", help="classification: rows sharing a group stay in one fold")
@click.option("--columns", help="classification: column names of a header-less file, comma-separated")
@click.option("--regression", is_flag=True, default=None, help="classification: numeric labels (e.g. STS-B)")
@click.option("--hf-config", help="the Hugging Face dataset config with --layout hf (e.g. sst2 for glue)")
@pass_ctx
@friendly
def init(ctx, name, train, dev, test, test_gold, task, layout, lang, metric, id_column, answer_column, strip_commas,
         text_column, text_pair_column, label_column, input_id_column, group_column, columns, regression, hf_config):
    """Declare a competition in ./competition.toml (or the --workspace folder)."""
    from harness.competition import init_competition

    options = {"text_column": text_column, "text_pair_column": text_pair_column, "label_column": label_column,
               "id_column": input_id_column, "group_column": group_column, "columns": columns,
               "regression": regression, "config": hf_config}
    options = {k: v for k, v in options.items() if v is not None}
    comp = init_competition(name, ctx.workspace.root, train, dev, test, test_gold, layout, lang, metric, task=task,
                            options=options, echo=click.echo, id_column=id_column, answer_column=answer_column,
                            strip_commas=strip_commas)
    counts = ", ".join(f"{split} {n}" for split, n in comp.counts.items())
    click.echo(f"competition '{name}' ({comp.task}, {comp.layout}, {comp.lang}, metric {comp.metric}): {counts}")
    click.echo(f"wrote {comp.root / 'competition.toml'}")


@main.command()
@click.option("--params", is_flag=True, help="list the parameters --set and recipes take, with their defaults")
@pass_ctx
@friendly
def recipes(ctx, params):
    """List the registered recipes (built-in and ./recipes/*.toml)."""
    if params:
        from harness.config import GROUPS, SPECS, describe, field_default

        for group in GROUPS:
            click.echo(f"[{group}]")
            for name, (g, f) in SPECS.items():
                if g == group:
                    click.echo(f"  {name:<18} {str(field_default(name)):<8} {describe(name):<28} {f.metadata['help']}")
        return
    from harness.recipes import all_recipes

    for r in all_recipes(ctx.workspace.root):
        click.echo(f"{r.name:<22} {r.lang:<4} {r.checkpoint:<42} {r.description}")


@main.command()
@click.option("--recipe", "-r", required=True, help="recipe name (see `harness recipes`)")
@set_option
@model_path_option
@click.option("--name", help="run name (default: RECIPE-TIMESTAMP)")
@click.option("--no-dev", is_flag=True, help="do not evaluate on dev after each epoch")
@pass_ctx
@friendly
def train(ctx, recipe, overrides, model_path, name, no_dev):
    """Train one run of a recipe on the competition (dev-scored each epoch, best epoch kept)."""
    from harness.config import parse_overrides
    from harness.pipeline import train_run

    result = train_run(ctx.competition, ctx.workspace, recipe, parse_overrides(overrides), model_path, name,
                       use_dev=not no_dev, echo=click.echo)
    figures = f"dev {_scores(result.best)} (epoch {result.best_epoch})" if result.best else "no dev"
    click.echo(f"run {result.run_dir.name}: {figures} -> {result.run_dir}")


@main.command()
@click.option("--run", "run", required=True, help="run name, trial (STUDY/tN) or folder")
@click.option("--data", "split", type=click.Choice(["test", "dev", "train"]), default="test", show_default=True)
@pass_ctx
@friendly
def predict(ctx, run, split):
    """Save a run's logits for a split (runs/NAME/logits/SPLIT.npz)."""
    from harness.pipeline import predict_split

    path = predict_split(ctx.competition, ctx.workspace, run, split)
    click.echo(f"wrote {path}")


@main.command()
@click.option("--run", "run", help="one run (name, trial STUDY/tN, or folder)")
@click.option("--runs", "runs", help="several runs or trials (STUDY/tN), comma-separated: an ensemble")
@click.option("--name", help="submission name (default: from the runs)")
@click.option("--weights", help="member weights, comma-separated (default: equal)")
@click.option("--fit-weights", "fit", type=click.Choice(["greedy", "optuna"]), is_flag=False, flag_value="greedy",
              help="fit weights on the members' dev/out-of-fold logits (greedy forward selection or optuna)")
@click.option("--agg", type=click.Choice(["max", "mean"]), help="QA: how overlapping windows combine on a "
              "character (default max)")
@click.option("--space", type=click.Choice(["logprob", "prob"]), help="average members in log-probability "
              "(default) or probability space")
@click.option("--data", "split", type=click.Choice(["test", "dev"]), default="test", show_default=True,
              help="test: submissions/NAME.csv and result.csv; dev: submissions/NAME.dev.csv only (marked dev on "
                   "the board)")
@pass_ctx
@friendly
def submit(ctx, run, runs, name, weights, fit, agg, space, split):
    """Ensemble runs' logits (spans or classes) into submissions/NAME.csv and result.csv (the file to upload)."""
    from harness.pipeline import submit as do_submit

    members = [r.strip() for r in (runs or "").split(",") if r.strip()] + ([run] if run else [])
    if not members:
        raise HarnessError("nothing to submit", hint="pass --run RUN or --runs A,B,C")
    if weights and fit:
        raise HarnessError("give --weights or --fit-weights, not both")
    try:
        w = [float(x) for x in weights.split(",")] if weights else None
    except ValueError:
        raise HarnessError(f"--weights must be numbers, got '{weights}'") from None
    out = do_submit(ctx.competition, ctx.workspace, members, name, split, weights=w, fit=fit,
                    options={"agg": agg, "space": space})
    val = out["sidecar"]["validation"]
    if val:
        shown = {k: v for k, v in val.items() if k not in ("kind", "n")}
        click.echo(f"{val['kind']} {_scores(shown)} on {val['n']} examples "
                   f"(weights {', '.join(f'{x:.2f}' for x in out['sidecar']['weights'])})")
    kept = [m for m, x in zip(out["sidecar"]["members"], out["sidecar"]["weights"]) if x > 0]
    if fit and len(kept) == 1 < len(members):
        # measured (bench/accuracy.py): a search's trials are near copies or far apart; seeds of one
        # configuration trained on train + dev gained 2-5 points where the search's top three gained 0
        click.echo(f"note: the fitted weights keep {kept[0]} alone: no mix of these members scores higher on "
                   f"dev. Members that differ in seed and data mix better: `harness refit --study STUDY "
                   f"--trial best --seeds 1,2`, then submit the trial with its refits.")
    also = f" and {out['result']}" if out["result"] else " (a dev submission: result.csv unchanged)"
    click.echo(f"wrote {out['csv']} ({out['n']} answers){also}")


@main.command()
@click.argument("pred", type=click.Path(exists=True, dir_okay=False))
@click.option("--gold", required=True, type=click.Path(exists=True, dir_okay=False), help="file with the answers")
@click.option("--layout", type=click.Choice(["hw7", "squad", "csv", "jsonl"]), help="gold layout (default: detected)")
@click.option("--task", type=TaskKind(), default="qa", show_default=True)
@click.option("--id-column", help="submission id column (default: ID for QA, id for classification)")
@click.option("--answer-column", help="submission answer/label column (default: Answer for QA, label for "
              "classification)")
@click.option("--text-column", help="classification: the gold file's text column (default text)")
@click.option("--label-column", help="classification: the gold file's label column (default label)")
@click.option("--regression", is_flag=True, default=None, help="classification: numeric labels")
@friendly
def score(pred, gold, layout, task, id_column, answer_column, text_column, label_column, regression):
    """Score a submission CSV against a gold file: EM/F1 (QA) or accuracy/F1/MCC/... (classification),
    counts, missing/extra/duplicate ids. A file predicted for another split is refused."""
    from harness.pipeline import score_file

    options = {"text_column": text_column, "label_column": label_column, "regression": regression}
    report = score_file(task, pred, gold, layout, id_column, answer_column,
                        {k: v for k, v in options.items() if v is not None})
    click.echo(report.format())


@main.command()
@click.option("--recipe", "-r", default="tiny", show_default=True)
@set_option
@click.option("--seed", default=0, show_default=True, help="seed of the generated data")
@click.option("--task", type=TaskKind(), default="qa", show_default=True,
              help="qa: the Chinese reading-comprehension demo; classification: the 3-class reviews one")
@click.option("--quiet", is_flag=True, help="no progress bars")
@pass_ctx
@friendly
def demo(ctx, recipe, overrides, seed, task, quiet):
    """The whole job offline: generate the demo competition, train, predict, submit, score."""
    from harness.config import parse_overrides
    from harness.pipeline import run_demo

    t0 = time.time()
    out = run_demo(ctx.workspace, recipe, parse_overrides(overrides), seed, progress=not quiet, echo=click.echo,
                   task=task)
    click.echo(f"demo done in {time.time() - t0:.0f} s: dev {_scores(out['dev'])}; test {_scores(out['test'])}; "
               f"wrote {out['result']}")


def _scores(scores: dict) -> str:
    """``{"em": 12.3, "f1": 45.6}`` -> "EM 12.30 F1 45.60"."""
    from harness.scores import metric_label

    return " ".join(f"{metric_label(k)} {v:.2f}" for k, v in scores.items())


@main.command("split")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dev", "dev_share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True, help="share of the questions that go to dev")
@click.option("--by", type=click.Choice(["paragraph", "article"]), default="paragraph", show_default=True,
              help="what stays whole: a paragraph (HW7, SQuAD) or a SQuAD article")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="folder for the two files (default: beside PATH)")
@friendly
def split_cmd(path, dev_share, by, seed, out):
    """Split a labelled QA file (HW7 or SQuAD layout) into train and dev files, keeping every paragraph
    (or article) whole: for HW7 users who have only hw7_dev.json, or a private split of your own."""
    from harness.tasks.qa.split import split_file

    done = split_file(path, dev_share, by=by, seed=seed, out_dir=out)
    click.echo(f"wrote {done['train']} ({done['n_train']} questions) and {done['dev']} ({done['n_dev']} questions); "
               f"{done['groups_train']} / {done['groups_dev']} {by}s")


# Commands that live beside their feature (search, leaderboard) register themselves here.
from harness.cli import board as cli_board  # noqa: E402
from harness.cli import search as cli_search

for _command in cli_search.commands + cli_board.commands:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
