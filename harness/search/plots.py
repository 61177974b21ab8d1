"""A study's plots: ``history.html`` (optimisation history) and ``importances.html`` (parameter
importances), from optuna.visualization when plotly is installed, else self-contained SVG."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from harness.common.io import atomic_write_text


def write_plots(study, folder: Path, metric: str) -> list[Path]:
    folder = Path(folder)
    out = []
    try:
        import plotly  # noqa: F401
        from optuna import visualization as vis

        vis.plot_optimization_history(study).write_html(str(folder / "history.html"))
        out.append(folder / "history.html")
        try:
            vis.plot_param_importances(study).write_html(str(folder / "importances.html"))
            out.append(folder / "importances.html")
        except (ValueError, RuntimeError):
            pass
        return out
    except ImportError:
        pass
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    atomic_write_text(folder / "history.html", _page(f"{study.study_name}: optimisation history",
                                                     _history_svg(trials, metric)))
    out.append(folder / "history.html")
    try:
        from optuna.importance import get_param_importances

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = get_param_importances(study)
        body = _bars_svg(importances) if importances else "<p>no varying parameter</p>"
    except (ValueError, RuntimeError, ImportError, ZeroDivisionError) as e:
        body = f"<p>parameter importances need at least two complete trials ({e})</p>"
    atomic_write_text(folder / "importances.html", _page(f"{study.study_name}: parameter importances", body))
    out.append(folder / "importances.html")
    return out


def _page(title: str, body: str) -> str:
    from html import escape

    return (f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<body style='font-family:sans-serif'><h3>{escape(title)}</h3>{body}</body>")


def _history_svg(trials, metric: str, w: int = 720, h: int = 360, m: int = 48) -> str:
    pts = [(t.number, t.value, t.state.name) for t in trials if t.value is not None and math.isfinite(t.value)]
    if not pts:
        return "<p>no finished trials yet</p>"
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 1, y1 + 1

    def X(x):
        return m + (x - x0) / (x1 - x0) * (w - 2 * m)

    def Y(y):
        return h - m - (y - y0) / (y1 - y0) * (h - 2 * m)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}'>",
             f"<line x1='{m}' y1='{h - m}' x2='{w - m}' y2='{h - m}' stroke='#444'/>",
             f"<line x1='{m}' y1='{m}' x2='{m}' y2='{h - m}' stroke='#444'/>",
             f"<text x='{w / 2}' y='{h - 10}' text-anchor='middle' font-size='12'>trial</text>",
             f"<text x='14' y='{h / 2}' font-size='12' transform='rotate(-90 14 {h / 2})' "
             f"text-anchor='middle'>{metric}</text>",
             f"<text x='{m - 4}' y='{Y(y1) + 4}' text-anchor='end' font-size='10'>{y1:.2f}</text>",
             f"<text x='{m - 4}' y='{Y(y0) + 4}' text-anchor='end' font-size='10'>{y0:.2f}</text>"]
    best, line = -math.inf, []
    for x, y, state in sorted(pts):
        if state == "COMPLETE":
            best = max(best, y)
        if best > -math.inf:
            line.append(f"{X(x):.1f},{Y(best):.1f}")
        color = "#1f77b4" if state == "COMPLETE" else "#bbb"
        parts.append(f"<circle cx='{X(x):.1f}' cy='{Y(y):.1f}' r='4' fill='{color}'><title>trial {x} {state} "
                     f"{y:.2f}</title></circle>")
    if line:
        parts.append(f"<polyline points='{' '.join(line)}' fill='none' stroke='#d62728'/>")
    parts.append("</svg><p>blue: complete trials, grey: pruned (last reported value), red: best so far</p>")
    return "".join(parts)


def _bars_svg(importances: dict, w: int = 720, row: int = 26) -> str:
    from html import escape

    h = row * len(importances) + 20
    top = max(importances.values()) or 1.0
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}'>"]
    for i, (name, v) in enumerate(importances.items()):
        y = 10 + i * row
        parts.append(f"<text x='150' y='{y + 15}' text-anchor='end' font-size='12'>{escape(name)}</text>")
        parts.append(f"<rect x='160' y='{y}' width='{(w - 260) * v / top:.1f}' height='{row - 8}' fill='#1f77b4'/>")
        parts.append(f"<text x='{165 + (w - 260) * v / top:.1f}' y='{y + 15}' font-size='12'>{v:.3f}</text>")
    parts.append("</svg>")
    return "".join(parts)
