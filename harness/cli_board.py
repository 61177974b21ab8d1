"""Click commands defined beside their feature; harness.cli registers ``commands``.

``harness leaderboard`` (the local leaderboard): print the ranked board, ``compare A B``,
``export [--out DIR]``. It needs only the workspace, not a competition.toml.
"""

from __future__ import annotations

import click
import pandas as pd

from harness.cli_common import friendly as _friendly, pass_ctx

_EMPTY = "the leaderboard is empty: `harness submit` adds an entry (the board lives in {path})"


def _board(ctx):
    from harness.leaderboard import Leaderboard

    return Leaderboard.for_workspace(ctx.workspace)


def _default_metric(ctx) -> str:
    """The competition's metric when a competition.toml is around, else EM."""
    try:
        metric = ctx.competition.metric
    except Exception:  # no (valid) competition here: the board does not need one
        return "em"
    return metric if metric in ("em", "f1") else "em"


@click.group(invoke_without_command=True)
@click.option("--by", type=click.Choice(["em", "f1"]), help="rank by EM then F1, or F1 then EM "
              "(default: the competition's metric, else em)")
@click.option("--split", type=click.Choice(["dev", "test"]), default="dev", show_default=True,
              help="rank on dev, or on test when the test answers are known (a local private board)")
@pass_ctx
@click.pass_context
@_friendly
def leaderboard(click_ctx, ctx, by, split):
    """The local leaderboard: ranked entries with 95% intervals and public/private dev EM.

    \b
    Columns: rank and its change since the newest entry was added, members (runs),
    dev EM/F1, the bootstrap 95% interval of the ranking metric, EM on the public and
    private halves of dev (a simulated Kaggle split), test EM/F1 when known.
    """
    if click_ctx.invoked_subcommand is not None:
        click_ctx.meta["board_by"] = by
        return
    from harness.leaderboard import display_table

    board = _board(ctx)
    by = by or _default_metric(ctx)
    df = board.entries(by=by, split=split)
    if df.empty:
        total = len(board)
        if total and split == "test":
            click.echo(f"no entry has test scores ({total} on dev): the competition needs test answers "
                       "(--test-gold) for a local private board")
        else:
            click.echo(_EMPTY.format(path=board.path))
        return
    n = int(df["n"].max())
    count = f"{len(df)} {'entry' if len(df) == 1 else 'entries'}"
    click.echo(f"leaderboard: {count}, ranked by {split} {by.upper()} ({n} questions)")
    click.echo("")
    table = display_table(df, by=by, split=split)
    click.echo(table.to_string(index=False))
    top = board.top_two(by=by, split=split)
    if top:
        click.echo("")
        click.echo(top.format())
    skipped = len(board) - len(df)
    if skipped:
        click.echo(f"({skipped} {'entry' if skipped == 1 else 'entries'} without {split} scores not shown)")


@leaderboard.command()
@click.argument("a")
@click.argument("b")
@click.option("--limit", default=30, show_default=True, help="questions to list (0: all)")
@click.option("--width", default=30, show_default=True, help="characters shown per answer")
@pass_ctx
@_friendly
def compare(ctx, a, b, limit, width):
    """List the dev questions where entries A and B disagree (EM), and who is right."""
    board = _board(ctx)
    gold = _dev_gold(ctx)
    df = board.compare(a, b, gold_answers=gold)
    diff, ci = board.difference(a, b, by="em", split="dev")
    n_a = int((df["right"] == a).sum()) if len(df) else 0
    n_b = len(df) - n_a
    click.echo(f"{a} vs {b}: {len(df)} dev questions disagree on EM "
               f"({a} right on {n_a}, {b} right on {n_b})")
    click.echo(f"EM difference {a} - {b}: {diff:+.2f} (paired bootstrap 95% CI {ci}; "
               f"{'differ' if ci.excludes_zero() else 'no clear difference'})")
    if df.empty:
        return
    shown = df if not limit else df.head(limit)

    def cut(text) -> str:
        if text is None or (isinstance(text, float) and pd.isna(text)):
            return "-"
        text = str(text).replace("\n", " ")
        return text if len(text) <= width else text[: width - 1] + "…"

    table = pd.DataFrame({"id": shown["id"], "right": shown["right"],
                          f"{a} answer": [cut(x) for x in shown["answer_a"]],
                          f"{b} answer": [cut(x) for x in shown["answer_b"]]})
    if "gold" in shown:
        table["gold"] = [cut(x) for x in shown["gold"]]
    click.echo("")
    click.echo(table.to_string(index=False))
    if len(shown) < len(df):
        click.echo(f"... and {len(df) - len(shown)} more (--limit 0 shows all)")


def _dev_gold(ctx):
    """Dev answers from the competition, if there is one with a dev file; else None."""
    try:
        comp = ctx.competition
        if not comp.path("dev"):
            return None
        return {ex.id: ex.answers for ex in comp.examples("dev")}
    except Exception:  # gold is a bonus column: without a readable competition, compare still works
        return None


@leaderboard.command()
@click.option("--out", type=click.Path(file_okay=False), help="folder for leaderboard.md and leaderboard.html "
              "(default: the workspace's leaderboard/ folder)")
@click.option("--by", type=click.Choice(["em", "f1"]), help="rank by (default: as the group's --by, else em)")
@click.option("--split", type=click.Choice(["dev", "test"]), default="dev", show_default=True)
@pass_ctx
@click.pass_context
@_friendly
def export(click_ctx, ctx, out, by, split):
    """Write the board as a Markdown table and an HTML page with a scores-over-time chart."""
    board = _board(ctx)
    by = by or click_ctx.meta.get("board_by") or _default_metric(ctx)
    paths = board.export(out or ctx.workspace.leaderboard, by=by, split=split)
    click.echo(f"wrote {paths['markdown']} and {paths['html']}")


commands: list = [leaderboard]
