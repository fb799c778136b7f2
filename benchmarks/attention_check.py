"""model.attention=cudnn against the default XLA einsum attention, on an NVIDIA GPU: the same
parameters give the same logits (to bf16 rounding) and the forward+backward time of each.

    python benchmarks/attention_check.py [--config paper_50m] [--batch 125]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from machine import report_load  # benchmarks/machine.py

from transcendence_jax.config import load_config
from transcendence_jax.model import Transformer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="paper_50m")
    ap.add_argument("--batch", type=int, default=125)
    args = ap.parse_args()
    report_load()
    cfg = load_config(args.config).model
    T = load_config(args.config).data.seq_len
    tokens = jnp.asarray(np.random.default_rng(0).integers(5, 1900, (args.batch, T)), jnp.int32)
    models = {}
    for impl in ("xla", "cudnn"):
        cfg.attention = impl
        models[impl] = Transformer(cfg, rngs=nnx.Rngs(0))  # same seed: same parameters
    logits = {}
    for impl, model in models.items():
        graphdef, state = nnx.split(model)

        @jax.jit
        def loss_and_grad(state, tokens):
            def loss(state):
                return nnx.merge(graphdef, state)(tokens).astype(jnp.float32).mean()
            return jax.value_and_grad(loss)(state)

        fwd = jax.jit(lambda state, tokens: nnx.merge(graphdef, state)(tokens))
        logits[impl] = np.asarray(fwd(state, tokens), np.float32)
        jax.block_until_ready(loss_and_grad(state, tokens))
        t0 = time.perf_counter()
        for _ in range(10):
            out = loss_and_grad(state, tokens)
        jax.block_until_ready(out)
        print(f"{impl:6s} forward+backward {(time.perf_counter() - t0) / 10 * 1e3:7.1f} ms "
              f"({args.batch} x {T} tokens, {cfg.num_layers} layers, width {cfg.embed_dim})")
    diff = np.abs(logits["xla"] - logits["cudnn"])
    print(f"logits max |xla - cudnn| {diff.max():.3g}, mean {diff.mean():.3g} (logits std {logits['xla'].std():.3g})")


if __name__ == "__main__":
    main()
