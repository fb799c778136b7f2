"""The share of `eval` wall time spent in the model, at the default opponent settings.

Target: under 10% (evaluation is Stockfish-bound). Plays the grid (temperatures x sf1,sf3,sf5)
three times with one Sampler: a cold pass (includes XLA compiles), then two passes over fresh
game ids (the first may still meet a new batch/length shape; the last is reported as "warm"),
timing the sampler calls inside the arena. Baseline in the same run: the same grid
with a random Python policy in the model's place (no model at all), so the model's cost also
reads as the ratio of the two wall times.

  .venv/bin/python benchmarks/eval.py [--workdir DIR] [--games 4] [--max-plies 178]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import ml_collections
from flax import nnx

from transcendence_jax.arena import PolicyPlayer, grid, play_games, random_policy
from transcendence_jax.engines import EnginePool, parse_engine_spec
from transcendence_jax.evaluate import DEFAULT_OPPONENTS, _Timed, model_name
from transcendence_jax.sampling import ModelPlayer, Sampler


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


def run_grid(players, opponents, games, max_plies, tag):
    with tempfile.TemporaryDirectory() as out:
        pairings = [(f"{tag}-{gid}", w, b, h) for gid, w, b, h in grid(players, opponents, games)]
        t0 = time.perf_counter()
        results = play_games(pairings, out_dir=out, max_plies=max_plies, progress=False)
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
    args = parser.parse_args()

    if args.workdir:
        from transcendence_jax.checkpoint import load_model
        model = load_model(args.workdir)[0]
    else:
        model = tiny_model()
    temps = [float(t) for t in args.temperatures.split(",")]
    pool = EnginePool(workers=args.engines)
    opponents = [parse_engine_spec(o, pool=pool) for o in args.opponents.split(";" if ";" in args.opponents else ",")]
    engine_timed = _Timed(pool)
    for o in opponents:
        o.backend = engine_timed
    n_model = len(temps) * len(opponents) * args.games
    sampler = Sampler(model, max_games=n_model, max_len=args.max_plies + 1)
    timed = _Timed(sampler)
    players = [ModelPlayer(model_name(t), sampler, t) for t in temps]
    for p in players:
        p.backend = timed
    print(f"grid: {len(temps)} temperatures x {[o.name for o in opponents]} x {args.games} games, "
          f"max {args.max_plies} plies, {pool.workers} engine processes")
    try:
        rows = []
        for tag in ("cold", "warm-1", "warm"):
            timed.seconds, timed.calls, timed.intervals, engine_timed.intervals = 0.0, 0, [], []
            wall, plies, n = run_grid(players, opponents, args.games, args.max_plies, tag)
            exposed = exposed_seconds(timed.intervals, engine_timed.intervals)
            rows.append((tag, wall, timed.seconds, exposed, timed.calls, plies, n))
        base = [PolicyPlayer(model_name(t), random_policy) for t in temps]
        base_wall, base_plies, _ = run_grid(base, opponents, args.games, args.max_plies, "baseline")
    finally:
        pool.close()
    print(f"{'pass':<9}{'games':>6}{'plies':>7}{'wall s':>9}{'model s':>9}{'calls':>7}"
          f"{'in model':>10}{'exposed':>9}")
    for tag, wall, model_s, exposed, calls, plies, n in rows:
        print(f"{tag:<9}{n:>6}{plies:>7}{wall:>9.2f}{model_s:>9.2f}{calls:>7}"
              f"{100 * model_s / wall:>9.1f}%{100 * exposed / wall:>8.1f}%")
    print(f"{'baseline':<9}{n:>6}{base_plies:>7}{base_wall:>9.2f}  (random policy in the model's place)")
    tag, wall, model_s, exposed, calls, plies, n = rows[-1]
    print(f"warm: {100 * model_s / wall:.1f}% of eval wall time inside the model (target < 10%), "
          f"{100 * exposed / wall:.1f}% not overlapped by engine searches; "
          f"wall per ply {1000 * wall / plies:.2f} ms vs baseline {1000 * base_wall / base_plies:.2f} ms "
          f"(x{(wall / plies) / (base_wall / base_plies):.2f})")


if __name__ == "__main__":
    main()
