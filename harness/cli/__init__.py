"""The ``harness`` command line: parse, call the API, print. No logic lives here."""

from __future__ import annotations

import time

import click

from harness.cli.common import _Ctx, friendly, model_path_option, pass_ctx, set_option
from harness.common.errors import HarnessError

_friendly = friendly  # the name the feature modules used first
_set_option, _model_path_option = set_option, model_path_option


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
@click.option("--task", type=click.Choice(["qa", "classification"]), default="qa", show_default=True,
              help="extractive QA, or text classification / regression")
@click.option("--layout", type=click.Choice(["hw7", "squad", "csv", "jsonl", "hf"]),
              help="file layout (default: detected from the train file)")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
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
@_friendly
def init(ctx, name, train, dev, test, test_gold, task, layout, lang, metric, id_column, answer_column, strip_commas,
         text_column, text_pair_column, label_column, input_id_column, group_column, columns, regression, hf_config):
    """Declare a competition in ./competition.toml (or the --workspace folder)."""
    from harness.competition import init_competition

    options = {"text_column": text_column, "text_pair_column": text_pair_column, "label_column": label_column,
               "id_column": input_id_column, "group_column": group_column, "columns": columns,
               "regression": regression, "config": hf_config}
    options = {k: v for k, v in options.items() if v is not None}
    if options and task != "classification":
        if set(options) - {"config"}:
            raise HarnessError(f"--{sorted(set(options) - {'config'})[0].replace('_', '-')} is a classification "
                               "option", hint="pass --task classification")
    comp = init_competition(name, ctx.workspace.root, train, dev, test, test_gold, layout, lang, metric, task=task,
                            options=options, id_column=id_column, answer_column=answer_column,
                            strip_commas=strip_commas)
    counts = []
    for split in ("train", "dev", "test"):
        if comp.path(split):
            counts.append(f"{split} {len(comp.examples(split))}")
    click.echo(f"competition '{name}' ({comp.task}, {comp.layout}, {comp.lang}, metric {comp.metric}): "
               f"{', '.join(counts)}")
    click.echo(f"wrote {comp.root / 'competition.toml'}")


@main.command()
@pass_ctx
@_friendly
def recipes(ctx):
    """List the registered recipes (built-in and ./recipes/*.toml)."""
    from harness.recipes import all_recipes

    for r in all_recipes(ctx.workspace.root):
        click.echo(f"{r.name:<22} {r.lang:<4} {r.checkpoint:<42} {r.description}")


@main.command()
@click.option("--recipe", "-r", required=True, help="recipe name (see `harness recipes`)")
@_set_option
@_model_path_option
@click.option("--name", help="run name (default: RECIPE-TIMESTAMP)")
@click.option("--no-dev", is_flag=True, help="do not evaluate on dev after each epoch")
@pass_ctx
@_friendly
def train(ctx, recipe, overrides, model_path, name, no_dev):
    """Train one run of a recipe on the competition (dev-scored each epoch, best epoch kept)."""
    from harness.pipeline import train_run
    from harness.recipes import parse_overrides

    result = train_run(ctx.competition, ctx.workspace, recipe, parse_overrides(overrides), model_path, name,
                       use_dev=not no_dev)
    figures = f"dev {_scores(result.best)} (epoch {result.best_epoch})" if result.best else "no dev"
    click.echo(f"run {result.run_dir.name}: {figures} -> {result.run_dir}")


@main.command()
@click.option("--run", "run", required=True, help="run name or folder")
@click.option("--data", "split", type=click.Choice(["test", "dev", "train"]), default="test", show_default=True)
@pass_ctx
@_friendly
def predict(ctx, run, split):
    """Save a run's logits for a split (runs/NAME/logits/SPLIT.npz)."""
    from harness.pipeline import predict_split

    path = predict_split(ctx.competition, ctx.workspace, run, split)
    click.echo(f"wrote {path}")


@main.command()
@click.option("--run", "run", help="one run (name or folder)")
@click.option("--runs", "runs", help="several runs or trials, comma-separated (an ensemble)")
@click.option("--name", help="submission name (default: from the runs)")
@click.option("--weights", help="member weights, comma-separated (default: equal)")
@click.option("--fit-weights", "fit", type=click.Choice(["greedy", "optuna"]), is_flag=False, flag_value="greedy",
              help="fit weights on the members' dev/out-of-fold logits (greedy forward selection or optuna)")
