"""Running a sweep's points: all of them locally, up to N processes at once, or exactly one.

A point's folder (under --out) holds settings.json (its whole config, checked at every rerun as
experiment.check_settings does), the experiment's own folders, log.txt (when run by the local
runner), and at the end point.json (its rows of measures: the only sign that it is done, so a
finished point is never redone) or failed.txt (the one line that says why it failed). A point
holds its folder's lock while it runs, so two hosts given the same point get one line.
"""

from __future__ import annotations

import importlib
import json
import os
import time

from ml_collections import ConfigDict

from transcendence_jax.errors import UserError
from transcendence_jax.sweep.grid import Point, points


def experiment_function(kind: str):
    """The function that runs one point of experiment `kind`: f(cfg, root) -> rows (sweep/__init__.py)."""
    from transcendence_jax.sweep import EXPERIMENTS

    module, name = EXPERIMENTS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def status(out: str, point: Point) -> tuple[str, str]:
    """(state, detail) of a point from its folder: done, failed (the error line), started (running
    elsewhere, or stopped mid-way) or missing."""
    root = os.path.join(out, point.folder)
    if os.path.exists(os.path.join(root, "point.json")):
        return "done", ""
    if os.path.exists(os.path.join(root, "failed.txt")):
        with open(os.path.join(root, "failed.txt")) as f:
            return "failed", f.read().strip()
    return ("started", "") if os.path.exists(os.path.join(root, "settings.json")) else ("missing", "")


def run_point(experiment: str, point: Point, out: str) -> None:
    """Run one point into out/<point.folder> (skipped when done); a failure leaves failed.txt."""
    from transcendence_jax import jsonl, workdir_lock
    from transcendence_jax.experiment import check_settings

    root = os.path.join(out, point.folder)
    if status(out, point)[0] == "done":
        print(f"point {point.index} ({point.describe()}): already done")
        return
    with workdir_lock.hold(root, "sweep", "--out"):
        check_settings(root, point.cfg)
        failed = os.path.join(root, "failed.txt")
        if os.path.exists(failed):
            os.remove(failed)
        start = time.time()
        try:
            rows = experiment_function(experiment)(ConfigDict(point.cfg.to_dict()), root)
        except Exception as e:
            with open(failed, "w") as f:
                f.write(f"{e}" if isinstance(e, UserError) else f"{type(e).__name__}: {e}")
            raise
        result = dict(index=point.index, setting=point.labels, seconds=round(time.time() - start, 1), rows=rows)
        jsonl.rewrite(os.path.join(root, "point.json"), [json.dumps(result, indent=1, default=float) + "\n"])


def check_points(sweep: ConfigDict, every: list[Point], out: str, write: bool = True) -> None:
    """Check each existing point folder against its point's settings (a changed sweep on an old
    --out is refused before anything runs); write sweep.json (not from --point: many such jobs
    start at once on one folder)."""
    from transcendence_jax import jsonl
    from transcendence_jax.experiment import check_settings

    for point in every:
        if os.path.exists(os.path.join(out, point.folder, "settings.json")):
            check_settings(os.path.join(out, point.folder), point.cfg)
    os.makedirs(out, exist_ok=True)
    if not write:
        return
    summary = dict(sweep=sweep.name, size=sweep.size, config=sweep.to_dict(),
                   points=[dict(index=p.index, folder=p.folder, setting=p.labels) for p in every])
    jsonl.rewrite(os.path.join(out, "sweep.json"), [json.dumps(summary, indent=1, default=list) + "\n"])


