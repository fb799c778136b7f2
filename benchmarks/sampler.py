"""Moves/s of the batched cached Sampler against a one-game-at-a-time, no-cache loop.

Both play the same random-init model (the tiny config's shape) against itself at tau = 1,
legal moves renormalised. The baseline recomputes a full forward over the whole game (padded
to a power of two, so it compiles a few times, all before timing) for every move, one game at
a time, as the paper's evaluation does. The sampler plays B games at once, one decode step per
ply over its KV cache, host work (boards, masks) included. Compiles happen before timing.

    .venv/bin/python benchmarks/sampler.py [--plies 40] [--batches 1 64 256]
"""

from __future__ import annotations

import argparse
import time

import chess
import jax
import ml_collections
import numpy as np
from flax import nnx

from transcendence_jax.model import Transformer
from transcendence_jax.sampling import Sampler, sample_moves


def tiny_model_config() -> ml_collections.ConfigDict:
    try:
        from transcendence_jax.config import load_config

        return load_config("tiny").model
    except (ImportError, Exception) as e:  # noqa: BLE001 - the config module may not exist yet
        print(f"(configs/tiny.py not loadable: {e!r}; using its documented shape)")
        return ml_collections.ConfigDict(dict(
            vocab_size=2048, num_layers=4, num_heads=4, embed_dim=128, mlp_dim=512, max_len=128,
            dropout=0.0, board_input=True, dtype="float32", param_dtype="float32", remat=False))


def baseline(model, plies: int, key) -> float:
    """Moves/s of one game at a time, a full forward over the whole prefix per move."""
    board = chess.Board()
    for _ in range(plies):  # warm-up: compiles every padded length the timed game meets
        board.push(sample_moves(model, [board], 1.0, key)[0])
    board, t0 = chess.Board(), time.perf_counter()
    for i in range(plies):
        if board.is_game_over():
            break
        board.push(sample_moves(model, [board], 1.0, jax.random.fold_in(key, i))[0])
    return board.ply() / (time.perf_counter() - t0)


def batched(model, batch: int, plies: int, seed: int) -> float:
    """Moves/s of `batch` self-play games in flight, one sampler call per ply."""
    sampler = Sampler(model, max_games=batch, seed=seed)
    warm = [chess.Board() for _ in range(batch)]
    for _ in range(2):
        for board, c in zip(warm, sampler.sample([(f"w{i}", b, 1.0) for i, b in enumerate(warm)])):
            board.push(c.move)
    boards, moves = [chess.Board() for _ in range(batch)], 0
    t0 = time.perf_counter()
    for _ in range(plies):
        live = [i for i, b in enumerate(boards) if not b.is_game_over()]
        for i, c in zip(live, sampler.sample([(f"g{i}", boards[i], 1.0) for i in live])):
            boards[i].push(c.move)
        moves += len(live)
    return moves / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plies", type=int, default=40)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = tiny_model_config()
    model = Transformer(cfg, rngs=nnx.Rngs(args.seed))
    print(f"model: {cfg.num_layers} layers, width {cfg.embed_dim}, max_len {cfg.max_len}, "
          f"board_input {cfg.board_input}; {jax.devices()[0].platform}; {args.plies} plies a game")
    base = baseline(model, args.plies, jax.random.key(args.seed))
    print(f"baseline (1 game, no cache, full forward per move): {base:9.1f} moves/s")
    for batch in args.batches:
        rate = batched(model, batch, args.plies, args.seed)
        print(f"sampler batch {batch:4d} (KV cache, one call a ply):  {rate:9.1f} moves/s  {rate / base:7.1f}x")


if __name__ == "__main__":
    main()