@click.option("--agg", type=click.Choice(["max", "mean"]), default="max", show_default=True,
              help="how overlapping windows combine on a character")
@click.option("--space", type=click.Choice(["logprob", "prob"]), default="logprob", show_default=True,
              help="average members in log-probability or probability space")
@click.option("--data", "split", type=click.Choice(["test", "dev"]), default="test", show_default=True)
@pass_ctx
@_friendly
def submit(ctx, run, runs, name, weights, fit, agg, space, split):
    """Ensemble runs' logits (spans or classes) into submissions/NAME.csv and copy it to result.csv."""
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
    out = do_submit(ctx.competition, ctx.workspace, members, name, split, weights=w, fit=fit, agg=agg, space=space)
    val = out["sidecar"]["validation"]
    if val:
        shown = {k: v for k, v in val.items() if k not in ("kind", "n")}
        click.echo(f"{val['kind']} {_scores(shown)} on {val['n']} examples "
                   f"(weights {', '.join(f'{x:.2f}' for x in out['sidecar']['weights'])})")
    click.echo(f"wrote {out['csv']} ({out['n']} answers) and {out['result']}")


@main.command()
@click.argument("pred", type=click.Path(exists=True, dir_okay=False))
@click.option("--gold", required=True, type=click.Path(exists=True, dir_okay=False), help="file with the answers")
@click.option("--layout", type=click.Choice(["hw7", "squad", "csv", "jsonl"]), help="gold layout (default: detected)")
@click.option("--task", type=click.Choice(["qa", "classification"]), default="qa", show_default=True)
@click.option("--id-column", help="submission id column (default: ID for QA, id for classification)")
@click.option("--answer-column", help="submission answer/label column (default: Answer for QA, label for "
              "classification)")
@click.option("--text-column", default="text", show_default=True, help="classification: the gold file's text column")
@click.option("--label-column", default="label", show_default=True,
              help="classification: the gold file's label column")
@click.option("--regression", is_flag=True, help="classification: numeric labels")
@_friendly
def score(pred, gold, layout, task, id_column, answer_column, text_column, label_column, regression):
    """Score a submission CSV against a gold file: EM/F1 (QA) or accuracy/F1/MCC/... (classification),
    counts, missing/extra/duplicate ids."""
    if task == "classification":
        from harness.tasks.clf.readers import read_texts
        from harness.scoring import score_label_file

        examples = read_texts(gold, layout=layout, text_column=text_column, label_column=label_column,
                              regression=regression)
        report = score_label_file(pred, examples, id_column=id_column or "id", label_column=answer_column or "label")
    else:
        from harness.tasks.qa.readers import read_examples
        from harness.scoring import score_file

        report = score_file(pred, read_examples(gold, layout=layout), id_column=id_column or "ID",
                            answer_column=answer_column or "Answer")
    click.echo(report.format())


@main.command()
@click.option("--recipe", "-r", default="tiny", show_default=True)
@_set_option
@click.option("--seed", default=0, show_default=True, help="seed of the generated data")
@click.option("--task", type=click.Choice(["qa", "classification"]), default="qa", show_default=True,
              help="the QA demo (Chinese reading comprehension) or the classification one (3-class reviews)")
@click.option("--quiet", is_flag=True, help="no progress bars")
@pass_ctx
@_friendly
def demo(ctx, recipe, overrides, seed, task, quiet):
    """The whole job offline: generate the demo competition, train, predict, submit, score."""
    from harness.pipeline import run_demo
    from harness.recipes import parse_overrides

    t0 = time.time()
    out = run_demo(ctx.workspace, recipe, parse_overrides(overrides), seed, progress=not quiet, echo=click.echo,
                   task=task)
    click.echo(f"demo done in {time.time() - t0:.0f} s: dev {_scores(out['dev'])}; test {_scores(out['test'])}; "
               f"wrote {out['result']}")


def _scores(scores: dict) -> str:
    """``{"em": 12.3, "f1": 45.6}`` -> "EM 12.30 F1 45.60"."""
    from harness.scoring import metric_label

    return " ".join(f"{metric_label(k)} {v:.2f}" for k, v in scores.items())


# Commands that live beside their feature (search, leaderboard) register themselves here.
from harness.cli import board as cli_board, search as cli_search  # noqa: E402

for _command in cli_search.commands + cli_board.commands:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
