"""`transcendence sweep CONFIG`: a grid of experiments, each point an independent, resumable command.

A sweep config (configs/sweeps/, fields in sweep/grid.py) names an experiment kind, a base
experiment config, a grid over its keys and seeds: a list of points, each with its own folder
under --out. Locally every point that is not done runs, up to --workers processes at once, then
the report; `--point I` runs exactly point I (a SLURM array task, a pod host: README "Sweeps");
`--report` aggregates whatever points exist into results.json, figure and table.

EXPERIMENTS: kind -> "module:function", the function f(cfg, root) -> rows running one point's
config into its folder `root` (resumable) and returning a list of rows, each
{"labels": {name: value}, "measures": {name: {"value": v, "samples": [bootstrap draws]} or v},
"info": {...}}; the report groups rows by their labels and the point's setting (seed aside) and
combines each measure across seeds with rating.across_seeds.
"""

from __future__ import annotations

import argparse
import os

from transcendence_jax.errors import UserError

EXPERIMENTS = {
    "populations": "transcendence_jax.sweep.populations:run",  # experiment.run_population per population
    "generations": "transcendence_jax.generations:sweep_point",  # generation 0 and the self-play chains
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from transcendence_jax.config import add_config_arguments
    from transcendence_jax.configs.sweeps import NAMES
    from transcendence_jax.sweep.grid import SIZES

    parser.add_argument("sweep", metavar="CONFIG", help=f"a sweep config: {', '.join(NAMES)} or a file")
    parser.add_argument("--out", required=True, help="the sweep's folder (a folder per point); reruns resume")
    parser.add_argument("--size", choices=SIZES, default="laptop",
                        help="reduced: a test's size; laptop: under an hour on 2 CPU cores; gpu: one GPU")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="points run at once, a process each (default: the config's, else the cores)")
    parser.add_argument("--point", type=int, default=None, metavar="I", help="run exactly point I, in this process")
    parser.add_argument("--shard", default=None, metavar="W/H",
                        help="run only the points with index %% H == W (host W of H; e.g. a pod's hosts)")
    parser.add_argument("--report", action="store_true",
                        help="only aggregate the points that exist: results.json, figure, table")
    parser.add_argument("--list", action="store_true", help="print the points and their state, run nothing")
    add_config_arguments(parser, default="", help=argparse.SUPPRESS, example="seeds=3 or --config.base.games=2000")


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        host, hosts = (int(x) for x in text.split("/"))
    except ValueError:
        host, hosts = -1, 0
    if not 0 <= host < hosts:
        raise UserError(f"--shard {text!r}: write W/H with 0 <= W < H (host W of H hosts)")
    return host, hosts


def run(args: argparse.Namespace) -> int:
    from transcendence_jax.sweep.grid import load_sweep, points
    from transcendence_jax.sweep.report import report
    from transcendence_jax.sweep.runner import run_sweep, status

    if args.config:
        raise UserError("name the sweep config as CONFIG (`transcendence sweep CONFIG`), not --config")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: at least 1")
    sweep = load_sweep(args.sweep, args.size, args.overrides)
    if args.list:
        for point in points(sweep):
            state, detail = status(args.out, point)
            print(f"{point.index:4d}  {state:8s} {point.describe()}  {os.path.join(args.out, point.folder)}"
                  + (f"  ({detail})" if detail else ""))
    elif args.report:
        report(sweep, args.out)
    else:
        run_sweep(sweep, args.out, workers=args.workers, point=args.point, shard=_shard(args.shard))
    return 0