def run_sweep(sweep: ConfigDict, out: str, *, workers: int | None = None, point: int | None = None,
              shard: tuple[int, int] | None = None) -> None:
    """Run the sweep's points that are not done: exactly `point`, in this process; or the rest
    (every one, or those with index % hosts == host for `shard` = (host, hosts)) up to `workers`
    processes at once, a progress line per point, then the report (not for a shard: the last
    host's `--report` makes it). Failed points are named at the end in one UserError; the
    finished ones are kept."""
    from transcendence_jax.demo import run_processes
    from transcendence_jax.experiment import trains_together
    from transcendence_jax.sweep.report import report

    every = points(sweep)
    if point is not None and not 0 <= point < len(every):
        raise UserError(f"--point {point}: sweep {sweep.name} ({sweep.size}) has points 0..{len(every) - 1}")
    check_points(sweep, every, out, write=point is None)
    if point is not None:
        run_point(sweep.experiment, every[point], out)
        return
    mine = [p for p in every if shard is None or p.index % shard[1] == shard[0]]
    todo = [p for p in mine if status(out, p)[0] != "done"]
    workers = max(1, min(workers or sweep.get("workers", os.cpu_count() or 1), len(todo) or 1))
    print(f"sweep {sweep.name} ({sweep.size}): {len(every)} points, {len(mine) - len(todo)} of {len(mine)} "
          f"{'here ' if shard else ''}done, {len(todo)} to run, {workers} at a time, in {out}", flush=True)
    if workers > 1:  # several processes on one accelerator: each takes the memory it needs, not 75%
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if sweep.experiment == "populations" and len(todo) > 1 and trains_together(sweep.base):
        # every point's data, then the models of one shape in one stacked step (demo.data_then_training);
        # each point's run then finds its training finished and goes on to its tournament
        from transcendence_jax.demo import data_then_training

        units = []
        for p in todo:
            cfg = ConfigDict(p.cfg.to_dict())
            cfg.workers = max(1, cfg.workers // workers)
            units += [(cfg, kind, os.path.join(out, p.folder), 0) for kind in cfg.populations]
        data_then_training(units, os.path.join(out, "stages"), workers)
    jobs = {}
    for p in todo:
        cfg = ConfigDict(p.cfg.to_dict())
        cfg.workers = max(1, cfg.workers // workers)  # expert games' processes: a share of the cores
        jobs[p.folder] = (run_point, (sweep.experiment, Point(p.index, p.labels, cfg, p.folder), out),
                          os.path.join(out, p.folder))
    progress = Progress(todo, workers)
    codes = run_processes(jobs, workers, on_event=progress, tag=True) if jobs else {}
    if shard is None:
        report(sweep, out)
    else:
        print(f"shard {shard[0]}/{shard[1]} finished; when every shard is, `--report` aggregates them all")
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        raise UserError(f"{len(failed)} point(s) failed: {', '.join(failed)} (each one's log.txt and failed.txt "
                        f"say why); the {len(codes) - len(failed)} finished here are kept: rerun the same command "
                        "to retry the failed ones")


class Progress:
    """The line printed when a point starts or ends: done / failed / running / left, and an ETA
    from the mean time of the points finished so far."""

    def __init__(self, todo: list[Point], workers: int):
        self.points = {p.folder: p for p in todo}
        self.started, self.seconds, self.failed, self.workers = {}, [], 0, workers

    def __call__(self, name: str, code: int | None) -> None:
        point = self.points[name]
        if code is None:
            self.started[name] = time.time()
            what = "started"
        else:
            took = time.time() - self.started.pop(name)
            self.seconds += [took] if code == 0 else []
            self.failed += code != 0
            what = f"{'done' if code == 0 else f'FAILED (exit code {code})'} in {_minutes(took)}"
        done = len(self.seconds)
        left = len(self.points) - done - self.failed - len(self.started)
        eta = ""
        if self.seconds and (left or self.started):
            mean = sum(self.seconds) / done
            eta = f", ETA {_minutes(mean * (left + len(self.started) / 2) / self.workers)}"
        print(f"-- point {point.index} ({point.describe()}) {what}: {done} done, "
              f"{f'{self.failed} failed, ' if self.failed else ''}{len(self.started)} running, {left} left{eta}",
              flush=True)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
