"""`transcendence sweep CONFIG --report`: whatever points exist, aggregated (also run after a sweep).

The rows of the done points are grouped by their labels (the point's setting and the experiment's
own row labels, the seed aside); each measure's mean over seeds and its 95% CI come from
rating.across_seeds (resampling the seeds and each seed's own bootstrap draws over its games; with
one seed, the games' CI). With report.crossing, where that measure falls through zero along x (the
first grid step from above zero to at or below it, linearly interpolated between grid points) is
found per line, its 95% CI from the same draws: bootstrap over seeds and games. Writes, in --out:
results.json, figure.png (a panel per measure against report.x, a line per value of report.lines)
and summary.md (the table, the crossings, then the failed, unfinished and missing points).

Units: each measure's unit is report.units[name] (a mapping in the sweep config, by the full name or
the name before "@": {"top1": "fraction"}), else a rule by name: "Elo" for Elo ratings and their
differences (the name, before any "@T", is or starts with "elo", ends with "_elo" or holds "minus":
model_minus_best_expert, elo@1, minus_best_expert@1), "nats" for an entropy, "fraction" for an
agreement (base_agreement), else none. The unit labels the panel's y axis and the table's column;
only an Elo measure gets the zero line and whole-Elo signed cells (+94 [+63, +126]), the others
three decimals (2.954 [2.950, 2.958]; whole numbers from 100 up).
Labels: a grid axis that sets several keys under one label (specialists' ("crowd",
"expert_kind,experts", [("specialist", 3), ...])) reads "expert_kind=specialist, experts=3" in the
legend, ticks and crossings (each key's last part), and is one column per key in the table.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from ml_collections import ConfigDict

from transcendence_jax.errors import UserError
from transcendence_jax.sweep.grid import Point, points, value_text
from transcendence_jax.sweep.runner import status


def settings(sweep: ConfigDict, groups: list[dict]) -> dict:
    """sweep.report with its defaults: x the first grid key, every measure, no lines, no crossing;
    with each measure's unit (units: see the top) and the grid's several-key axes (axes: label ->
    the short names of its keys)."""
    rc = sweep.get("report", ConfigDict()).to_dict()
    first = points(sweep)[0]
    measures = list(rc.get("measures") or dict.fromkeys(m for g in groups for m in g["measures"]))
    given = dict(rc.get("units") or {})
    axes = {}
    for axis in sweep.grid:
        if len(axis) == 3 and "," in axis[1]:
            keys = axis[1].split(",")
            tails = [k.split(".")[-1] for k in keys]
            axes[axis[0]] = [t if tails.count(t) == 1 else k for k, t in zip(keys, tails)]
    return dict(x=rc.get("x") or next(iter(first.labels)), lines=rc.get("lines", ""),
                measures=measures, crossing=rc.get("crossing", ""),
                xscale=rc.get("xscale", "linear"), title=rc.get("title") or f"sweep {sweep.name} ({sweep.size})",
                units={m: given.get(m, given.get(m.split("@")[0], unit_of(m))) for m in measures}, axes=axes)


def unit_of(name: str) -> str:
    """A measure's unit by its name (the rule at the top): "Elo", "nats", "fraction" or ""."""
    base = name.split("@")[0].lower()
    if base.startswith("elo") or base.endswith("_elo") or "minus" in base:
        return "Elo"
    return "nats" if "entropy" in base else "fraction" if "agreement" in base else ""


def shown(rc: dict, label: str, value) -> str:
    """A label's value as text: a several-key axis's tuple as "key=value, key=value"."""
    names = rc.get("axes", {}).get(label)
    if names and isinstance(value, (tuple, list)) and len(value) == len(names):
        return ", ".join(f"{n}={value_text(v)}" for n, v in zip(names, value))
    return value_text(value)


def line_label(rc: dict, line) -> str:
    """A line's name in the legend and the crossings: lines=value, or a several-key axis's keys."""
    return shown(rc, rc["lines"], line) if rc["lines"] in rc.get("axes", {}) else f"{rc['lines']}={value_text(line)}"


def columns(rc: dict, labels: dict) -> dict:
    """A group's labels for the table: a several-key axis split into a column per key (one already
    among the labels with the same value is shown once)."""
    out: dict = {}
    for k, v in labels.items():
        names = rc.get("axes", {}).get(k)
        if names and isinstance(v, (tuple, list)) and len(v) == len(names):
            for n, x in zip(names, v):
                out[n if labels.get(n, x) == x else f"{k}.{n}"] = x
        else:
            out.setdefault(k, v)
    return out


def cell(m: dict, unit: str) -> str:
    """A measure's mean [95% CI]: whole signed Elo, else three decimals (whole numbers from 100 up)."""
    def num(v):
        return f"{v:+.0f}" if unit == "Elo" else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return f"{num(m['value'])} [{num(m['lo'])}, {num(m['hi'])}]"


