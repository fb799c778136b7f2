"""Training tokens/s the grain pipeline delivers, against what the configs consume per step.

    .venv/bin/python benchmarks/pipeline.py [--seconds 3] [--games 999]

Builds two tiny datasets (the shared Lichess games when ../shared is present, else random
legal games): one plain, one with boards stored at build time. For the tiny config
(32 rows x 100 tokens, pad, ~10 steps/s on CPU) and paper_50m (500 rows x 1023 tokens,
pack) it times the loader with 0 and 2 workers, with no options / computed boards / stored
boards / legal masks, and prints tokens/s and the ratio to what a training step consumes
(ratio > 1: the pipeline keeps up), plus tokens per CPU-second of the loading process, the
figure that survives a busy machine. Not a timed test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import chess
import chess.pgn
import numpy as np
from machine import report_load  # benchmarks/machine.py

from transcendence_jax.data import pipeline, tokenizer
from transcendence_jax.data.boards import game_boards
from transcendence_jax.data.build import dataset_files, write_dataset
from transcendence_jax.data.records import GameRecord

SHARED_PGN = pathlib.Path(__file__).resolve().parents[2] / "shared/data/lichess/lichess_2021-10_head999.pgn"
# name: (seq_len, per-step rows, packing, consumed steps/s or None when set by the accelerator)
CONFIGS = {"tiny": (100, 32, "pad", 10.0), "paper_50m": (1023, 500, "pack", None)}
VARIANTS = {"plain": {}, "boards computed": {"boards": True}, "boards stored": {"boards": True},
            "legal": {"legal": True}}


def games(n: int, seed: int = 0):
    """Moves of n games: the shared Lichess PGN if present, else random legal games."""
    if SHARED_PGN.exists():
        with open(SHARED_PGN) as f:
            while n and (game := chess.pgn.read_game(f)) is not None:
                moves = list(game.mainline_moves())
                if moves:
                    n -= 1
                    yield moves
        return
    rng = np.random.default_rng(seed)
    for _ in range(n):
        board, moves = chess.Board(), []
        for _ in range(int(rng.integers(20, 160))):
            legal = list(board.legal_moves)
            if not legal:
                break
            moves.append(legal[rng.integers(len(legal))])
            board.push(moves[-1])
        yield moves


def build(root: str, n: int) -> dict[str, list[str]]:
    all_moves = list(games(n))
    for name, store in (("plain", False), ("stored", True)):
        recs = (GameRecord(tokens=tokenizer.encode_game(m), result="1/2-1/2",
                           boards=game_boards(m) if store else None) for m in all_moves)
        write_dataset(recs, os.path.join(root, name), num_shards=2, val_fraction=0.0)
    mean_len = np.mean([len(m) + 1 for m in all_moves])
    src = "shared Lichess" if SHARED_PGN.exists() else "random"
    print(f"dataset: {len(all_moves)} {src} games, {mean_len:.0f} tokens a game on average")
    return {"plain": dataset_files(os.path.join(root, "plain"), "train"),
            "stored": dataset_files(os.path.join(root, "stored"), "train")}


def tokens_per_s(files, seconds: float, *, seq_len, batch_size, **kw) -> tuple[float, float]:
    """Steady-state (tokens per wall second, tokens per CPU second of this process).

    The first batch (worker start-up) is not counted. With 0 workers the CPU figure is the
    pipeline's cost whatever else the machine runs; with workers it counts only the
    main process (unpickling batches), so read the wall figure there."""
    it = iter(pipeline.make_loader(files, seq_len=seq_len, batch_size=batch_size, shard_index=0,
                                   shard_count=1, **kw))
    next(it)
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds or n < 2:
        next(it)
        n += 1
    secs, cpu_secs = time.perf_counter() - start, time.process_time() - cpu
    del it
    tokens = n * batch_size * seq_len
    return tokens / secs, tokens / cpu_secs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per measurement")
    parser.add_argument("--games", type=int, default=999)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    report_load()
    with tempfile.TemporaryDirectory() as root:
        files = build(root, args.games)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall figures shrink with it)")
        print(f"{'config':10} {'variant':16} {'workers':>7} {'tokens/s':>10} {'per CPU-s':>10} {'needed/s':>10} "
              f"{'ratio':>7}")
        for name, (seq_len, rows, packing, steps_per_s) in CONFIGS.items():
            per_step = rows * seq_len
            for variant, kw in VARIANTS.items():
                if name == "paper_50m" and variant == "legal":
                    print(f"{name:10} {variant:16} {'-':>7}   skipped: bool[500, 1023, 2048] is 1 GB a batch")
                    continue
                # paper_50m: time a 50-row batch (the 500-row step is 10 of them; rows are independent)
                batch = rows if name == "tiny" else 50
                for workers in args.workers:
                    tps, tpc = tokens_per_s(files["stored" if variant == "boards stored" else "plain"], args.seconds,
                                       seq_len=seq_len, batch_size=batch, packing=packing,
                                       worker_count=workers, **kw)
                    if steps_per_s:
                        need = per_step * steps_per_s
                        print(f"{name:10} {variant:16} {workers:>7} {tps:>10.0f} {tpc:>10.0f} {need:>10.0f} "
                              f"{tps / need:>7.2f}")
                    else:
                        print(f"{name:10} {variant:16} {workers:>7} {tps:>10.0f} {tpc:>10.0f} {'-':>10} "
                              f"{tps / per_step:>7.2f} steps/s ({per_step} tokens a step)")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
