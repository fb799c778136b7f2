"""Games/s of `data build` against a plain single-process python-chess `read_game` loop.

Both are measured in the same run, interleaved, best of --repeats (these machines are
shared and noisy); the figure to read is the ratio. Target: >= 3x on a 2-core machine.
Wall-clock games/s is what a user sees; on a machine busy with other work the worker pool
cannot get its cores, so CPU-seconds per game (parent + workers) are printed too: that
ratio does not depend on the load.

    .venv/bin/python benchmarks/ingest.py [--file PGN] [--copies 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import tempfile
import time

import chess.pgn
from machine import report_load  # benchmarks/machine.py

from transcendence_jax.data import build, ingest

DEFAULT = pathlib.Path(__file__).resolve().parents[1].parent / "shared/data/lichess/lichess_2021-10_head999.pgn"


def read_game_loop(path: str) -> int:
    n = 0
    with open(path) as f:
        while chess.pgn.read_game(f) is not None:
            n += 1
    return n


def data_build(path: str, out: str, workers: int | None, max_rating: int | None) -> int:
    stats = build.build([path], out, filters=ingest.Filters(max_rating=max_rating), workers=workers)
    return stats["input_games"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default=str(DEFAULT))
    parser.add_argument("--copies", type=int, default=2, help="concatenate the file this many times (a longer run)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    report_load()
    if not os.path.exists(args.file):
        raise SystemExit(f"{args.file} not found: pass --file, or run from a checkout beside ../shared")
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, "games.pgn")
        with open(path, "wb") as out:
            for _ in range(args.copies):
                with open(args.file, "rb") as f:
                    shutil.copyfileobj(f, out)
        runs = {
            "python-chess read_game loop (1 process)": lambda: read_game_loop(path),
            "data build, in-process (--workers 0)": lambda: data_build(path, os.path.join(tmp, "a"), 0, None),
            f"data build, {os.cpu_count()} workers": lambda: data_build(path, os.path.join(tmp, "b"), None, None),
            f"data build, {os.cpu_count()} workers, --max-rating 1500":
                lambda: data_build(path, os.path.join(tmp, "c"), None, 1500),
        }
        best: dict[str, float] = {}
        best_cpu: dict[str, float] = {}
        games = 0
        for _ in range(args.repeats):
            for name, fn in runs.items():
                t0, c0 = time.perf_counter(), os.times()
                games = fn()
                t1, c1 = time.perf_counter(), os.times()
                cpu = sum(c1[:4]) - sum(c0[:4])  # user + system, this process and its reaped workers
                best[name] = min(best.get(name, t1 - t0), t1 - t0)
                best_cpu[name] = min(best_cpu.get(name, cpu), cpu)
        first = next(iter(runs))
        base, base_cpu = games / best[first], best_cpu[first]
        print(f"{games} games ({args.copies} x {os.path.basename(args.file)}), {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f}, best of {args.repeats}")
        for name, secs in best.items():
            rate = games / secs
            print(f"  {name:<52s} {rate:7.0f} games/s {rate / base:5.2f}x wall | "
                  f"{1e3 * best_cpu[name] / games:6.2f} CPU-ms/game {base_cpu / best_cpu[name]:5.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
