"""Click commands defined beside their feature; harness.cli registers ``commands``.

``harness leaderboard`` (the local leaderboard): print the ranked board, ``compare A B``,
``export [--out DIR]``. It needs only the workspace, not a competition.toml. A board ranks by its
task's metrics (QA: EM, F1; classification e.g. MCC, accuracy; regression Pearson, Spearman).
"""

from __future__ import annotations

import click
import pandas as pd

from harness.cli.common import friendly, pass_ctx

_EMPTY = "the leaderboard is empty: `harness submit` adds an entry (the board lives in {path})"


def _board(ctx):
    from harness.board.store import Leaderboard

    return Leaderboard.for_workspace(ctx.workspace)


def _by(ctx, board, by: str | None) -> str:
    """``--by`` checked against the board's metrics; by default the competition's metric when it is
    one of them (a competition.toml is around), else the board's primary metric."""
    from harness.common.errors import HarnessError

    metrics = board.metrics
    if by:
        if by.lower() not in metrics:
            raise HarnessError(f"unknown metric '{by}' for this {board.scheme.describe()} leaderboard",
                               hint=f"--by one of: {', '.join(metrics)}")
        return by.lower()
    try:
        metric = str(ctx.competition.metric).lower()
    except Exception:  # no (valid) competition here: the board does not need one
        return metrics[0]
    return metric if metric in metrics else metrics[0]


_BY_HELP = ("rank by this metric of the board (QA: em or f1; classification e.g. mcc, accuracy, f1, macro_f1; "
            "regression: pearson, spearman, combined), ties broken by its other metrics "
            "(default: the competition's metric, else the board's primary)")


@click.group(invoke_without_command=True)
@click.option("--by", metavar="METRIC", help=_BY_HELP)
@click.option("--split", type=click.Choice(["dev", "test"]), default="dev", show_default=True,
              help="rank on dev, or on test when the test answers are known (a local private board)")
@pass_ctx
@click.pass_context
@friendly
def leaderboard(click_ctx, ctx, by, split):
    """The local leaderboard: ranked entries with 95% intervals and public/private dev scores.

    \b
    Columns: rank and its change since the newest entry was added, members (runs),
    the board's dev metrics (QA: EM/F1; e.g. MCC/Acc for CoLA), the bootstrap 95%
    interval of the ranking metric, the primary metric on the public and private
    halves of dev (a simulated Kaggle split), test metrics when known.
    """
    if click_ctx.invoked_subcommand is not None:
        click_ctx.meta["board_by"] = by
        return
    from harness.board.export import display_table
    from harness.scores import metric_label

    board = _board(ctx)
    total = len(board)
    by = _by(ctx, board, by) if total else None
    df = board.entries(by=by, split=split) if total else None
    if df is None or df.empty:
        if total and split == "test":
            click.echo(f"no entry has test scores ({total} on dev): the competition needs test answers "
                       "(--test-gold) for a local private board")
        else:
            click.echo(_EMPTY.format(path=board.path))
        return
    n = int(df["n"].max())
    count = f"{len(df)} {'entry' if len(df) == 1 else 'entries'}"
    click.echo(f"leaderboard: {count}, ranked by {split} {metric_label(by)} ({n} {board.scheme.unit})")
    click.echo("")
    table = display_table(df, by=by, split=split)
    click.echo(table.to_string(index=False))
    top = board.top_two(by=by, split=split)
    if top:
        click.echo("")
        click.echo(top.format())
    skipped = total - len(df)
    if skipped:
        click.echo(f"({skipped} {'entry' if skipped == 1 else 'entries'} without {split} scores not shown)")


@leaderboard.command()
@click.argument("a")
@click.argument("b")
@click.option("--limit", default=30, show_default=True, help="examples to list (0: all)")
@click.option("--width", default=30, show_default=True, help="characters shown per answer or label")
@pass_ctx
@friendly
def compare(ctx, a, b, limit, width):
    """List the dev examples where exactly one of entries A and B is right (QA: EM), and which."""
    from harness.scores import metric_label

    board = _board(ctx)
    df = board.compare(a, b, gold_answers=_dev_gold(ctx))
    scored = "em_a" in df.columns  # per-example scores (QA's EM), not labels
    primary = board.metrics[0]
    diff, ci = board.difference(a, b, by=primary, split="dev")
    n_a = int((df["right"] == a).sum()) if len(df) else 0
    n_b = len(df) - n_a
    what = (f"dev {board.scheme.unit} disagree on {metric_label(board.scheme.names[0])}" if scored
            else f"dev {board.scheme.unit} where exactly one is right")
    click.echo(f"{a} vs {b}: {len(df)} {what} ({a} right on {n_a}, {b} right on {n_b})")
    click.echo(f"{metric_label(primary)} difference {a} - {b}: {diff:+.2f} (paired bootstrap 95% CI {ci}; "
               f"{'differ' if ci.excludes_zero() else 'no clear difference'})")
    if df.empty:
        return
    shown = df if not limit else df.head(limit)

    def cut(text) -> str:
        if text is None or (isinstance(text, float) and pd.isna(text)):
            return "-"
        text = str(text).replace("\n", " ")
        return text if len(text) <= width else text[: width - 1] + "…"

    word = "answer" if scored else "label"
    table = pd.DataFrame({"id": shown["id"], "right": shown["right"],
                          f"{a} {word}": [cut(x) for x in shown["answer_a"]],
                          f"{b} {word}": [cut(x) for x in shown["answer_b"]]})
    if "gold" in shown:
        table["gold"] = [cut(x) for x in shown["gold"]]
    click.echo("")
    click.echo(table.to_string(index=False))
    if len(shown) < len(df):
        click.echo(f"... and {len(df) - len(shown)} more (--limit 0 shows all)")


def _dev_gold(ctx):
    """Dev references from the competition, if there is one with a dev file; else None."""
    try:
        comp = ctx.competition
        if not comp.path("dev"):
            return None
        task = comp.kind
        return {ex.id: task.reference(ex) for ex in comp.examples("dev") if ex.labelled}
    except Exception:  # gold is a bonus column: without a readable competition, compare still works
        return None


@leaderboard.command()
@click.option("--out", type=click.Path(file_okay=False), help="folder for leaderboard.md and leaderboard.html "
              "(default: the workspace's leaderboard/ folder)")
@click.option("--by", metavar="METRIC", help="rank by this metric of the board (default: as the group's --by, "
              "else the competition's metric, else the board's primary)")
@click.option("--split", type=click.Choice(["dev", "test"]), default="dev", show_default=True)
@pass_ctx
@click.pass_context
@friendly
def export(click_ctx, ctx, out, by, split):
    """Write the board as a Markdown table and an HTML page with a scores-over-time chart."""
    board = _board(ctx)
    by = _by(ctx, board, by or click_ctx.meta.get("board_by")) if len(board) else None
    paths = board.export(out or ctx.workspace.leaderboard, by=by, split=split)
    click.echo(f"wrote {paths['markdown']} and {paths['html']}")


commands: list = [leaderboard]