def titled(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name


def group(rows: list[tuple[Point, dict]], seed: int) -> list[dict]:
    """Rows with the same labels (seed aside) -> one group: per measure the mean over seeds, its 95%
    CI (rating.across_seeds), each seed's value, and (under "samples", not saved) the draws' inputs."""
    from transcendence_jax.rating import across_seeds

    groups: dict[str, dict] = {}
    for point, row in rows:
        labels = {k: v for k, v in point.labels.items() if k != "seed"} | row["labels"]
        g = groups.setdefault(json.dumps(labels, sort_keys=True, default=str),
                              dict(labels=labels, seeds=[], measures={}, samples={}))
        g["seeds"].append(point.labels["seed"])
        for name, m in row["measures"].items():
            m = m if isinstance(m, dict) else {"value": m}
            g["measures"].setdefault(name, []).append(m["value"])
            g["samples"].setdefault(name, []).append(np.asarray(m.get("samples") or [m["value"]], float))
    for g in groups.values():
        for name, values in g["measures"].items():
            mean, lo, hi = across_seeds(values, g["samples"][name], seed=seed)
            g["measures"][name] = dict(value=mean, lo=lo, hi=hi, per_seed=values)
    return list(groups.values())


def lines_of(groups: list[dict], rc: dict) -> dict:
    """line value -> its groups sorted by x (one line, "", when report.lines is empty)."""
    for g in groups:
        for label in filter(None, (rc["x"], rc["lines"])):
            if label not in g["labels"]:
                raise UserError(f"report label {label!r} is not among the rows' labels ({', '.join(g['labels'])}): "
                                "set the sweep config's report.x / report.lines to one of them")
    out: dict = {}
    for g in groups:
        out.setdefault(g["labels"][rc["lines"]] if rc["lines"] else "", []).append(g)
    return {line: sorted(gs, key=lambda g: g["labels"][rc["x"]]) for line, gs in sorted(out.items())}


def zero_crossing(xs, ys) -> float:
    """Where ys first falls from above zero to at or below it, interpolated between grid points;
    -inf when it starts at or below zero, +inf when it never gets there."""
    if ys[0] <= 0:
        return -math.inf
    for i in range(len(xs) - 1):
        if ys[i + 1] <= 0:
            return xs[i] + (xs[i + 1] - xs[i]) * ys[i] / (ys[i] - ys[i + 1])
    return math.inf


def crossings(groups: list[dict], rc: dict, seed: int) -> list[dict]:
    """Per line, where report.crossing's measure crosses zero along x, with a 95% bootstrap CI."""
    from transcendence_jax.rating import seed_draws

    name, out = rc["crossing"], []
    for line, members in lines_of(groups, rc).items():
        members = [g for g in members if name in g["measures"]]
        if len(members) < 2:
            continue
        if not all(isinstance(g["labels"][rc["x"]], (int, float)) for g in members):
            raise UserError(f"report.crossing needs a numeric x: {rc['x']} has {members[0]['labels'][rc['x']]!r}")
        xs = [float(g["labels"][rc["x"]]) for g in members]
        draws = np.array([seed_draws(g["samples"][name], seed=seed + i) for i, g in enumerate(members)])
        boot = [zero_crossing(xs, draws[:, b]) for b in range(draws.shape[1])]
        est = zero_crossing(xs, [g["measures"][name]["value"] for g in members])
        lo, hi = np.percentile(boot, 2.5, method="lower"), np.percentile(boot, 97.5, method="higher")
        est, lo, hi = (_bounded(v, xs) for v in (est, lo, hi))
        text = (f"{line_label(rc, line)}: " if rc["lines"] else "") + (
            f"{name} crosses zero at {rc['x']} {est} [95% CI {lo}, {hi}] "
            "(interpolated between grid points; CI: bootstrap over seeds and games)")
        out.append(dict(line=line, measure=name, x=rc["x"], crossing=est, lo=lo, hi=hi, text=text))
    return out


def _bounded(v: float, xs) -> float | str:
    """A crossing as a number, or as text past the grid's ends (JSON has no infinities)."""
    return f"<= {xs[0]:g}" if v == -math.inf else f"> {xs[-1]:g}" if v == math.inf else round(float(v), 3)


def figure(groups: list[dict], rc: dict, found: list[dict]):
    """A matplotlib Figure (not pyplot's: nothing to close), a panel per measure: its mean and 95% CI
    against x, a line per value of report.lines, the y axis in the measure's unit, the zero line on
    Elo panels, and the crossings (a diamond at zero with its CI) on the crossing measure's panel."""
    from matplotlib.figure import Figure

    measures = rc["measures"]
    fig = Figure(figsize=(5.2 * len(measures), 4.2), dpi=110)
    axes = fig.subplots(1, len(measures), squeeze=False)
    lines = lines_of(groups, rc)
    values = sorted({shown(rc, rc["x"], g["labels"][rc["x"]]) for g in groups})
    numeric = all(isinstance(g["labels"][rc["x"]], (int, float)) for g in groups)
    where = (lambda v: float(v)) if numeric else (lambda v: values.index(shown(rc, rc["x"], v)))  # text: spaced
    for ax, name in zip(axes[0], measures):
        unit = rc.get("units", {}).get(name, unit_of(name))
        for i, (line, members) in enumerate(lines.items()):
            pts = [(g["labels"][rc["x"]], g["measures"][name]) for g in members if name in g["measures"]]
            if not pts:
                continue
            x = np.array([where(p[0]) for p in pts], float)
            y, lo, hi = (np.array([p[1][k] for p in pts]) for k in ("value", "lo", "hi"))
            label = line_label(rc, line) if rc["lines"] else None
            ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=label, color=f"C{i}")
            for c in found if name == rc["crossing"] else []:
                if c["line"] == line and isinstance(c["crossing"], float):
                    left = c["lo"] if isinstance(c["lo"], float) else x.min()
                    right = c["hi"] if isinstance(c["hi"], float) else x.max()
                    ax.errorbar([c["crossing"]], [0], xerr=[[c["crossing"] - left], [right - c["crossing"]]],
                                marker="D", color=f"C{i}", capsize=4, markersize=7)
        if unit == "Elo":
            ax.axhline(0, color="grey", lw=0.8, ls="--")
        if numeric:
            ax.set_xscale(rc["xscale"])
        else:
            ax.set_xticks(range(len(values)), values, rotation=20, fontsize=8)
        ax.set_xlabel(rc["x"])
        ax.set_ylabel(titled(name, unit))
        ax.set_title(name.replace("_", " "), fontsize=10)
        if rc["lines"] and ax is axes[0][0]:
            ax.legend(fontsize=8)
    drawn = any(isinstance(c["crossing"], float) for c in found)
    fig.suptitle(rc["title"] + ("; diamonds: zero crossing, 95% CI" if drawn else ""), fontsize=11)
    fig.tight_layout()
    return fig


