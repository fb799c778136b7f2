"""Tokens/s of our train step against the same model and batch in PyTorch (eager), on this CPU.

JAX side: the real `model.Transformer` and the real jitted step of `train.make_train_step`
(forward, backward, AdamW with global-norm clipping, state donated) on a one-device mesh.
PyTorch side: nanoGPT's model (pre-norm, no biases, tied head, learned positions, tanh GELU
as ours, `scaled_dot_product_attention(is_causal=True)`), eager, `clip_grad_norm_` + AdamW.
Both run in this process, interleaved round by round, and the figures are medians: absolute
speed on a shared 2-core machine drifts, so read the ratio. The process runs on the allocator
`transcendence` runs on (jemalloc; TJ_MALLOC=system: glibc's), for both frameworks. On jemalloc
the 26M shape keeps both frameworks' freed memory: ~20 GB at peak (RESULTS.md, "The allocator").
Also printed: a big fp32 matmul's FLOP rate (this CPU's practical peak) and the fraction of
it each step achieves, and a forward / backward / optimizer breakdown (forward alone,
forward+backward minus forward, and the optimizer update alone, each timed on its own).

  .venv/bin/python benchmarks/train_throughput.py                  # the default shape (slow: minutes)
  .venv/bin/python benchmarks/train_throughput.py --layers 2 --width 128 --heads 4 --batch 8
  .venv/bin/python benchmarks/train_throughput.py --demo           # the demo's model: boards, legal-move loss
  .venv/bin/python benchmarks/train_throughput.py --demo --stack 4 --no-torch   # + 4 replicates stacked

--demo is the demo's shape (4 layers, width 128, 101 tokens x 24, vocabulary 2048) with board
input and the legal-move loss on random legal games; both sides read the same precomputed legal
masks (JAX's legal_mask=host; the demo makes them in the step instead) and PyTorch sums the
board's (square, piece) embeddings as a PyTorch user would. --stack R also times R replicates in
one vmapped step (`train --seeds R`) against R solo steps, interleaved: trainings per hour.
--floor also times every matmul (dot_general) of each step alone, at its own shapes, and sums
them: the step's matmul floor on this CPU (its other work and memory traffic come on top), so
R x solo step / stacked floor bounds what stacking can gain here; with PyTorch on, the same
matmuls are also timed in PyTorch, and PyTorch's step over JAX's matmuls alone bounds JAX / PyTorch.

  .venv/bin/python benchmarks/train_throughput.py --demo --stack 4 --no-torch --floor
  .venv/bin/python benchmarks/train_throughput.py --floor --steps 3 --warmup 1   # the 26M shape's bound
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P
from machine import report_load  # benchmarks/machine.py

from transcendence_jax import model as model_lib
from transcendence_jax.model import Transformer, count_params, cross_entropy, flops_per_token
from transcendence_jax.training import step as train_lib

SHAPE_26M = dict(layers=8, width=512, heads=8, vocab=2048, seq=256, batch=32)  # the default shape
DEMO_SHAPE = dict(layers=4, width=128, heads=4, vocab=2048, seq=101, batch=24)  # --demo: the demo's model


def make_config(a) -> ml_collections.ConfigDict:
    """The fields of config.model / config.train / config.mesh that the model and the train step read."""
    from transcendence_jax.config import load_config

    rules = load_config("tiny").mesh.rules  # the project's logical -> mesh axis rules
    return ml_collections.ConfigDict({
        "mesh": dict(shape=(1, 1, 1), rules=rules),
        "model": dict(vocab_size=a.vocab, num_layers=a.layers, num_heads=a.heads, embed_dim=a.width,
                      mlp_dim=4 * a.width, max_len=a.seq, dropout=0.0, board_input=a.demo,
                      dtype="float32", param_dtype="float32", remat=False),
        "train": dict(seed=0, lr=3e-4, min_lr=3e-5, warmup_steps=10, decay_steps=1000, weight_decay=0.1,
                      b1=0.9, b2=0.95, grad_clip=1.0, grad_accum=1, legal_loss=a.demo, legal_mask="host"),
    })


def random_batch(a) -> dict:
    """Random tokens, or with --demo random legal games (up to a.seq plies) with their board planes
    and legal masks, padded as the data pipeline pads."""
    rng = np.random.default_rng(0)
    if not a.demo:
        tokens = rng.integers(5, min(a.vocab, 1973), (a.batch, a.seq + 1)).astype(np.int32)
        return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "weights": np.ones((a.batch, a.seq), np.float32)}
    import chess

    from transcendence_jax.data.boards import game_boards
    from transcendence_jax.data.tokenizer import BOS, legal_mask, move_token

    batch = {"inputs": np.zeros((a.batch, a.seq), np.int32), "targets": np.zeros((a.batch, a.seq), np.int32),
             "weights": np.zeros((a.batch, a.seq), np.float32), "boards": np.zeros((a.batch, a.seq, 64), np.uint8),
             "legal": np.zeros((a.batch, a.seq, a.vocab), bool)}
    for row in range(a.batch):
        board, moves = chess.Board(), []
        for t in range(a.seq):
            legal = list(board.legal_moves)
            if not legal:
                break
            batch["legal"][row, t] = legal_mask(board, a.vocab)
            moves.append(legal[rng.integers(len(legal))])
            board.push(moves[-1])
        tokens = [BOS] + [move_token(m) for m in moves]
        n = len(moves)
        batch["inputs"][row, :n] = tokens[:n]
        batch["targets"][row, :n] = tokens[1:]
        batch["weights"][row, :n] = 1.0
        batch["boards"][row, :n] = game_boards(moves)[:n]
    return batch


def timed(fn, *args):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------- JAX


class JaxBench:
    """Our train step plus its pieces (forward, forward+backward, optimizer) as separate jits."""

    def __init__(self, config, batch):
        mesh = jax.make_mesh((1, 1, 1), ("data", "fsdp", "tensor"), axis_types=(AxisType.Auto,) * 3)
        self.mesh = mesh
        tx, schedule = train_lib.make_optimizer(config.train)
        model = Transformer(config.model, rngs=nnx.Rngs(0))
        self.n_params = count_params(model)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        rep = NamedSharding(mesh, P())
        state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
        shard = lambda tree: jax.tree.map(lambda _: rep, tree)
        self.state, self.rest = state, rest
        self.batch = {k: jax.device_put(v, rep) for k, v in batch.items()}
        self.step_fn = train_lib.make_train_step(config, graphdef, tx, schedule, mesh, shard(state),
                                                 shard(rest), {k: v.ndim for k, v in batch.items()})

        def loss_fn(p, b):
            logits_BTV = nnx.merge(graphdef, p, rest)(b["inputs"], b.get("boards"))
            return cross_entropy(logits_BTV, b["targets"], b["weights"], b.get("legal"))[0]

        self.fwd = jax.jit(loss_fn)
        self.fwd_bwd = jax.jit(jax.value_and_grad(loss_fn))
        self.opt = jax.jit(lambda p, g, o: optax.apply_updates(p, tx.update(g, o, p)[0]))
        with jax.set_mesh(mesh):
            self.grads = self.fwd_bwd(params, self.batch)[1]

    def step(self):
        with jax.set_mesh(self.mesh):
            t0 = time.perf_counter()
            self.state, m = self.step_fn(self.state, self.rest, self.batch)
            jax.block_until_ready((self.state, m))
            self.loss = float(m["loss"])
            return time.perf_counter() - t0

    def parts(self):
        p = self.state["params"]
        return {"forward": timed(self.fwd, p, self.batch),
                "fwd+bwd": timed(self.fwd_bwd, p, self.batch),
                "optimizer": timed(self.opt, p, self.grads, self.state["opt_state"])}


class StackedBench:
    """R replicates (seeds 0..R-1) in one vmapped step (`step.make_stacked_train_step`, as
    `train --seeds R`), each on its own batch (the same rows, rolled)."""

    def __init__(self, config, batch, replicates: int):
        mesh = jax.make_mesh((1, 1, 1), ("data", "fsdp", "tensor"), axis_types=(AxisType.Auto,) * 3)
        self.mesh = mesh
        tx, schedule = train_lib.make_optimizer(config.train)
        graphdef, states, rests = None, [], []
        for seed in range(replicates):
            graphdef, params, rest = nnx.split(Transformer(config.model, rngs=nnx.Rngs(seed)), nnx.Param, ...)
            states.append({"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)})
            rests.append(rest)
        rep = NamedSharding(mesh, P())
        shard = lambda tree: jax.tree.map(lambda _: rep, tree)
        stack = lambda trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)
        self.state, self.rest = stack(states), stack(rests)
        self.batch = stack([{k: np.roll(v, r, axis=0) for k, v in batch.items()} for r in range(replicates)])
        self.keys = jnp.stack([train_lib.dropout_key(config.train)] * replicates)
        self.step_fn = train_lib.make_stacked_train_step(config, graphdef, tx, schedule, mesh, shard(states[0]),
                                                         shard(rests[0]), {k: v.ndim for k, v in batch.items()})

    def step(self):
        with jax.set_mesh(self.mesh):
            t0 = time.perf_counter()
            self.state, m = self.step_fn(self.state, self.rest, self.batch, self.keys)
            jax.block_until_ready((self.state, m))
            return time.perf_counter() - t0


def _dot_generals(jaxpr, times: int = 1):
    """(lhs aval, rhs aval, params, count) of every dot_general in a jaxpr, sub-jaxprs included
    (a scan's body counted `length` times)."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            out.append((eqn.invars[0].aval, eqn.invars[1].aval, eqn.params, times))
        n = times * eqn.params.get("length", 1) if eqn.primitive.name == "scan" else times
        for v in eqn.params.values():
            for sub in v if isinstance(v, (tuple, list)) else (v,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    out += _dot_generals(inner, n)
    return out


def _torch_matmul_seconds(lhs, rhs, dimension_numbers, reps: int) -> float:
    """Median seconds of PyTorch's batched matmul over the FLOPs of one dot_general, its operands
    laid out beforehand as (batch, m, k) @ (batch, k, n): PyTorch's kernel at the same shapes."""
    import torch

    (lc, rc), (lb, rb) = dimension_numbers
    size = lambda shape, dims: int(np.prod([shape[d] for d in dims]))  # noqa: E731
    free_l = [d for d in range(len(lhs.shape)) if d not in lc and d not in lb]
    free_r = [d for d in range(len(rhs.shape)) if d not in rc and d not in rb]
    a = torch.ones(size(lhs.shape, lb), size(lhs.shape, free_l), size(lhs.shape, lc))
    b = torch.ones(size(rhs.shape, rb), size(rhs.shape, rc), size(rhs.shape, free_r))
    torch.matmul(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_floor(step_fn, *args, reps: int = 5, torch_too: bool = False) -> tuple[float, float, int, float]:
    """(seconds, FLOPs, count, PyTorch seconds) of the matmuls of `step_fn(*args)`, each timed
    alone (median of reps, jitted on random operands of its shapes) and summed; PyTorch seconds:
    the same matmuls in PyTorch (`_torch_matmul_seconds`; 0 unless torch_too)."""
    seconds, flops, torch_seconds, cache = 0.0, 0.0, 0.0, {}
    dots = _dot_generals(jax.make_jaxpr(step_fn)(*args).jaxpr)
    for lhs, rhs, params, count in dots:
        (lc, rc), (lb, rb) = params["dimension_numbers"]
        key = (lhs.shape, rhs.shape, str(params["dimension_numbers"]), lhs.dtype, rhs.dtype)
        if key not in cache:
            a = jnp.ones(lhs.shape, lhs.dtype)
            b = jnp.ones(rhs.shape, rhs.dtype)
            fn = jax.jit(lambda x, y, p=params: jax.lax.dot_general(
                x, y, p["dimension_numbers"], preferred_element_type=p["preferred_element_type"]))
            jax.block_until_ready(fn(a, b))
            cache[key] = (statistics.median(timed(fn, a, b) for _ in range(reps)),
                          _torch_matmul_seconds(lhs, rhs, params["dimension_numbers"], reps) if torch_too else 0.0)
        seconds += count * cache[key][0]
        torch_seconds += count * cache[key][1]
        contracted = np.prod([lhs.shape[d] for d in lc])
        flops += count * 2 * np.prod(lhs.shape) * np.prod(rhs.shape) / contracted / np.prod([rhs.shape[d] for d in rb])
    return seconds, flops, len(dots), torch_seconds


# ---------------------------------------------------------------------------- PyTorch


class TorchBench:
    """nanoGPT's GPT (bias=False, dropout 0), eager, fp32, clip_grad_norm_ + AdamW."""

    def __init__(self, a, batch):
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        torch.manual_seed(0)
        D, H = a.width, a.heads

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln_1, self.ln_2 = nn.LayerNorm(D, bias=False), nn.LayerNorm(D, bias=False)
                self.c_attn, self.c_proj = nn.Linear(D, 3 * D, bias=False), nn.Linear(D, D, bias=False)
                self.c_fc, self.mlp_proj = nn.Linear(D, 4 * D, bias=False), nn.Linear(4 * D, D, bias=False)

            def forward(self, x):
                B, T, C = x.shape
                q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
                q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
                return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.wte, self.wpe = nn.Embedding(a.vocab, D), nn.Embedding(a.seq, D)
                self.blocks = nn.ModuleList([Block() for _ in range(a.layers)])
                self.ln_f = nn.LayerNorm(D, bias=False)
                self.lm_head = nn.Linear(D, a.vocab, bias=False)
                self.lm_head.weight = self.wte.weight  # tied, as nanoGPT
                self.board_emb = nn.Embedding(64 * 13, D) if a.demo else None  # (square, piece) pairs

            def forward(self, idx, boards=None):
                x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
                if self.board_emb is not None:  # the sum of the 64 squares' (square, piece) embeddings
                    x = x + self.board_emb(boards + 13 * torch.arange(64)).sum(2)
                for blk in self.blocks:
                    x = blk(x)
                return self.lm_head(self.ln_f(x))

        self.torch, self.F = torch, F
        self.model = GPT()
        for name, p in self.model.named_parameters():  # nanoGPT's init, as model.py
            if p.dim() >= 2:
                std = 0.02 / (2 * a.layers) ** 0.5 if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                torch.nn.init.normal_(p, 0.0, std)
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95))
        self.inputs = torch.from_numpy(batch["inputs"]).long()
        self.targets = torch.from_numpy(batch["targets"]).long()
        self.weights = torch.from_numpy(batch["weights"])
        self.boards = torch.from_numpy(batch["boards"]).long() if a.demo else None
        self.allowed = None
        if a.demo:  # as model.cross_entropy: legal moves, the target, everything where nothing is legal
            legal = torch.from_numpy(batch["legal"])
            target = self.F.one_hot(self.targets, a.vocab).bool()
            self.allowed = legal | target | ~legal.any(-1, keepdim=True)

    def _loss(self):
        logits = self.model(self.inputs, self.boards)
        if self.allowed is not None:
            logits = logits.masked_fill(~self.allowed, float("-inf"))
        nll = self.F.cross_entropy(logits.view(-1, logits.shape[-1]), self.targets.view(-1), reduction="none")
        return (nll * self.weights.view(-1)).sum() / self.weights.sum()

    def step(self):
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss = self._loss()
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.loss = float(loss.detach())
        return time.perf_counter() - t0

    def parts(self):
        self.opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = self._loss()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        t3 = time.perf_counter()
        return {"forward": t1 - t0, "fwd+bwd": t2 - t0, "optimizer": t3 - t2}


# ---------------------------------------------------------------------------- main


def matmul_flops(n: int = 2048, reps: int = 5) -> tuple[float, float]:
    """FLOP/s of an n x n fp32 matmul in JAX and in PyTorch (best of reps)."""
    import torch

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    jax.block_until_ready(mm(a))
    at = torch.randn(n, n)
    t_jax = min(timed(mm, a) for _ in range(reps))
    t_torch = []
    for _ in range(reps):
        t0 = time.perf_counter()
        at @ at
        t_torch.append(time.perf_counter() - t0)
    return 2 * n**3 / t_jax, 2 * n**3 / min(t_torch)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in SHAPE_26M.items():
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per side (interleaved rounds)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per side after compile")
    ap.add_argument("--no-torch", action="store_true", help="JAX only (no baseline, no ratio)")
    ap.add_argument("--demo", action="store_true",
                    help="the demo's model: 4 layers, width 128, 101 tokens x 24, board input, legal-move loss")
    ap.add_argument("--stack", type=int, default=0, help="also time this many replicates in one stacked step")
    ap.add_argument("--attention-block", type=int, default=None,
                    help="JAX's queries per attention block on CPU (default: the model's; 0: one full attention)")
    ap.add_argument("--floor", action="store_true",
                    help="also time each step's matmuls alone and sum them (the step's matmul floor)")
    a = ap.parse_args(argv)
    if a.demo:
        vars(a).update(DEMO_SHAPE)
    report_load()
    if a.attention_block is not None:
        model_lib.CPU_QUERY_BLOCK = a.attention_block

    batch = random_batch(a)
    config = make_config(a)
    tokens_per_step = int(batch["weights"].sum())
    flops_step = flops_per_token(config.model, a.seq) * tokens_per_step
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; {a.layers} layers, width {a.width}, "
          f"{a.heads} heads, vocab {a.vocab}, {a.seq} tokens x batch {a.batch}"
          + (f" ({tokens_per_step} of them moves), board input, legal-move loss" if a.demo else ""))

    t0 = time.perf_counter()
    jb = JaxBench(config, batch)
    jb.step()
    print(f"JAX: {jb.n_params / 1e6:.1f}M params, compile + first step {time.perf_counter() - t0:.1f} s")
    tb = None
    if not a.no_torch:
        import torch

        tb = TorchBench(a, batch)
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    sb = StackedBench(config, batch, a.stack) if a.stack else None
    jb.parts()  # compiles the breakdown's jits
    for _ in range(a.warmup):
        jb.step()
        tb and tb.step()
        sb and sb.step()
    mm_jax, mm_torch = matmul_flops()
    peak = max(mm_jax, mm_torch)
    print(f"fp32 2048^3 matmul: JAX {mm_jax / 1e9:.0f} GFLOP/s, PyTorch {mm_torch / 1e9:.0f} GFLOP/s "
          f"(peak used below: {peak / 1e9:.0f})")

    times = {"jax": [], "torch": [], "stacked": []}
    parts = {"jax": [], "torch": []}
    for _ in range(a.steps):  # interleaved: every side sees the same machine load
        times["jax"].append(jb.step())
        parts["jax"].append(jb.parts())
        if tb:
            times["torch"].append(tb.step())
            parts["torch"].append(tb.parts())
        if sb:
            times["stacked"].append(sb.step())

    print(f"\n{'':10s} {'step s':>8s} {'tokens/s':>9s} {'of peak':>8s} {'fwd s':>7s} {'bwd s':>7s} {'opt s':>7s}")
    res = {}
    for side in ("jax", "torch"):
        if not times[side]:
            continue
        t = statistics.median(times[side])
        fwd = statistics.median(p["forward"] for p in parts[side])
        bwd = statistics.median(p["fwd+bwd"] - p["forward"] for p in parts[side])
        opt = statistics.median(p["optimizer"] for p in parts[side])
        res[side] = t
        print(f"{side:10s} {t:8.3f} {tokens_per_step / t:9.0f} {flops_step / t / peak:8.1%} "
              f"{fwd:7.3f} {bwd:7.3f} {opt:7.3f}")
    print(f"losses after the timed steps: JAX {jb.loss:.4f}" + (f", PyTorch {tb.loss:.4f}" if tb else ""))
    if tb:
        print(f"\nJAX / PyTorch tokens/s: {res['torch'] / res['jax']:.2f}x")
    if sb:
        t = res["stacked"] = statistics.median(times["stacked"])
        print(f"\n{a.stack} replicates stacked: {t:.3f} s a step ({flops_step * a.stack / t / peak:.1%} of peak) "
              f"against {a.stack} x {res['jax']:.3f} s solo: {a.stack * res['jax'] / t:.2f}x the trainings per hour")
    if a.floor:
        with jax.set_mesh(jb.mesh):
            solo = matmul_floor(jb.step_fn, jb.state, jb.rest, jb.batch, torch_too=bool(tb))
            stacked = sb and matmul_floor(sb.step_fn, sb.state, sb.rest, sb.batch, sb.keys)
        print(f"\nmatmul floor (each dot_general of the step alone, summed): solo {solo[0]:.3f} s for {solo[2]} "
              f"matmuls, {solo[1] / 1e9:.2f} GFLOP ({solo[1] / solo[0] / peak:.0%} of peak), against its step "
              f"{res['jax']:.3f} s")
        if tb:
            print(f"the same matmuls in PyTorch: {solo[3]:.3f} s ({solo[1] / solo[3] / peak:.0%} of peak), against "
                  f"its step {res['torch']:.3f} s. With XLA:CPU's matmuls JAX / PyTorch is at most "
                  f"{res['torch'] / solo[0]:.2f}x (PyTorch's step over JAX's matmuls alone)")
        if stacked:
            share = stacked[1] / stacked[0] / peak
            print(f"{a.stack} stacked: {stacked[0]:.3f} s, {stacked[1] / 1e9:.2f} GFLOP ({share:.0%} of peak), "
                  f"against its step {res['stacked']:.3f} s: stacking gains at most "
                  f"{a.stack * res['jax'] / stacked[0]:.2f}x the trainings per hour on the matmuls alone")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return res


if __name__ == "__main__":
    main()
