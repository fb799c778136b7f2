"""The paper's figure: rating against sampling temperature, one line per player family, with CIs,
the games behind each point, shaded bands (the best expert) and reference lines (vote, mixture);
optionally a second panel on the same temperature axis (the demo's state-level gain by group)."""

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
                  ylabel: str = "Elo", states: Mapping[str, Sequence[tuple]] | None = None,
                  state_lines: Mapping[str, float] | None = None,
                  states_title: str = "The model's gain per position over the experts' average",
                  states_ylabel: str = "expected score gain (points x 100)"):
    """The paper's figure, a matplotlib Figure: one line per label over temperature (log axis), error bars lo..hi.

    series: label -> [(tau, elo, lo, hi), ...], or (tau, elo, lo, hi, games, score) with the games
    behind the point (written on the figure: in the legend when equal along a line, else by each
    point) and the player's score (share of points). A score of 0 or 1 has no finite Elo (the fit's
    value is its prior's): such a point is drawn hollow with an arrow and no CI, and a warning is
    printed. band (or several, `bands`: label -> (lo, hi)): a horizontal shaded range, e.g. the best
    expert's CI, so transcendence reads as the line rising above it; lines: label -> y, dashed
    reference levels (e.g. the experts' vote and mixture), coloured as the series whose label starts
    their own, one dash style per name after the last ": " ("diverse: vote" and "clones: vote" alike).
    states: label -> [(tau, value, lo, hi), ...], a second panel beside the first on the same
    temperature axis (the demo: the state-level gain per group of positions), coloured likewise, one
    line style per name after the last ": "; state_lines: label -> y, its reference levels (the
    vote's gain), and a grey line at 0.
    """
    import sys

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if states else 1, figsize=(12.5, 4.6) if states else (6.5, 4.2), dpi=120,
                             squeeze=False)
    ax = axes[0][0]
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
    dashes = _styles(lines or {}, ("--", ":", "-."))
    for label, y in (lines or {}).items():
        ax.axhline(y, color=_colour_of(label, colours, "black"), ls=dashes[label], lw=1.2, label=label)
    _temperature_axis(ax, taus, ylabel, title)
    if states:
        _states_panel(axes[0][1], states, state_lines or {}, colours, taus)
        axes[0][1].set_title(states_title, fontsize=10)
        axes[0][1].set_ylabel(states_ylabel)
    fig.tight_layout()
    return fig


def _states_panel(ax, states: Mapping[str, Sequence[tuple]], lines: Mapping[str, float], colours, taus) -> None:
    """rating_figure's second panel: each label's points with their CI, reference levels, zero."""
    styles = _styles(states, ("-", "--", ":"))
    for label, points in states.items():
        tau, value, lo, hi = (np.array([p[k] for p in sorted(points)], dtype=float) for k in range(4))
        ax.errorbar(tau, value, yerr=[value - lo, hi - value], marker="o" if styles[label] == "-" else "s",
                    ls=styles[label], capsize=3, color=_colour_of(label, colours, None), label=label)
    dashes = _styles(lines, ("-.", ":"))
    for label, y in lines.items():
        ax.axhline(y, color=_colour_of(label, colours, "black"), ls=dashes[label], lw=1.2, label=label)
    ax.axhline(0.0, color="grey", lw=0.8)
    _temperature_axis(ax, taus | {p[0] for points in states.values() for p in points}, None, None)


def _temperature_axis(ax, taus, ylabel: str | None, title: str | None) -> None:
    """Temperature on a log axis ticked at the points' own values (linear when tau 0 is among them)."""
    if taus and min(taus) > 0:
        ax.set_xscale("log")
        ax.set_xticks(sorted(taus), [f"{t:g}" for t in sorted(taus)])
        ax.minorticks_off()
        ax.set_xlabel("sampling temperature (log scale)")
    else:
        ax.set_xlabel("sampling temperature")
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _styles(labels, cycle: Sequence[str]) -> dict[str, str]:
    """label -> a style from `cycle`, one per name after the label's last ": ", in order of first use."""
    names: dict[str, str] = {}
    for label in labels:
        names.setdefault(label.rsplit(": ", 1)[-1], cycle[len(names) % len(cycle)])
    return {label: names[label.rsplit(": ", 1)[-1]] for label in labels}


def _colour_of(label: str, colours: Mapping[str, str], default: str) -> str:
    """The colour of the series whose label starts `label` ("diverse: vote" -> "diverse")."""
    return next((c for name, c in colours.items() if label.startswith(name)), default)