def table(groups: list[dict], rc: dict) -> str:
    """A markdown table: the labels that vary (a several-key axis a column per key), the seeds,
    each measure's mean [95% CI] in its unit (in the column's head)."""
    shown_labels = [columns(rc, g["labels"]) for g in groups]
    x = columns(rc, {rc["x"]: groups[0]["labels"].get(rc["x"])})
    every = list(dict.fromkeys(k for labels in shown_labels for k in labels))
    labels = [k for k in every if len({json.dumps(s.get(k), default=str) for s in shown_labels}) > 1 or k in x]
    units = rc.get("units", {})
    head = [*labels, "seeds", *(titled(m, units.get(m, unit_of(m))) for m in rc["measures"])]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    order = sorted(range(len(groups)), key=lambda i: [json.dumps(shown_labels[i].get(k), default=str) for k in labels])
    for i in order:
        g = groups[i]
        cells = [value_text(shown_labels[i][k]) if k in shown_labels[i] else "-" for k in labels]
        cells.append(f"{len(g['seeds'])}")
        for name in rc["measures"]:
            m = g["measures"].get(name)
            cells.append(cell(m, units.get(name, unit_of(name))) if m else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(sweep: ConfigDict, out: str) -> dict:
    """Aggregate the done points of `sweep` in `out`; print and write the results (see the top)."""
    every = points(sweep)
    states = {p.index: status(out, p) for p in every}
    rows = []
    for p in every:
        if states[p.index][0] == "done":
            with open(os.path.join(out, p.folder, "point.json")) as f:
                rows += [(p, row) for row in json.load(f)["rows"]]
    groups = group(rows, sweep.base.seed)
    rc = settings(sweep, groups)
    found = crossings(groups, rc, sweep.base.seed) if groups and rc["crossing"] else []
    count = {s: sum(st == s for st, _ in states.values()) for s in ("done", "failed", "started", "missing")}
    text = [f"sweep {sweep.name} ({sweep.size}): {count['done']} of {len(every)} points done"
            + "".join(f", {count[s]} {s if s != 'started' else 'unfinished'}" for s in ("failed", "started", "missing")
                      if count[s])]
    if groups:
        text += ["", table(groups, rc)]
    text += [""] * bool(found) + [c["text"] for c in found]
    text += [f"point {p.index} ({p.describe()}) {st}{f': {detail}' if detail else ''}: {os.path.join(out, p.folder)}"
             for p in every for st, detail in [states[p.index]] if st in ("failed", "started")]
    if count["missing"]:
        text.append("missing: points " + ", ".join(str(p.index) for p in every if states[p.index][0] == "missing"))
    os.makedirs(out, exist_ok=True)
    if groups:
        figure(groups, rc, found).savefig(os.path.join(out, "figure.png"))
    summary = dict(sweep=sweep.name, size=sweep.size, experiment=sweep.experiment, report=rc,
                   points=[dict(index=p.index, folder=p.folder, setting=p.labels, status=states[p.index][0],
                                **({"error": states[p.index][1]} if states[p.index][1] else {})) for p in every],
                   groups=[{k: v for k, v in g.items() if k != "samples"} for g in groups], crossings=found,
                   table="\n".join(text), config=sweep.to_dict())
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1, default=list)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(text) + "\n")
    print("\n".join(text))
    print(f"\nwrote {out}/results.json, {out}/summary.md" + (f" and {out}/figure.png" if groups else ""))
    return summary
