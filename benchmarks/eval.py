"""The share of `eval` wall time spent in the model, at the default opponent settings.

Target: under 10% (evaluation is Stockfish-bound). Plays the grid (temperatures x sf1,sf3,sf5)
with one Sampler, timing the sampler calls inside the arena: a cold pass (XLA compiles), warm-up
passes over fresh game ids until one compiles nothing (a new batch/length shape can still turn up
in the first ones), then --rounds measured passes (one that still compiles a late shape is played
again, 3 times at most), each followed by a baseline pass: the same grid with a random Python
policy in the model's place (no model at all), so the model's cost also reads as the ratio of
the two wall times. Interleaved, and the median share reported: the machine's speed drifts.
"steps s" is the decode steps' device time within the model time (the rest is the sampler's
host work). Games in flight are capped at --max-games, as `transcendence eval` caps them (256 by
default: its default grid, 8 temperatures x 3 opponents x 100 games, plays 256 at a time;
`--temperatures 0.001,0.01,0.1,0.3,0.5,0.75,1.0,1.5 --games 11` measures at that batch size).

  .venv/bin/python benchmarks/eval.py [--workdir DIR] [--games 4] [--max-plies 178] [--max-games 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import jax
import ml_collections
import numpy as np
from flax import nnx
from machine import report_load  # benchmarks/machine.py
from sampler import time_steps  # benchmarks/sampler.py (run as a script: its folder is on sys.path)

from transcendence_jax.cli import freeze_imports
from transcendence_jax.play.arena import grid, play_games
from transcendence_jax.play.engines import EnginePool, parse_engine_spec
from transcendence_jax.play.evaluate import DEFAULT_OPPONENTS, TimedBackend, model_name, split_opponents
from transcendence_jax.play.players import ModelPlayer, PolicyPlayer, random_policy
from transcendence_jax.sampling.sampler import Sampler


def tiny_model():
    """EXPERIMENT.md's laptop model: width 128, 4 layers, 4 heads, board features."""
    from transcendence_jax.model import Transformer

    cfg = ml_collections.ConfigDict(dict(vocab_size=2048, num_layers=4, num_heads=4, embed_dim=128, mlp_dim=512,
                                         max_len=256, dropout=0.0, board_input=True, dtype="float32",
                                         param_dtype="float32", remat=False))
    return Transformer(cfg, rngs=nnx.Rngs(0))


def exposed_seconds(model_iv, engine_iv) -> float:
    """Model time not overlapped by engine searches: what the model adds to the wall time
    (each arena round asks both backends at once and waits for the slower)."""
    total = 0.0
    for a, b in model_iv:
        covered = sum(max(0.0, min(b, d) - max(a, c)) for c, d in engine_iv if c < b and d > a)
        total += max(0.0, (b - a) - covered)
    return total


