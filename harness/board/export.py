"""The local leaderboard as text and pictures: the CLI's table, the Markdown table, the HTML page.

Everything here works on the frames :meth:`harness.board.store.Leaderboard.entries` (the ranked
board) and :meth:`~harness.board.store.Leaderboard.events` (every add, oldest first) return;
nothing here reads the SQLite file. :func:`display_table` is the board as strings, one column per
figure, in the order the CLI prints them; the Markdown table (``leaderboard.md``) and the HTML
page (``leaderboard.html``) that :meth:`~harness.board.store.Leaderboard.export` writes are made
of it. The page adds a scores-over-time SVG chart from the event history: one marker per add
(dots dev, squares test, rings the public / private halves of dev, on the board's primary
metric) and a dashed step line for the best dev score so far.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from harness.board.stats import TopTwo
from harness.scores import QA, metric_label


# --------------------------------------------------------------------------- the table
def _fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def shorten(items: Sequence[str], width: int = 28) -> str:
    """``a, b, +3`` style summary of a member list within about ``width`` characters."""
    items = list(items)
    if not items:
        return "-"
    shown: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        tail = f", +{rest}" if rest else ""
        candidate = ", ".join(shown + [item]) + tail
        if len(candidate) > width and shown:
            return ", ".join(shown) + f", +{len(items) - i}"
        if len(candidate) > width:
            return item[: max(4, width - len(tail) - 1)] + "…" + tail
        shown.append(item)
    return ", ".join(shown)


def _num(x, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _df_metrics(df: pd.DataFrame) -> list[str]:
    """The board metrics of an :meth:`Leaderboard.entries` frame, primary first (from its ``<m>_lo`` columns)."""
    return [c[:-3] for c in df.columns if c.endswith("_lo") and c != "ci_lo"] or list(QA.names)


def display_table(df: pd.DataFrame, by: str | None = None, split: str = "dev", width: int | None = 28) -> pd.DataFrame:
    """The board as strings, one column per figure, in the order the CLI prints them."""
    metrics = _df_metrics(df)
    by, primary = by or metrics[0], metrics[0]
    has_test = df[f"test_{primary}"].notna().any()
    has_dev = df[f"dev_{primary}"].notna().any()
    ci_label = f"{split} {metric_label(by)} 95% CI"
    table = pd.DataFrame({
        "rank": df["rank"].astype(str),
        "change": df["change"],
        "name": df["name"],
        "members": [shorten(m, width) if width else ", ".join(m) or "-" for m in df["members"]],
    })
    if "kind" in df and (df["kind"] != "submission").any():  # dev submissions and runs told apart from uploads
        table.insert(3, "kind", df["kind"])
    order = ["dev", "test"] if split == "dev" else ["test", "dev"]
    for s in order:
        if s == "dev" and not has_dev or s == "test" and not has_test:
            continue
        for m in metrics:
            table[f"{s} {metric_label(m)}"] = [_num(x) for x in df[f"{s}_{m}"]]
        if s == split:
            table[ci_label] = [f"[{_num(lo, 1)}, {_num(hi, 1)}]" for lo, hi in zip(df["ci_lo"], df["ci_hi"])]
        if s == "dev":
            for half in ("public", "private"):
                table[f"{half} {metric_label(primary)}"] = [_num(x) for x in df[f"{half}_{primary}"]]
    table["created"] = [_fmt_time(t) for t in df["created"]]
    return table


def _markdown_table(table: pd.DataFrame) -> list[str]:
    def cell(x) -> str:  # names are the user's: no raw HTML or table breaks reach the page
        return html.escape(str(x), quote=False).replace("|", "\\|").replace("\n", " ")

    right = {c for c in table.columns if c not in ("name", "members", "change", "created")}
    lines = ["| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---:" if c in right else "---" for c in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in table.itertuples(index=False)]
    return lines


# --------------------------------------------------------------------------- the HTML chart
def _series(metric: str) -> list[tuple[str, str, str, str]]:
    """column, label, colour, marker of the chart's series (legend order; drawn in reverse so dev stays on top)."""
    label = metric_label(metric)
    return [(f"dev_{metric}", f"dev {label}", "#1f77b4", "dot"),
            (f"test_{metric}", f"test {label}", "#ff7f0e", "square"),
            (f"public_{metric}", f"public {label}", "#2ca02c", "ring"),
            (f"private_{metric}", f"private {label}", "#d62728", "ring")]


def _marker(cx: float, cy: float, colour: str, shape: str, tip: str = "") -> str:
    title = f"<title>{tip}</title>" if tip else ""
    if shape == "square":
        return (f'<rect x="{cx - 5.5:.1f}" y="{cy - 5.5:.1f}" width="11" height="11" fill="{colour}" '
                f'fill-opacity="0.85">{title}</rect>')
    fill = colour if shape == "dot" else "white"
    return (f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="{fill}" stroke="{colour}" '
            f'stroke-width="1.8">{title}</circle>')


