"""A sweep config and its points: a base experiment config x a grid over its keys x seeds.

A sweep config (configs/sweeps/<name>.py, or any file) has get_config(size) -> ConfigDict with:
  experiment  what a point runs: a name in sweep.EXPERIMENTS ("populations": experiment.run_population
              for each population of the point's config)
  base        the experiment config every point starts from (configs/demo.py's fields)
  grid        [(key, values), ...] or [(label, key, values), ...]: every combination of the values,
              the first axis slowest; a key may be several config keys joined by "," set together
              from one tuple of values; a point's labels are the axes' labels (default: each key's
              last part, unless two keys share it)
  seeds       replicates of each combination: point seed = base.seed + s
  workers     how many points run at once by default (--workers)
  report      what --report draws (sweep/report.py): x, lines, measures, crossing, xscale, title, units
Each point is an independent experiment config with its own folder under --out.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import itertools
import os
import re

from ml_collections import ConfigDict

from transcendence_jax.config import apply_override
from transcendence_jax.errors import UserError

SIZES = ("reduced", "laptop", "gpu")


@dataclasses.dataclass(frozen=True)
class Point:
    """One experiment of a sweep: its index, labels (the grid's values by name, then "seed"),
    config, and folder (relative to the sweep's --out)."""

    index: int
    labels: dict
    cfg: ConfigDict
    folder: str

    def describe(self) -> str:
        return " ".join(f"{k}={value_text(v)}" for k, v in self.labels.items())


def value_text(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, (tuple, list)) else f"{value}"


def load_sweep(name_or_path: str, size: str = "laptop", overrides=()) -> ConfigDict:
    """The sweep config at a path or with a packaged name ("diversity"), at `size`, with
    `key=value` overrides (e.g. seeds=3, base.games=2000); checked, so a bad one fails here."""
    from transcendence_jax.configs import sweeps

    if size not in SIZES:
        raise UserError(f"unknown sweep size {size!r}: use {', '.join(SIZES)}")
    name = os.path.basename(name_or_path).removesuffix(".py")
    if os.path.isfile(name_or_path):
        spec = importlib.util.spec_from_file_location(f"_transcendence_sweep_{name}", name_or_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    elif name in sweeps.NAMES:  # diversity, configs/sweeps/diversity.py: the packaged file
        module = importlib.import_module(f"transcendence_jax.configs.sweeps.{name}")
    else:
        raise UserError(f"sweep config {name_or_path!r} not found: pass a file or one of {', '.join(sweeps.NAMES)}")
    if not hasattr(module, "get_config"):
        raise UserError(f"sweep config {name_or_path} has no get_config(size) function")
    sweep = module.get_config(size)
    sweep.name, sweep.size = sweep.get("name", name), size
    for override in overrides:
        apply_override(sweep, override)
    points(sweep)  # every check: the experiment kind, the grid, the keys and their values
    return sweep


def points(sweep: ConfigDict) -> list[Point]:
    """Every point of the sweep, in order: the grid's combinations (first key slowest), each
    with seeds 0..seeds-1."""
    from transcendence_jax.sweep import EXPERIMENTS

    for field in ("experiment", "base", "grid", "seeds"):
        if field not in sweep:
            raise UserError(f"sweep {sweep.name}: no `{field}` field (sweep/grid.py lists them)")
    if sweep.experiment not in EXPERIMENTS:
        raise UserError(f"sweep {sweep.name}: experiment {sweep.experiment!r} unknown: use {', '.join(EXPERIMENTS)}")
    axes = [tuple(axis) if len(axis) == 3 else (None, *axis) for axis in sweep.grid]
    if not axes or any(len(axis) != 3 or not axis[2] for axis in axes):
        raise UserError(f"sweep {sweep.name}: empty grid {list(sweep.grid)!r}: give [(key, [value, ...]), ...] "
                        "with at least one value a key")
    if sweep.seeds < 1:
        raise UserError(f"sweep {sweep.name}: seeds={sweep.seeds}: at least one")
    keys = [k for _, key, _ in axes for k in key.split(",")]
    short = {k: k.split(".")[-1] if sum(x.split(".")[-1] == k.split(".")[-1] for x in keys) == 1 else k for k in keys}
    out = []
    for combo in itertools.product(*(values for _, _, values in axes)):
        assign, labels = {}, {}
        for (label, key, _), value in zip(axes, combo):
            names = key.split(",")
            if len(names) > 1 and not (isinstance(value, (tuple, list)) and len(value) == len(names)):
                raise UserError(f"sweep {sweep.name}: grid key {key!r} sets {len(names)} keys: each value must be "
                                f"a tuple of {len(names)}, got {value!r}")
            values = value if len(names) > 1 else (value,)
            assign.update(zip(names, values))
            labels.update({label: value} if label else {short[k]: v for k, v in zip(names, values)})
        for seed in range(sweep.seeds):
            cfg = ConfigDict(sweep.base.to_dict())
            for key, value in assign.items():
                try:
                    apply_override(cfg, f"{key}={value if isinstance(value, str) else repr(value)}")
                except UserError as e:
                    raise UserError(f"sweep {sweep.name}: grid {e}") from None
            cfg.seed, cfg.seeds = sweep.base.seed + seed, 1
            point = Point(len(out), {**labels, "seed": seed}, cfg, "")
            folder = f"{point.index:03d}-" + "_".join(f"{k}{value_text(v)}" for k, v in point.labels.items())
            out.append(dataclasses.replace(point, folder=re.sub(r"[^A-Za-z0-9_.=-]", "", folder)[:80]))
    return out
