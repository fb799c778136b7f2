"""Time of the Sampler's jitted decode step alone (no host work), by batch, new tokens and cache positions.

What a ply costs the device: `benchmarks/sampler.py` plays whole games; this times the step it
calls, so a change to the model or the step can be judged without python-chess's noise. Shapes:
self-play at 256 and 128 games (1 new token a game, every slot in place) and an eval-like call
(48 of 96 slots asking, 2 new tokens: the model's last move and the reply; rows read by index).
Baseline in the same run: the no-cache loop's unit of work, one game's full forward over a
64-token prefix, per token row; each step's cost a game is printed in those rows (the
sampler benchmark's ratio cannot exceed the baseline's rows a move, ~70 over a 100-ply game,
divided by this). Interleaved repeats, medians.

    .venv/bin/python benchmarks/decode_step.py [--config tiny] [--positions 32 64 128] [--repeats 15]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from flax import nnx
from machine import report_load  # benchmarks/machine.py
from sampler import model_config  # benchmarks/sampler.py (run as a script: its folder is on sys.path)

from transcendence_jax.model import Transformer
from transcendence_jax.sampling.policy import compiled_forward
from transcendence_jax.sampling.sampler import Sampler

SHAPES = {"self-play 256 x 1 token": (256, 256, 1), "self-play 128 x 1 token": (128, 128, 1),
          "eval-like 48 of 96 x 2 tokens": (96, 48, 2)}


def step_runner(model, slots: int, batch: int, tokens: int, positions: int):
    """A function that runs one decode step of `batch` games (of a `slots`-game sampler) whose
    new tokens end just below `positions`, and waits for its outputs."""
    sampler = Sampler(model, max_games=slots)
    in_place = 4 * batch > 3 * slots
    rng = np.random.default_rng(0)
    rows = np.arange(batch, dtype=np.int32) * (slots // batch)
    temps = np.where(np.arange(batch) % 2, 1.0, 1e-4).astype(np.float32)  # hot and cold games
    games = np.stack([rows, np.full(batch, positions - tokens - 1), np.full(batch, tokens - 1), np.ones(batch),
                      temps.view(np.int32)], 1).astype(np.int32)  # slot, position, last token, white, tau
    args = [games, rng.integers(5, 1900, (batch, tokens)).astype(np.int32),
            rng.integers(0, 13, (batch, tokens, 64)).astype(np.uint8),
            rng.integers(0, 13, (batch, 64)).astype(np.uint8)]

    def run():
        jax.block_until_ready(sampler.decode(args, 1, positions, in_place=in_place))
    return run


def forward_runner(model, tokens: int = 64):
    """A function that runs the no-cache baseline's call: one game's full forward over `tokens`."""
    forward, state = compiled_forward(model)
    rng = np.random.default_rng(0)
    args = (rng.integers(5, 1900, (1, tokens)).astype(np.int32), rng.integers(0, 13, (1, tokens, 64)).astype(np.uint8),
            np.array([tokens - 1], np.int32))
    return lambda: jax.block_until_ready(forward(state, *args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--positions", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    report_load()
    cfg = model_config(args.config)
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    print(f"model: {cfg.num_layers} layers, width {cfg.embed_dim}; {jax.devices()[0].platform}")
    runs = {("baseline", 64): forward_runner(model)}
    runs["baseline", 64]()
    for name, (slots, batch, tokens) in SHAPES.items():
        for positions in args.positions:
            if positions <= cfg.max_len:
                runs[name, positions] = step_runner(model, slots, batch, tokens, positions)
                runs[name, positions]()  # compile
    times = {key: [] for key in runs}
    for _ in range(args.repeats):
        for key, run in runs.items():
            t = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - t)
    row_us = 1e6 * float(np.median(times.pop(("baseline", 64)))) / 64
    print(f"baseline: one game's full forward over 64 tokens, {row_us:.1f} us a token row")
    for (name, positions), ts in times.items():
        ms = 1e3 * float(np.median(ts))
        game_us = 1e3 * ms / SHAPES[name][1]
        print(f"{name:<32} {positions:4d} positions: {ms:7.2f} ms a step, {game_us:6.1f} us a game "
              f"= {game_us / row_us:5.2f} baseline rows")


if __name__ == "__main__":
    main()
