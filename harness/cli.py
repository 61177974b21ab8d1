"""The ``harness`` command line: parse, call the API, print. No logic lives here."""

from __future__ import annotations

import time

import click

from harness.cli_common import _Ctx, friendly, model_path_option, pass_ctx, set_option
from harness.errors import HarnessError

_friendly = friendly  # noqa: the name the feature modules used first
_set_option, _model_path_option = set_option, model_path_option


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--competition", "-c", metavar="PATH", envvar="HARNESS_COMPETITION",
              help="competition.toml (or its folder); default: the current folder")
@click.option("--workspace", "-w", metavar="DIR", help="where runs/, studies/, submissions/, leaderboard/ live "
              "(default: the competition's folder)")
@click.version_option(package_name="harness")
@click.pass_context
def main(ctx, competition, workspace):
    """Fine-tune transformers for extractive QA competitions: search, ensemble, submit.

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
@click.option("--layout", type=click.Choice(["hw7", "squad", "csv", "jsonl", "hf"]),
              help="file layout (default: detected from the train file)")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--metric", type=click.Choice(["em", "f1"]), default="em", show_default=True,
              help="what the competition ranks by")
@click.option("--id-column", default="ID", show_default=True)
@click.option("--answer-column", default="Answer", show_default=True)
@click.option("--strip-commas", is_flag=True, help="remove commas from answers in the CSV (as HW7's sample did)")
@pass_ctx
@_friendly
def init(ctx, name, train, dev, test, test_gold, layout, lang, metric, id_column, answer_column, strip_commas):
    """Declare a competition in ./competition.toml (or the --workspace folder)."""
    from harness.competition import init_competition

    comp = init_competition(name, ctx.workspace.root, train, dev, test, test_gold, layout, lang, metric,
                            id_column=id_column, answer_column=answer_column, strip_commas=strip_commas)
    counts = []
    for split in ("train", "dev", "test"):
        if comp.path(split):
            counts.append(f"{split} {len(comp.examples(split))}")
    click.echo(f"competition '{name}' ({comp.layout}, {comp.lang}, metric {comp.metric}): {', '.join(counts)}")
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
    best = result.best
    figures = f"dev EM {best['em']:.2f} F1 {best['f1']:.2f} (epoch {result.best_epoch})" if best else "no dev"
    click.echo(f"run {result.run_dir.name}: {figures} -> {result.run_dir}")


@main.command()
@click.option("--run", "run", required=True, help="run name or folder")
@click.option("--data", "split", type=click.Choice(["test", "dev", "train"]), default="test", show_default=True)
@pass_ctx
@_friendly
def predict(ctx, run, split):
    """Save a run's window logits for a split (runs/NAME/logits/SPLIT.npz)."""
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
    """Ensemble runs' span logits into submissions/NAME.csv and copy it to result.csv."""
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
        click.echo(f"{val['kind']} EM {val['em']:.2f} F1 {val['f1']:.2f} on {val['n']} questions "
                   f"(weights {', '.join(f'{x:.2f}' for x in out['sidecar']['weights'])})")
    click.echo(f"wrote {out['csv']} ({out['n']} answers) and {out['result']}")


@main.command()
@click.argument("pred", type=click.Path(exists=True, dir_okay=False))
@click.option("--gold", required=True, type=click.Path(exists=True, dir_okay=False), help="file with the answers")
@click.option("--layout", type=click.Choice(["hw7", "squad", "csv", "jsonl"]), help="gold layout (default: detected)")
@click.option("--id-column", default="ID", show_default=True)
@click.option("--answer-column", default="Answer", show_default=True)
@_friendly
def score(pred, gold, layout, id_column, answer_column):
    """Score a submission CSV against a gold file: EM, F1, counts, missing/extra/duplicate ids."""
    from harness.data import read_examples
    from harness.scoring import score_file

    report = score_file(pred, read_examples(gold, layout=layout), id_column=id_column, answer_column=answer_column)
    click.echo(report.format())


@main.command()
@click.option("--recipe", "-r", default="tiny", show_default=True)
@_set_option
@click.option("--seed", default=0, show_default=True, help="seed of the generated data")
@click.option("--quiet", is_flag=True, help="no progress bars")
@pass_ctx
@_friendly
def demo(ctx, recipe, overrides, seed, quiet):
    """The whole job offline: generate the demo competition, train, predict, submit, score."""
    from harness.pipeline import run_demo
    from harness.recipes import parse_overrides

    t0 = time.time()
    out = run_demo(ctx.workspace, recipe, parse_overrides(overrides), seed, progress=not quiet, echo=click.echo)
    click.echo(f"demo done in {time.time() - t0:.0f} s: dev EM {out['dev_em']:.2f} F1 {out['dev_f1']:.2f}; "
               f"test EM {out['test_em']:.2f} F1 {out['test_f1']:.2f}; wrote {out['result']}")


# Commands that live beside their feature (search, leaderboard) register themselves here.
from harness import cli_board, cli_search  # noqa: E402

for _command in cli_search.commands + cli_board.commands:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