def _svg_chart(events: pd.DataFrame, metric: str = "em", width: int = 860, height: int = 380) -> str:
    esc = html.escape
    if events.empty:
        return "<p>No entries yet.</p>"
    series = _series(metric)
    left, right, top, bottom = 56, 150, 20, 48
    pw, ph = width - left - right, height - top - bottom
    t = events["created"].astype(float).to_numpy()
    t0, t1 = float(t.min()), float(t.max())
    if t1 - t0 < 1e-9:
        t0, t1 = t0 - 1, t1 + 1
    pad = (t1 - t0) * 0.04  # keep the first and last markers off the frame
    t0, t1 = t0 - pad, t1 + pad
    scores = pd.concat([events[c] for c, *_ in series]).astype(float).dropna()
    floor = 0.0 if not len(scores) or scores.min() >= 0 else -100.0  # MCC and correlations go below 0
    lo = max(floor, math.floor((scores.min() - 2) / 10) * 10) if len(scores) else 0.0
    hi = min(100.0, math.ceil((scores.max() + 2) / 10) * 10) if len(scores) else 100.0
    if hi <= lo:
        lo, hi = max(floor, lo - 10), min(100.0, hi + 10)

    def x(v: float) -> float:
        return left + (v - t0) / (t1 - t0) * pw

    def y(v: float) -> float:
        return top + (1 - (v - lo) / (hi - lo)) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>']
    step = 5 if hi - lo <= 30 else 10 if hi - lo <= 60 else 20
    v = lo
    while v <= hi + 1e-9:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    for k in range(5):
        tv = t0 + (t1 - t0) * k / 4
        fmt = "%H:%M:%S" if t1 - t0 < 600 else "%m-%d %H:%M" if t1 - t0 < 7 * 86400 else "%Y-%m-%d"
        label = datetime.fromtimestamp(tv).strftime(fmt)
        parts.append(f'<text x="{x(tv):.1f}" y="{top + ph + 18}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle" fill="#555">time added</text>')
    scale = "0-100" if floor == 0 else "-100 to 100"
    parts.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" fill="#555" '
                 f'transform="rotate(-90 14 {top + ph / 2})">score ({scale})</text>')

    # best dev score so far, as a step line
    best, pts = -math.inf, []
    for tv, score in sorted(zip(t, events[f"dev_{metric}"].astype(float))):
        if not math.isnan(score) and score > best:
            if pts:
                pts.append((x(tv), y(best)))
            best = score
            pts.append((x(tv), y(best)))
    if pts:
        pts.append((x(float(t.max())), y(best)))
        parts.append('<polyline fill="none" stroke="#1f77b4" stroke-opacity="0.45" stroke-width="2" '
                     f'stroke-dasharray="5 3" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')

    shown = [s for s in series if not events[s[0]].astype(float).isna().all()]
    for col, label, colour, shape in reversed(shown):
        for (_, ev), val in zip(events.iterrows(), events[col].astype(float)):
            if math.isnan(val):
                continue
            tip = esc(f"{ev['name']} ({ev['kind']}{', replaced later' if _replaced_later(events, ev) else ''}) "
                      f"{label} {val:.2f} at {_fmt_time(float(ev['created']))}")
            parts.append(_marker(x(float(ev["created"])), y(val), colour, shape, tip))
    legend_y = top + 10
    for col, label, colour, shape in shown:
        lx = left + pw + 14
        parts.append(_marker(lx, legend_y, colour, shape))
        parts.append(f'<text x="{lx + 10}" y="{legend_y + 4}">{esc(label)}</text>')
        legend_y += 20
    if pts:
        lx = left + pw + 8
        parts.append(f'<line x1="{lx}" x2="{lx + 14}" y1="{legend_y}" y2="{legend_y}" stroke="#1f77b4" '
                     'stroke-opacity="0.45" stroke-width="2" stroke-dasharray="5 3"/>')
        parts.append(f'<text x="{lx + 20}" y="{legend_y + 4}">best dev {esc(metric_label(metric))}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _replaced_later(events: pd.DataFrame, ev) -> bool:
    return bool(((events["name"] == ev["name"]) & (events["seq"] > ev["seq"])).any())


def _html_page(title: str, events: pd.DataFrame, df: pd.DataFrame, by: str, split: str, top: TopTwo | None,
               metric: str = "em", unit: str = "questions") -> str:
    esc = html.escape
    label = metric_label(metric)
    table_html = "<p>No entries yet.</p>"
    if not df.empty:
        table = display_table(df, by=by, split=split, width=None)
        head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>"
                       for row in table.itertuples(index=False))
        table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    note = f"<p>{esc(top.format())}</p>" if top else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }}
th {{ background: #f0f0f0; }}
td:nth-child(2), td:nth-child(3), td:nth-child(4) {{ text-align: left; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>{esc(title)}</h1>
<h2>Scores over time</h2>
{_svg_chart(events, metric)}
<p class="note">One marker per submission added (hover for its name); replaced versions stay in the history.
Dots: dev {esc(label)}; squares: test {esc(label)} (when the test labels are known); rings: {esc(label)} on the
simulated public and private halves of the dev {unit}; dashed: the best dev {esc(label)} so far.</p>
<h2>Ranking</h2>
{table_html}
{note}
</body></html>
"""
