"""Click commands defined beside their feature; harness.cli registers ``commands``.

``harness search`` (Optuna study over a recipe's space), ``harness trials`` (list a study's
trials) and ``harness refit`` (retrain a trial's configuration on all training data).
"""

from __future__ import annotations

import click

from harness.cli.common import friendly, model_path_option, pass_ctx, set_option
from harness.common.errors import HarnessError


def _parse_space(pairs) -> dict | None:
    """``--space 'lr=["log", 1e-5, 1e-4]'`` (repeatable) -> {name: spec}."""
    if not pairs:
        return None
    import ast

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise HarnessError(f"--space expects KEY=SPEC, got '{pair}'",
                               hint='e.g. --space \'lr=["log", 1e-5, 1e-4]\'')
        key, raw = pair.split("=", 1)
        try:
            out[key.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            raise HarnessError(f"--space {key}: '{raw}' is not a Python literal",
                               hint='e.g. ["log", 1e-5, 1e-4] or ["cat", [16, 32]]') from None
    return out


@click.command()
@click.option("--recipe", "-r", help="recipe to tune (see `harness recipes`); optional when resuming --study")
@click.option("--trials", "n_trials", type=int, default=20, show_default=True,
              help="finished (complete + pruned) trials the study should reach; a rerun continues up to it")
@click.option("--timeout", type=float, help="stop starting new trials after this many seconds")
@click.option("--folds", type=int, help="k-fold scoring on train: grouped by paragraph (QA), stratified by label "
              "(classification)")
@click.option("--dev", "dev", is_flag=True, default=None, help="score each trial on the dev split (default when "
              "the competition has one)")
@click.option("--pool-dev", "pool_dev", is_flag=True, default=None, help="k-fold over train+dev together")
@click.option("--metric", help="objective: em/f1 (QA), accuracy/f1/macro_f1/mcc or pearson/spearman/combined "
              "(classification); default: the competition's metric")
@click.option("--study", help="study name (default: RECIPE-dev or RECIPE-Kfold)")
@click.option("--storage", help="Optuna storage URL: sqlite:///FILE, journal:FILE, or a database server that "
              "several hosts share, e.g. postgresql://USER@HOST[:PORT]/DB (psycopg 3 or psycopg2: pip install "
              "'harness[postgres]'); default: studies/NAME/study.db, or studies/NAME/journal.log with --n-jobs > 1. "
              "A password is never printed or saved (search.json keeps the URL without it): to resume, give "
              "--storage with it again, or set PGPASSWORD or a ~/.pgpass line (libpq), or "
              "HARNESS_STORAGE_PASSWORD")
@click.option("--n-jobs", type=int, default=1, show_default=True, help="worker processes sharing the study")
@set_option
@model_path_option
@click.option("--space", "space", multiple=True, metavar="KEY=SPEC",
              help='replace the recipe\'s search space, e.g. --space \'lr=["log",1e-5,1e-4]\' (repeatable; '
                   "the given entries are the whole space)")
@click.option("--sampler", help="tpe (default), random, gp, qmc, or with arguments: 'tpe(n_startup_trials=5)'")
@click.option("--pruner", help="median (dev default), wilcoxon (k-fold default), percentile, threshold, "
              "hyperband, sha, none; arguments as 'median(n_startup_trials=1, n_warmup_steps=0)'")
@click.option("--seed", type=int, help="fold seed (default 0); the sampler seed is drawn per worker session and "
              "recorded on each trial (sampler_seed), so workers never replay each other's draws")
@click.option("--keep", type=int, default=3, show_default=True, help="dev mode: keep the models of the best "
              "KEEP trials, delete the others'")
@click.option("--new", is_flag=True, help="start the study over (the old one is archived) instead of refusing a "
              "changed configuration")
@click.option("--quiet", is_flag=True, help="no trial progress bar")
@pass_ctx
@friendly
def search(ctx, recipe, n_trials, timeout, folds, dev, pool_dev, metric, study, storage, n_jobs, overrides,
           model_path, space, sampler, pruner, seed, keep, new, quiet):
    """Tune a recipe with Optuna: maximise dev (or k-fold) EM/F1; resumable, prunable.

    \b
    Examples:
      harness search --recipe macbert --trials 30            # dev-scored, SQLite study
      harness search --recipe macbert --folds 5 --pool-dev   # grouped 5-fold over train+dev
      harness search --recipe macbert --n-jobs 2             # two workers on a journal file
      harness trials; harness refit --trial best --seeds 1,2,3
    """
    from harness.config import parse_overrides
    from harness.search.workers import run_search

    out = run_search(ctx.competition, ctx.workspace, recipe=recipe, n_trials=n_trials, timeout=timeout, folds=folds,
                     dev=dev, metric=metric, study=study, storage=storage, n_jobs=n_jobs,
                     overrides=parse_overrides(overrides) if overrides else None, model_path=model_path,
                     pool_dev=pool_dev, space=_parse_space(space), sampler=sampler, pruner=pruner, seed=seed,
                     keep=keep, new=new, progress=not quiet, echo=click.echo)
    for p in out["plots"]:
        click.echo(f"wrote {p}")


@click.command()
@click.option("--study", help="study name (default: the only study of the workspace)")
@click.option("--storage", help="storage URL when the study is not under studies/NAME")
@click.option("--sort", "sort", is_flag=True, help="best first: complete trials by their score, then the pruned and failed")
@pass_ctx
@friendly
def trials(ctx, study, storage, sort):
    """List a study's trials: number, name, state, score, params, duration, artifact path.

    \b
    Columns:
      name      what `harness submit --runs` takes for a finished trial (STUDY/tN)
      <metric>  the trial's objective: the best epoch's dev score (dev mode) or the mean
                of its folds' scores (k-fold), decoded with the recipe's decoding settings
      decoded   QA only: the same logits re-decoded with the decoding settings tuned on
                them (max_answer_length, null_threshold); predict/submit of the trial use
                these settings when they score higher
      oof       k-fold: the metric of the pooled out-of-fold predictions
      model     whether the trial kept its model (dev mode keeps the best --keep ones)
    """
    import pandas as pd

    from harness.search.results import best_first, trials_table
    from harness.search.storage import find_study

    name = find_study(ctx.workspace, study)
    df = trials_table(ctx.workspace, name, storage)
    if df.empty:
        click.echo(f"study '{name}': no trials yet")
        return
    if sort:
        df = best_first(df)
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        click.echo(f"study '{name}'")
        click.echo(df.to_string(index=False, na_rep="-"))


@click.command()
@click.option("--trial", "trial", default="best", show_default=True, help="'best' or a trial number")
@click.option("--study", help="study name (default: the only study of the workspace)")
@click.option("--storage", help="storage URL when the study is not under studies/NAME")
@click.option("--seeds", help="comma-separated seeds, one run each (default: the trial's seed)")
@click.option("--quiet", is_flag=True, help="no progress bars")
@pass_ctx
@friendly
def refit(ctx, trial, study, storage, seeds, quiet):
    """Retrain a trial's configuration on all labelled data (train + dev) for the trial's best epoch
    count (k-fold: the median of its folds'), one run per seed (runs/STUDY-tN-sSEED), and predict test.

    Nothing is held out, so the runs have no dev scores of their own: `harness submit --fit-weights`
    weighs them by the trial's dev / out-of-fold logits (seeds of one trial share one weight)."""
    from harness.search.results import refit as do_refit
    from harness.search.storage import find_study

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()] if seeds else None
    except ValueError:
        raise HarnessError(f"--seeds takes comma-separated integers, got '{seeds}'") from None
    name = find_study(ctx.workspace, study)
    runs = do_refit(ctx.competition, ctx.workspace, name, trial, seed_list, storage, progress=not quiet,
                    echo=click.echo)
    click.echo("runs: " + ",".join(str(r.relative_to(ctx.workspace.root)) if r.is_relative_to(ctx.workspace.root)
                                   else str(r) for r in runs))


commands = [search, trials, refit]
