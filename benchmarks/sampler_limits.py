"""What bounds the sampler's speed-up on this machine: the machine, the decode step's parts, and
the ply time 100x would need.

`benchmarks/sampler.py` gives the ratio; this says why it is what it is, on any machine:
1. The machine: one core's float32 matmul rate and memory read rate, and the same run in one
   process per core at once (do more cores add compute, bandwidth, or neither).
2. The decode step at 256 games x 1 new token over 64 cache positions, whole and in parts: the
   model's extend alone (no move choice), the vocabulary head's matmul alone, and two 128-game
   steps run from two threads at once (what splitting the batch over the cores buys).
3. The budget: the baseline's moves/s (one game, full forward a move), so the ply time of 256
   games that 100x would need, next to the step alone. Interleaved repeats, medians.

    .venv/bin/python benchmarks/sampler_limits.py [--config tiny] [--repeats 15]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from decode_step import step_runner  # benchmarks/ (run as a script: its folder is on sys.path)
from flax import nnx
from machine import report_load  # benchmarks/machine.py
from sampler import baseline, model_config

from transcendence_jax.model import Transformer

GAMES, POSITIONS = 256, 64


def _rate(kind: str, seconds: float = 3.0) -> float:
    """GFLOP/s of a 512^3 float32 matmul, or GB/s of summing a 64 MB array, on one thread."""
    if kind == "matmul":
        a, work = np.ones((512, 512), np.float32), 2 * 512 ** 3
        run = lambda: a @ a
    else:
        a = np.ones(16 << 20, np.float32)
        work, run = a.nbytes, a.sum
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run()
        n += 1
    return n * work / (time.perf_counter() - t0) / 1e9


def machine(kind: str) -> tuple[float, float]:
    """(one process's rate, all cores' summed rate with one process each), single-threaded BLAS."""
    cores = os.cpu_count() or 1
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # read by the children's numpy
        os.environ[var] = "1"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(cores) as pool:
        alone = pool.apply(_rate, (kind,))
        together = sum(pool.map(_rate, [kind] * cores))
    return alone, together


def timed(runs: dict, repeats: int) -> dict:
    """Median seconds of each function, interleaved so a slow spell hits all alike."""
    for run in runs.values():
        run()
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def extend_runner(model):
    """The model's extend alone (its last-token logits; no noise, no candidates, no top-k)."""
    cache = [model.init_cache(GAMES)]  # a Sampler's cache at GAMES slots, the model's max_len
    graphdef, state = nnx.split(model)
    extend = jax.jit(lambda state, cache, tokens, boards, pos: nnx.merge(graphdef, state).extend(
        tokens, boards, cache, pos, None, jnp.zeros(GAMES, jnp.int32), POSITIONS)[::-1], donate_argnums=1)
    rng = np.random.default_rng(0)
    args = (rng.integers(5, 1900, (GAMES, 1)).astype(np.int32), rng.integers(0, 13, (GAMES, 1, 64)).astype(np.uint8),
            np.full(GAMES, POSITIONS - 2, np.int32))

    def run():
        cache[0], logits = extend(state, cache[0], *args)
        jax.block_until_ready(logits)
    return run


def head_runner(model):
    """The vocabulary head's matmul at GAMES rows: [GAMES, D] x [D, V]."""
    x = jnp.ones((GAMES, model.cfg.embed_dim), jnp.float32)
    head = jax.jit(lambda x, w: jnp.einsum("nd,vd->nv", x, w))
    return lambda: jax.block_until_ready(head(x, model.wte[...]))


def two_threads(run_a, run_b):
    """Run two steps at once, one from each of two Python threads (XLA releases the GIL)."""
    def run():
        threads = [threading.Thread(target=r) for r in (run_a, run_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    report_load()
    for kind, unit in (("matmul", "GFLOP/s"), ("memory", "GB/s")):
        alone, together = machine(kind)
        print(f"machine, {kind:6s}: one core {alone:6.1f} {unit}, {os.cpu_count()} processes at once "
              f"{together:6.1f} {unit} (x{together / alone:.2f})")
    cfg = model_config(args.config)
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    runs = {"decode step, 256 games": step_runner(model, GAMES, GAMES, 1, POSITIONS),
            "model.extend alone (no move choice)": extend_runner(model),
            "vocabulary head's matmul alone": head_runner(model),
            "decode step, 128 games": step_runner(model, GAMES // 2, GAMES // 2, 1, POSITIONS)}
    runs["two 128-game steps from two threads"] = two_threads(runs["decode step, 128 games"],
                                                             step_runner(model, GAMES // 2, GAMES // 2, 1, POSITIONS))
    ms = {name: 1e3 * s for name, s in timed(runs, args.repeats).items()}
    print(f"model: {cfg.num_layers} layers, width {cfg.embed_dim}; {jax.devices()[0].platform}; "
          f"{GAMES} games x 1 new token, {POSITIONS} cache positions")
    for name, t in ms.items():
        print(f"  {name:<40} {t:7.2f} ms")
    step = ms["decode step, 256 games"]
    base = max(baseline(model, 100, 0)() for _ in range(3))
    budget = 1e3 * GAMES / (100 * base)
    print(f"baseline (1 game, no cache, 100 plies): {base:.1f} moves/s, so 100x at {GAMES} games needs a "
          f"whole ply (step, sampler's host work, the caller's board.push) in {budget:.2f} ms; "
          f"the step alone takes {step:.2f} ms ({step / budget:.2f} of it)")


if __name__ == "__main__":
    main()