def run_grid(players, opponents, games, max_plies, tag, max_active):
    with tempfile.TemporaryDirectory() as out:
        pairings = [(f"{tag}-{gid}", w, b, h) for gid, w, b, h in grid(players, opponents, games)]
        t0 = time.perf_counter()
        results = play_games(pairings, out_dir=out, max_plies=max_plies, progress=False, max_active=max_active)
        wall = time.perf_counter() - t0
    plies = sum(r["plies"] for r in results)
    return wall, plies, len(results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="a trained workdir (default: a random-init tiny model)")
    parser.add_argument("--temperatures", default="0.001,1.0")
    parser.add_argument("--opponents", default=",".join(DEFAULT_OPPONENTS))
    parser.add_argument("--games", type=int, default=4, help="games per (temperature, opponent)")
    parser.add_argument("--max-plies", type=int, default=178)
    parser.add_argument("--engines", type=int, default=None)
    parser.add_argument("--max-games", type=int, default=256, help="games in flight (cache slots), as `eval`'s flag")
    parser.add_argument("--rounds", type=int, default=3, help="measured warm passes (each with a baseline pass)")
    args = parser.parse_args()
    report_load()
    freeze_imports()  # as `transcendence eval` does

    if args.workdir:
        from transcendence_jax.training.checkpoint import load_model
        model = load_model(args.workdir)[0]
    else:
        model = tiny_model()
    temps = [float(t) for t in args.temperatures.split(",")]
    pool = EnginePool(workers=args.engines)
    opponents = [parse_engine_spec(o, pool=pool) for o in split_opponents(args.opponents)]
    engine_timed = TimedBackend(pool)
    for o in opponents:
        o.backend = engine_timed
    in_flight = min(args.max_games, len(temps) * len(opponents) * args.games)  # as `transcendence eval`
    sampler = Sampler(model, max_games=in_flight, max_len=args.max_plies + 1)
    device = time_steps(sampler)
    timed = TimedBackend(sampler)
    players = [ModelPlayer(model_name(t), sampler, t) for t in temps]
    for p in players:
        p.backend = timed
    print(f"grid: {len(temps)} temperatures x {[o.name for o in opponents]} x {args.games} games, "
          f"max {args.max_plies} plies, {pool.workers} engine processes")
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: (compiles.append(secs) if event == "/jax/core/compile/backend_compile_duration"
                                   else None))

    def model_pass(tag):
        timed.seconds, timed.calls, timed.intervals, engine_timed.intervals = 0.0, 0, [], []
        compiles.clear()
        device[0] = 0.0
        wall, plies, n = run_grid(players, opponents, args.games, args.max_plies, tag, in_flight)
        exposed = exposed_seconds(timed.intervals, engine_timed.intervals)
        return dict(tag=tag, wall=wall, model=timed.seconds, device=device[0], exposed=exposed,
                    calls=timed.calls, plies=plies, games=n, compiles=len(compiles))

    base_players = [PolicyPlayer(model_name(t), random_policy) for t in temps]
    try:
        rows = [model_pass("cold")]
        while rows[-1]["compiles"] and len(rows) < 5:
            rows.append(model_pass(f"warm-up-{len(rows)}"))
        warm, bases, retries = [], [], 0
        while len(warm) < args.rounds:
            rows.append(model_pass(f"warm-{len(warm) + 1}" + "'" * retries))
            if rows[-1]["compiles"] and retries < 3:  # a late shape compiled: that pass is not warm
                retries += 1
                continue
            warm.append(rows[-1])
            wall, plies, n = run_grid(base_players, opponents, args.games, args.max_plies, f"baseline-{len(warm)}",
                                     in_flight)
            bases.append(dict(tag=f"baseline-{len(warm)}", wall=wall, plies=plies, games=n))
    finally:
        pool.close()
    print(f"{'pass':<12}{'games':>6}{'plies':>7}{'wall s':>9}{'model s':>9}{'steps s':>9}{'calls':>7}"
          f"{'compiles':>9}{'in model':>10}{'exposed':>9}")
    for r in rows:
        print(f"{r['tag']:<12}{r['games']:>6}{r['plies']:>7}{r['wall']:>9.2f}{r['model']:>9.2f}{r['device']:>9.2f}"
              f"{r['calls']:>7}{r['compiles']:>9}{100 * r['model'] / r['wall']:>9.1f}%"
              f"{100 * r['exposed'] / r['wall']:>8.1f}%")
    for b in bases:
        print(f"{b['tag']:<12}{b['games']:>6}{b['plies']:>7}{b['wall']:>9.2f}  (random policy in the model's place)")
    share = [r["model"] / r["wall"] for r in warm]
    exposed = [r["exposed"] / r["wall"] for r in warm]
    steps = [r["device"] / r["model"] for r in warm]
    per_ply = [(r["wall"] / r["plies"]) / (b["wall"] / b["plies"]) for r, b in zip(warm, bases)]
    print(f"warm (median of {len(warm)}): {100 * np.median(share):.1f}% of eval wall time inside the model "
          f"(target < 10%; range {100 * min(share):.1f}-{100 * max(share):.1f}%; decode steps "
          f"{100 * np.median(steps):.0f}% of it), {100 * np.median(exposed):.1f}% not overlapped by engine searches; "
          f"wall per ply x{np.median(per_ply):.2f} the no-model baseline's "
          f"(range x{min(per_ply):.2f}-x{max(per_ply):.2f})")


if __name__ == "__main__":
    main()
