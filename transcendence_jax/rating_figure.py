"""The paper's figure: rating against sampling temperature, one line per player family, with CIs,
the games behind each point, shaded bands (the best expert) and reference lines (vote, mixture)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def plot_rating_vs_temperature(series: Mapping[str, Sequence[tuple]], path: str, **kwargs) -> str:
    """Write `rating_figure(series, **kwargs)` to a PNG at `path`; returns path."""
    fig = rating_figure(series, **kwargs)  # sets the Agg backend before pyplot is imported here
    import matplotlib.pyplot as plt

    fig.savefig(path)
    plt.close(fig)
    return path


def rating_figure(series: Mapping[str, Sequence[tuple]], *, band: tuple[float, float] | None = None,
                  band_label: str = "best expert (95% CI)", bands: Mapping[str, tuple[float, float]] | None = None,
                  lines: Mapping[str, float] | None = None, title: str = "Rating against sampling temperature",
                  ylabel: str = "Elo"):
    """The paper's figure, a matplotlib Figure: one line per label over temperature (log axis), error bars lo..hi.

    series: label -> [(tau, elo, lo, hi), ...], or (tau, elo, lo, hi, games, score) with the games
    behind the point (written on the figure: in the legend when equal along a line, else by each
    point) and the player's score (share of points). A score of 0 or 1 has no finite Elo (the fit's
    value is its prior's): such a point is drawn hollow with an arrow and no CI, and a warning is
    printed. band (or several, `bands`: label -> (lo, hi)): a horizontal shaded range, e.g. the best
    expert's CI, so transcendence reads as the line rising above it; lines: label -> y, dashed
    reference levels (e.g. the experts' vote and mixture), coloured as the series whose label starts
    their own.
    """
    import sys

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    taus, colours = set(), {}
    for label, points in series.items():
        pts = sorted(tuple(p) + (None,) * (6 - len(p)) for p in points)
        if not pts:
            continue
        games = [p[4] for p in pts]
        same = games[0] is not None and len(set(games)) == 1
        shown = f"{label} ({games[0]} games a point)" if same else label
        bounded = [p for p in pts if p[5] is None or 0 < p[5] < 1]
        tau, elo, lo, hi = (np.array([p[k] for p in bounded], dtype=float) for k in range(4))
        taus.update(p[0] for p in pts)
        drawn = ax.errorbar(tau, elo, yerr=[elo - lo, hi - elo], marker="o", capsize=3, label=shown)
        colour = colours[label] = drawn[0].get_color()
        for t, y, _, _, n, score in pts:
            if score is not None and not 0 < score < 1:
                ax.plot([t], [y], marker="^" if score else "v", ms=9, mfc="none", color=colour, ls="none")
                ax.annotate(f"{score:.0%} score: no finite CI", (t, y), textcoords="offset points", xytext=(6, 6),
                            fontsize=7, color=colour)
                print(f"warning: {label} at temperature {t:g} scored {score:.0%} in {n} games: its Elo is unbounded "
                      f"({'above' if score else 'below'}; the figure's value is the fit's prior), no finite CI",
                      file=sys.stderr)
            if n is not None and not same:
                ax.annotate(f"n={n}", (t, y), textcoords="offset points", xytext=(4, -10), fontsize=6,
                            color=colour)
    if band is not None:
        ax.axhspan(band[0], band[1], color="grey", alpha=0.25, label=band_label)
    for label, (lo, hi) in (bands or {}).items():
        ax.axhspan(lo, hi, color=_colour_of(label, colours, "grey"), alpha=0.15, label=label)
    for i, (label, y) in enumerate((lines or {}).items()):
        ax.axhline(y, color=_colour_of(label, colours, "black"), ls=("--", ":")[i % 2], lw=1.2, label=label)
    if taus and min(taus) > 0:
        ax.set_xscale("log")
        ax.set_xticks(sorted(taus), [f"{t:g}" for t in sorted(taus)])
        ax.minorticks_off()
        ax.set_xlabel("sampling temperature (log scale)")
    else:
        ax.set_xlabel("sampling temperature")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _colour_of(label: str, colours: Mapping[str, str], default: str) -> str:
    """The colour of the series whose label starts `label` ("diverse: vote" -> "diverse")."""
    return next((c for name, c in colours.items() if label.startswith(name)), default)
