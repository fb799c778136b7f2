"""Training: one sharded `jax.jit` step over a device mesh, orbax checkpoints, metrics.

`transcendence train --config tiny --workdir DIR [--config.a.b=v ...]`

The train state is a plain pytree {step, params, opt_state}; the step is a pure function of it
(`nnx.split` state, donated), jitted once with in/out shardings from the config's mesh rules.
Checkpoints hold that state plus the grain iterator state, so a resumed run sees exactly the
batches an uninterrupted run would. Workdir (a local path or gs:// URL): config.json,
checkpoints/, metrics.jsonl, tensorboard/, loss.png; config.data.path must be local. One run
at a time per local workdir (`workdir_lock`); a rerun resumes only under the same settings
unless --allow-config-change, and a NaN/inf loss, gradient or state stops the run before it
saves (`guards`).

Multi-host: the same command on every host; `jax.distributed.initialize()` runs with
`--coordinator`/`--num-processes`/`--process-id` (or their JAX_* variables) or `--distributed`
(auto-detection). Each host reads its own shard of the data; only process 0 writes logs.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import nullcontext

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from transcendence_jax.errors import UserError
from transcendence_jax.training import checkpoint as ckpt
from transcendence_jax.training import guards
from transcendence_jax.training.metrics import MetricsWriter, as_path, is_url, peak_flops
from transcendence_jax.training.sharding import batch_sharding, shard_batch

# ---------------------------------------------------------------------------- setup


def maybe_initialize_distributed(coordinator=None, num_processes=None, process_id=None, auto=False) -> None:
    """Call jax.distributed.initialize() when launched on several hosts (before any other jax call)."""
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num_processes = num_processes or os.environ.get("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else os.environ.get("JAX_PROCESS_ID")
    if coordinator and num_processes:
        if process_id is None:
            raise UserError("multi-host run: set --process-id (or JAX_PROCESS_ID) on every host")
        jax.distributed.initialize(coordinator, int(num_processes), int(process_id))
    elif auto:
        jax.distributed.initialize()  # TPU pod, SLURM, ... detected by jax


def check_config(config, num_devices: int, num_processes: int = 1) -> tuple[int, int, int]:
    """Everything that can be wrong with the shapes, as one-line UserErrors before any compile.

    Returns the resolved mesh shape (data, fsdp, tensor).
    """
    from transcendence_jax.training.sharding import resolve_mesh_shape

    shape = resolve_mesh_shape(config.mesh.shape, num_devices)
    tc, dp = config.train, shape[0] * shape[1]
    if tc.grad_accum < 1 or tc.batch_size % tc.grad_accum:
        raise UserError(f"config.train.batch_size {tc.batch_size} is not a multiple of "
                        f"config.train.grad_accum {tc.grad_accum}")
    micro = tc.batch_size // tc.grad_accum
    if micro % dp:
        raise UserError(f"config.train.batch_size {tc.batch_size} / grad_accum {tc.grad_accum} = {micro} sequences per "
                        f"microbatch does not divide over the {dp} data-parallel devices (mesh data x fsdp): "
                        f"make batch_size a multiple of {dp * tc.grad_accum}")
    if tc.batch_size % num_processes:
        raise UserError(f"config.train.batch_size {tc.batch_size} does not divide over {num_processes} processes")
    if config.data.seq_len > config.model.max_len:
        raise UserError(f"config.data.seq_len {config.data.seq_len} exceeds "
                        f"config.model.max_len {config.model.max_len}")
    if tc.steps < 1:
        raise UserError(f"config.train.steps must be >= 1, got {tc.steps}")
    if tc.legal_mask not in ("host", "device"):
        raise UserError(f"config.train.legal_mask {tc.legal_mask!r}: use host or device")
    has_boards = config.data.boards or config.model.board_input
    if _legal_loss(tc) == "device" and (config.data.packing != "pad" or not has_boards):
        raise UserError("config.train.legal_mask=device reads the side to move from the position in a padded row "
                        "and the pieces from the board planes: it needs data.packing=pad and data.boards "
                        "(or use legal_mask=host)")
    if _legal_loss(tc) == "host" and not config.data.legal:
        print("note: train.legal_loss needs legal masks: the loader will produce them (data.legal)", file=sys.stderr)
    return shape


def make_optimizer(tc) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with linear warmup then cosine decay to min_lr (nanoGPT's schedule), global-norm clipping.

    Weight decay applies to matrices only (embeddings and kernels), not to LayerNorm scales.
    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=tc.lr, warmup_steps=tc.warmup_steps,
        decay_steps=max(tc.decay_steps, tc.warmup_steps + 1), end_value=tc.min_lr)
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    parts = [optax.clip_by_global_norm(tc.grad_clip)] if tc.grad_clip else []
    parts.append(optax.adamw(schedule, b1=tc.b1, b2=tc.b2, weight_decay=tc.weight_decay, mask=decay_mask))
    return optax.chain(*parts), schedule


def abstract_train_state(config, mesh, tx):
    """The train state's shapes, dtypes and shardings, with nothing allocated.

    Returns (graphdef, abstract_state, state_shardings, rest_shardings, init_fn): abstract_state
    holds jax.ShapeDtypeStructs carrying their target shardings (what a checkpoint restores into);
    init_fn(key) -> (state, rest) builds the real thing. `rest` holds the non-parameter variables
    (dropout RNG streams), reseeded each step rather than checkpointed.
    """
    from transcendence_jax.model import Transformer
    from transcendence_jax.training import sharding

    def init_fn(key):
        model = Transformer(config.model, rngs=nnx.Rngs(key))
        _, params, rest = nnx.split(model, nnx.Param, ...)
        state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
        return state, rest

    graphdef, _, abs_rest, param_shardings = sharding.abstract_params(config.model, mesh, config.mesh.rules)
    replicated = NamedSharding(mesh, P())
    abs_state, _ = jax.eval_shape(init_fn, jax.random.key(0))
    opt_shardings = optax.tree_map_params(
        tx, lambda _, s: s, abs_state["opt_state"], param_shardings,
        transform_non_params=lambda _: replicated, is_leaf=lambda x: isinstance(x, nnx.Variable))
    state_shardings = {"step": replicated, "params": param_shardings, "opt_state": opt_shardings}
    rest_shardings = jax.tree.map(lambda _: replicated, abs_rest)
    return graphdef, sharding.with_shardings(abs_state, state_shardings), state_shardings, rest_shardings, init_fn


def init_train_state(config, mesh, tx, *, params: bool = True):
    """Sharded initialisation: one jit whose out_shardings place every parameter and optimizer
    slot directly on its shard (no full copy on any one device).

    Returns (graphdef, state, rest, state_shardings, rest_shardings). With params=False `state`
    is only the abstract state (ShapeDtypeStructs: for a resume that restores it from a
    checkpoint) and only `rest` is computed: XLA drops the unused parameter initialisers.
    """
    graphdef, abs_state, state_shardings, rest_shardings, init_fn = abstract_train_state(config, mesh, tx)
    key = jax.random.key(config.train.seed)
    with jax.set_mesh(mesh):
        if params:
            state, rest = jax.jit(init_fn, out_shardings=(state_shardings, rest_shardings))(key)
        else:
            state, rest = abs_state, jax.jit(lambda k: init_fn(k)[1], out_shardings=rest_shardings)(key)
    return graphdef, state, rest, state_shardings, rest_shardings


# ---------------------------------------------------------------------------- step functions


def _legal_loss(tc):
    """False, "host" (the batch's exact masks) or "device" (pseudo-legal masks made in the step)."""
    return tc.legal_loss and tc.legal_mask


def _loss(params, rest, graphdef, batch, legal_loss, dropout_key):
    """Weighted mean cross-entropy of one (micro)batch; legal_loss as `_legal_loss`."""
    from transcendence_jax.legality import pseudo_legal
    from transcendence_jax.model import cross_entropy

    model = nnx.merge(graphdef, params, rest)
    deterministic = dropout_key is None
    if not deterministic:
        nnx.reseed(model, dropout=dropout_key)
    logits_BTV = model(batch["inputs"], batch.get("boards"), deterministic=deterministic)
    legal = None
    if legal_loss == "device":  # a padded row is one game from BOS: White moves at even positions
        (B, T), V = batch["targets"].shape, logits_BTV.shape[-1]
        white = jnp.broadcast_to(jnp.arange(T) % 2 == 0, (B, T)).reshape(-1)
        legal = pseudo_legal(batch["boards"].reshape(B * T, 64), white, V).reshape(B, T, V)
    elif legal_loss:
        legal = batch.get("legal")
    return cross_entropy(logits_BTV, batch["targets"], batch["weights"], legal)


def make_train_step(config, graphdef, tx, schedule, mesh, state_shardings, rest_shardings, batch_keys):
    """One jitted step: grad accumulation over microbatches (lax.scan), clip, AdamW; state donated.

    A microbatch's gradient is weighted by its share of the batch's tokens, so the accumulated
    gradient equals the full batch's (weighted mean loss) whatever grad_accum is.
    """
    tc, mc = config.train, config.model
    A = tc.grad_accum
    use_dropout = mc.dropout > 0
    base_key = jax.random.key(tc.seed + 1)
    param_shardings = state_shardings["params"]

    def step_fn(state, rest, batch):
        params, step = state["params"], state["step"]
        total = jnp.maximum(batch["weights"].astype(jnp.float32).sum(), 1e-8)
        key = jax.random.fold_in(base_key, step) if use_dropout else None

        def micro(carry, xs):
            i, mb = xs
            mb = {k: jax.lax.with_sharding_constraint(v, batch_sharding(mesh, v.ndim, config.mesh.rules))
                  for k, v in mb.items()}
            share = mb["weights"].astype(jnp.float32).sum() / total
            mkey = jax.random.fold_in(key, i) if use_dropout else None

            def scaled(p):
                loss, m = _loss(p, rest, graphdef, mb, _legal_loss(tc), mkey)
                return loss * share, m

            (_, m), g = jax.value_and_grad(scaled, has_aux=True)(params)
            grads, loss_sum, correct = carry
            grads = jax.lax.with_sharding_constraint(jax.tree.map(jnp.add, grads, g), param_shardings)
            return (grads, loss_sum + m["loss"] * m["tokens"], correct + m["accuracy"] * m["tokens"]), None

        zeros = jax.lax.with_sharding_constraint(jax.tree.map(jnp.zeros_like, params), param_shardings)
        init = (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        if A == 1:
            (grads, loss_sum, correct), _ = micro(init, (0, batch))
        else:
            # Microbatch i takes rows i, A+i, 2A+i...: each device keeps its own rows (no resharding).
            micro_batches = {k: v.reshape(v.shape[0] // A, A, *v.shape[1:]).swapaxes(0, 1) for k, v in batch.items()}
            (grads, loss_sum, correct), _ = jax.lax.scan(micro, init, (jnp.arange(A), micro_batches))
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss_sum / total, "accuracy": correct / total, "grad_norm": optax.global_norm(grads),
                   "lr": schedule(step), "tokens": total}
        return {"step": step + 1, "params": params, "opt_state": opt_state}, metrics

    in_batch = {k: batch_sharding(mesh, nd, config.mesh.rules) for k, nd in batch_keys.items()}
    return jax.jit(step_fn, in_shardings=(state_shardings, rest_shardings, in_batch),
                   out_shardings=(state_shardings, None), donate_argnums=(0,))


def make_eval_step(config, graphdef, mesh, param_shardings, rest_shardings, batch_keys):
    """(params, rest, batch) -> (sum of token losses, token count)."""
    legal_loss = _legal_loss(config.train)

    def eval_fn(params, rest, batch):
        loss, m = _loss(params, rest, graphdef, batch, legal_loss, None)
        return loss * m["tokens"], m["tokens"]

    in_batch = {k: batch_sharding(mesh, nd, config.mesh.rules) for k, nd in batch_keys.items()}
    return jax.jit(eval_fn, in_shardings=(param_shardings, rest_shardings, in_batch))


# ---------------------------------------------------------------------------- the loop


def _loaders(config):
    from transcendence_jax.data.build import dataset_files
    from transcendence_jax.data.pipeline import make_loader

    dc, mc, tc = config.data, config.model, config.train
    if not dc.path:
        raise UserError("config.data.path is empty: pass --config.data.path=DIR (a `transcendence data build` output)")
    if is_url(dc.path):
        raise UserError(f"config.data.path {dc.path} is a URL, but the data pipeline reads local files only: copy "
                        f"the dataset to local disk first (gsutil -m cp -r {dc.path} /tmp/data/, as "
                        "tpu_scripts/train.sh does)")
    kw = dict(seq_len=dc.seq_len, batch_size=tc.batch_size // jax.process_count(), packing=dc.packing,
              boards=bool(dc.boards or mc.board_input), legal=bool(dc.legal or _legal_loss(tc) == "host"),
              vocab_size=mc.vocab_size)
    train_loader = make_loader(dataset_files(dc.path, "train"), seed=dc.seed, shuffle=True,
                               worker_count=dc.worker_count, **kw)
    val_loader = None
    if tc.eval_every and tc.eval_batches:
        try:
            val_loader = make_loader(dataset_files(dc.path, "validation"), seed=dc.seed, shuffle=False, **kw)
        except UserError as e:
            print(f"warning: no validation loss ({e})", file=sys.stderr)
    return train_loader, val_loader


def evaluate(eval_step, params, rest, val_loader, num_batches: int, mesh, rules) -> float:
    """Mean validation loss over the first `num_batches` batches (the same ones every time)."""
    total = count = 0.0
    for i, batch in enumerate(iter(val_loader)):
        if i >= num_batches:
            break
        s, n = eval_step(params, rest, shard_batch(batch, mesh, rules))
        total, count = total + float(s), count + float(n)
    return total / max(count, 1e-8)


def train(config, workdir, *, allow_config_change: bool = False) -> dict:
    """Train (or resume) in `workdir` (a local path or a gs:// URL); returns the final metrics
    (loss, val_loss, step...). Process 0 holds the workdir's lock for the run (`workdir_lock`);
    resuming under other settings needs `allow_config_change` (`guards.check_resume`)."""
    from transcendence_jax import workdir_lock

    lock = workdir_lock.hold(as_path(workdir), "train", "--workdir") if jax.process_index() == 0 else nullcontext()
    with lock:
        return _train(config, workdir, allow_config_change)


def _train(config, workdir, allow_config_change: bool) -> dict:
    from transcendence_jax.model import flops_per_token
    from transcendence_jax.training import sharding

    tc = config.train
    mesh_shape = check_config(config, jax.device_count(), jax.process_count())
    mesh = sharding.make_mesh(mesh_shape)
    is_main = jax.process_index() == 0
    workdir = as_path(workdir)  # local paths made absolute; gs://... left as a URL
    train_loader, val_loader = _loaders(config)

    tx, schedule = make_optimizer(tc)
    data_iter = iter(train_loader)
    manager = ckpt.make_manager(workdir, keep=tc.keep_checkpoints)
    # Resuming: restore straight into the sharded abstract state, never building a random one first.
    resuming = bool(manager.all_steps())
    if resuming:
        guards.check_resume(workdir / "config.json", config, allow_config_change)
    graphdef, state, rest, state_shardings, rest_shardings = init_train_state(config, mesh, tx, params=not resuming)
    if resuming:
        start = ckpt.restore_latest(manager, state, data_iter, workdir)
        manager.close()
        manager = ckpt.make_manager(workdir, keep=tc.keep_checkpoints)  # forget quarantined steps
        if start is None:  # every step was unreadable (and quarantined): start afresh
            graphdef, state, rest, state_shardings, rest_shardings = init_train_state(config, mesh, tx)
            data_iter = iter(train_loader)
        else:
            state = start[1]
    start_step = int(state["step"])
    guard = guards.FiniteGuard(workdir / "checkpoints")
    guard.last_saved = start_step if start_step else None
    if is_main:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    if start_step >= tc.steps:
        print(f"{workdir} already holds step {start_step} >= train.steps {tc.steps}: nothing to do", file=sys.stderr)

    batch = next(data_iter) if start_step < tc.steps else None
    batch_keys = {k: v.ndim for k, v in (batch or {}).items()}
    step_fn = make_train_step(config, graphdef, tx, schedule, mesh, state_shardings, rest_shardings, batch_keys)
    eval_fn = make_eval_step(config, graphdef, mesh, state_shardings["params"], rest_shardings, batch_keys)
    tokens_per_step = tc.batch_size * config.data.seq_len
    peak = peak_flops(jax.devices()[0].device_kind)
    flops_step = flops_per_token(config.model, config.data.seq_len) * tokens_per_step
    writer = MetricsWriter(workdir, total_steps=tc.steps, initial_step=start_step, enabled=is_main)
    last = {"step": start_step}
    t_mark, steps_timed, t_paused = None, 0, 0.0
    try:
        with jax.set_mesh(mesh):
            for step in range(start_step + 1, tc.steps + 1):
                if batch is None:
                    batch = next(data_iter)
                state, m = step_fn(state, rest, sharding.shard_batch(batch, mesh, config.mesh.rules))
                batch = None
                guard.add(step, m)
                saving = step % tc.checkpoint_every == 0 or step == tc.steps
                logging = step % tc.log_every == 0 or step == tc.steps
                if logging or saving:  # the moments that wait for the device anyway
                    guard.check()
                if t_mark is None:  # the first step compiles: time from its end
                    jax.block_until_ready(m["loss"])
                    t_mark, steps_timed, t_paused = time.perf_counter(), 0, 0.0
                else:
                    steps_timed += 1
                row = {}
                if logging:
                    row = {k: float(v) for k, v in m.items() if k != "tokens"}
                    if steps_timed:
                        dt = time.perf_counter() - t_mark - t_paused
                        row["tokens_per_s"] = steps_timed * tokens_per_step / max(dt, 1e-9)
                        row["mfu"] = (flops_step * steps_timed / dt / (peak * jax.device_count())) if peak else None
                        t_mark, steps_timed, t_paused = time.perf_counter(), 0, 0.0
                t0 = time.perf_counter()
                if val_loader is not None and (step % tc.eval_every == 0 or step == tc.steps):
                    row["val_loss"] = evaluate(eval_fn, state["params"], rest, val_loader, tc.eval_batches, mesh,
                                               config.mesh.rules)
                if saving:
                    sums = ckpt.digest(state)
                    guard.check_state(step, sums)
                    ckpt.save(manager, step, state, data_iter, sums)
                    guard.last_saved = step
                t_paused += time.perf_counter() - t0
                if row:
                    writer.write(step, row)
                    last.update(row, step=step)
                writer.progress(step, row.get("loss"), row.get("tokens_per_s"))
        manager.wait_until_finished()
    finally:
        manager.close()
        writer.close()
    return last


# ---------------------------------------------------------------------------- CLI


def add_arguments(parser) -> None:
    from transcendence_jax.config import add_config_arguments

    add_config_arguments(parser, help="a config file or a packaged name (tiny, paper_50m...)")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and plots go here; reruns resume")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="resume the workdir's checkpoints with settings that differ from its config.json "
                             "(refused otherwise; the changes are listed and config.json is replaced)")
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() with auto-detection (TPU pod, SLURM)")
    parser.add_argument("--coordinator",
                        help="host:port of process 0 for a multi-host run (or JAX_COORDINATOR_ADDRESS)")
    parser.add_argument("--num-processes", type=int, help="number of processes (or JAX_NUM_PROCESSES)")
    parser.add_argument("--process-id", type=int, help="this process's index (or JAX_PROCESS_ID)")


def run(args) -> int:
    maybe_initialize_distributed(args.coordinator, args.num_processes, args.process_id, args.distributed)
    from transcendence_jax.config import load_config

    config = load_config(args.config, args.overrides)
    final = train(config, args.workdir, allow_config_change=args.allow_config_change)
    if jax.process_index() == 0:
        parts = [f"step {final['step']}"]
        parts += [f"{k} {final[k]:.4f}" for k in ("loss", "val_loss") if final.get(k) is not None]
        if final.get("tokens_per_s"):
            parts.append(f"{final['tokens_per_s']:,.0f} tokens/s")
        print(f"trained: {', '.join(parts)}; workdir {args.workdir} (metrics.jsonl, loss.png, checkpoints/)")
    return 0
