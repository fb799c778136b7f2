"""Moves/s of the batched cached Sampler against a one-game-at-a-time, no-cache loop.

Both play the same random-init model (the tiny config's shape, or --config's) against itself at tau = 1,
legal moves renormalised, and both end a game when it has no legal move (or at --plies). The
baseline is the paper's loop done well: one game at a time, and per move one jitted call that
runs a full forward over the whole game so far (tokens and board planes kept incrementally,
padded to a power of two so it compiles a few times, all before timing) and draws among the
legal moves. The sampler plays B games at once, one decode step per ply over its KV cache, host
work (boards, legality) included. Compiles happen before timing; the timed runs are interleaved
rounds (a baseline game, then a pass at each batch size) and each rate is the best of its rounds,
since the machine is shared. The process freezes its import-time heap as the CLI does
(`cli.freeze_imports`: the games' garbage collections skip it). Also printed: the rate counting
only the decode steps' device time (what the sampler would reach if its host work, and the
caller's, were free).

    .venv/bin/python benchmarks/sampler.py [--plies 100] [--batches 1 64 256] [--config tiny]
"""

from __future__ import annotations

import argparse
import time

import chess
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from machine import report_load  # benchmarks/machine.py

from transcendence_jax.cli import freeze_imports
from transcendence_jax.data.boards import board_planes, next_planes
from transcendence_jax.data.tokenizer import BOS, PAD, move_token
from transcendence_jax.data.tokenizer import MOVE_OF_TOKEN as MOVES
from transcendence_jax.model import Transformer
from transcendence_jax.sampling.sampler import Sampler


def model_config(name: str) -> ml_collections.ConfigDict:
    from transcendence_jax.config import load_config

    cfg = load_config(name).model
    cfg.dropout = 0.0
    return cfg


def baseline(model, plies: int, seed: int):
    """A function that plays one game at a time, a full forward over the whole prefix per move,
    and returns its moves/s (compiled and warmed up here)."""
    graphdef, state = nnx.split(model)
    V, L = model.cfg.vocab_size, model.cfg.max_len

    @jax.jit
    def move(state, tokens_1T, boards_1T64, last, legal_V, key):
        logits_V = nnx.merge(graphdef, state)(tokens_1T, boards_1T64)[0, last]
        return jnp.argmax(jnp.where(legal_V, logits_V + jax.random.gumbel(key, logits_V.shape), -jnp.inf))

    def game(key):
        board, n = chess.Board(), 0
        tokens, boards = np.full((1, L), PAD, np.int32), np.zeros((1, L, 64), np.uint8)
        tokens[0, 0], boards[0, 0] = BOS, board_planes(board)
        for i in range(plies):
            legal = np.zeros(V, bool)
            legal[[move_token(m) for m in board.legal_moves]] = True
            if not legal.any():
                break
            T = 1 << i.bit_length()  # i + 1 tokens, padded to a power of two
            m = MOVES[int(move(state, tokens[:, :T], boards[:, :T], i, legal, jax.random.fold_in(key, i)))]
            board.push(m)
            tokens[0, i + 1], boards[0, i + 1] = move_token(m), next_planes(boards[0, i], m)
            n += 1
        return n

    game(jax.random.key(seed + 1))  # warm-up: compiles every padded length the timed game meets
    runs = iter(range(seed + 2, seed + 1000))

    def timed() -> float:
        t0 = time.perf_counter()
        n = game(jax.random.key(next(runs)))
        return n / (time.perf_counter() - t0)
    return timed


def time_steps(sampler: Sampler) -> list[float]:
    """Make `sampler` add its decode steps' device time (waited on at once: the sampler reads the
    outputs right after anyway) to the returned one-element list; the rest of a call is host work."""
    device = [0.0]
    decode = sampler.decode

    def until_ready(*args, **kwargs):
        t = time.perf_counter()
        out = jax.block_until_ready(decode(*args, **kwargs))
        device[0] += time.perf_counter() - t
        return out
    sampler.decode = until_ready  # this sampler's only
    return device


def batched(model, batch: int, plies: int, seed: int):
    """A function that plays `batch` self-play games in flight, one sampler call per ply, and
    returns (moves/s, moves/s counting only the decode steps' device time: the ceiling were all
    host work free); compiled and warmed up here: the same plies on other game ids."""
    sampler = Sampler(model, max_games=batch, seed=seed)
    device = time_steps(sampler)
    runs = iter(range(1000))

    def timed() -> tuple[float, float]:
        tag = next(runs)
        boards, live, moves = [chess.Board() for _ in range(batch)], list(range(batch)), 0
        device[0] = 0.0
        t0 = time.perf_counter()
        for _ in range(plies):
            choices = sampler.sample([(f"{tag}.{i}", boards[i], 1.0) for i in live])
            for i, c in zip(live, choices):
                if c.move is not None:
                    boards[i].push(c.move)
            moves += sum(c.move is not None for c in choices)
            live = [i for i, c in zip(live, choices) if c.move is not None]
        return moves / (time.perf_counter() - t0), moves / device[0]
    timed()
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plies", type=int, default=100)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds; the best of each is kept")
    parser.add_argument("--config", default="tiny", help="the model's config (tiny, paper_50m, ...)")
    args = parser.parse_args()
    report_load()
    freeze_imports()  # as the CLI does: the games' full garbage collections skip the import-time heap
    cfg = model_config(args.config)
    model = Transformer(cfg, rngs=nnx.Rngs(args.seed))
    print(f"model: {cfg.num_layers} layers, width {cfg.embed_dim}, max_len {cfg.max_len}, "
          f"board_input {cfg.board_input}; {jax.devices()[0].platform}; {args.plies} plies a game")
    # Interleaved rounds (a baseline game, then a pass at each batch size), best of each: the
    # machine is shared, and a slow spell then slows both sides of a ratio alike.
    runners = {"baseline": baseline(model, args.plies, args.seed)}
    runners.update({batch: batched(model, batch, args.plies, args.seed) for batch in args.batches})
    rates = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            rates[name].append(run())
    base = max(rates.pop("baseline"))
    print(f"baseline (1 game, no cache, full forward per move): {base:9.1f} moves/s")
    for batch, rs in rates.items():
        rate, device = max(r for r, _ in rs), max(d for _, d in rs)
        print(f"sampler batch {batch:4d} (KV cache, one call a ply):  {rate:9.1f} moves/s  {rate / base:7.1f}x"
              f"   (decode steps alone: {device:9.1f} moves/s, {device / base:6.1f}x; host work "
              f"{100 * (1 - rate / device):.0f}% of the time)")

if __name__ == "__main__":
    main()
