"""The train step: optimizer, the sharded train state, the loss and the jitted step functions.

The train state is a plain pytree {step, params, opt_state}; the step is a pure function of it
(`nnx.split` state), jitted once with in/out shardings from the config's mesh rules and the state
donated. Replicates of one shape train together through `jax.vmap` of the same function over a
stacked leading axis (`stack_shardings`, `make_stacked_train_step`): each replicate computes what
its solo run computes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from transcendence_jax.training.sharding import batch_sharding


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


def legal_loss_mode(tc):
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


def train_step_fn(config, graphdef, tx, schedule, mesh, param_shardings):
    """The pure step (state, rest, batch, dropout_key) -> (state, metrics): grad accumulation over
    microbatches (lax.scan), clip, AdamW. `jax.vmap` of it trains stacked replicates (`stacked`).

    A microbatch's gradient is weighted by its share of the batch's tokens, so the accumulated
    gradient equals the full batch's (weighted mean loss) whatever grad_accum is.
    """
    tc, mc = config.train, config.model
    A = tc.grad_accum
    use_dropout = mc.dropout > 0

    def step_fn(state, rest, batch, dropout_key):
        params, step = state["params"], state["step"]
        total = jnp.maximum(batch["weights"].astype(jnp.float32).sum(), 1e-8)
        key = jax.random.fold_in(dropout_key, step) if use_dropout else None

        def micro(carry, xs):
            i, mb = xs
            mb = {k: jax.lax.with_sharding_constraint(v, batch_sharding(mesh, v.ndim, config.mesh.rules))
                  for k, v in mb.items()}
            share = mb["weights"].astype(jnp.float32).sum() / total
            mkey = jax.random.fold_in(key, i) if use_dropout else None

            def scaled(p):
                loss, m = _loss(p, rest, graphdef, mb, legal_loss_mode(tc), mkey)
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

    return step_fn


def dropout_key(tc):
    """The base key of a run's dropout masks (folded with the step, then the microbatch)."""
    return jax.random.key(tc.seed + 1)


def make_train_step(config, graphdef, tx, schedule, mesh, state_shardings, rest_shardings, batch_keys):
    """One jitted step (`train_step_fn` with the run's dropout key); state donated."""
    step_fn = train_step_fn(config, graphdef, tx, schedule, mesh, state_shardings["params"])
    key = dropout_key(config.train)
    in_batch = {k: batch_sharding(mesh, nd, config.mesh.rules) for k, nd in batch_keys.items()}
    return jax.jit(lambda state, rest, batch: step_fn(state, rest, batch, key),
                   in_shardings=(state_shardings, rest_shardings, in_batch),
                   out_shardings=(state_shardings, None), donate_argnums=(0,))


def stack_shardings(shardings):
    """Every NamedSharding of a tree with a leading (unsharded) replicate axis."""
    return jax.tree.map(lambda s: NamedSharding(s.mesh, P(None, *s.spec)), shardings,
                        is_leaf=lambda x: isinstance(x, NamedSharding))


def make_stacked_train_step(config, graphdef, tx, schedule, mesh, state_shardings, rest_shardings, batch_keys):
    """`make_train_step` for replicates stacked on a leading axis: (state, rest, batch, dropout_keys)
    -> (state, metrics), each leaf with the replicate axis first; state donated."""
    step_fn = train_step_fn(config, graphdef, tx, schedule, mesh, state_shardings["params"])
    in_batch = {k: stack_shardings(batch_sharding(mesh, nd, config.mesh.rules)) for k, nd in batch_keys.items()}
    stacked_state = stack_shardings(state_shardings)
    return jax.jit(jax.vmap(step_fn), in_shardings=(stacked_state, stack_shardings(rest_shardings), in_batch, None),
                   out_shardings=(stacked_state, None), donate_argnums=(0,))


def make_eval_step(config, graphdef, mesh, param_shardings, rest_shardings, batch_keys):
    """(params, rest, batch) -> (sum of token losses, sum of correct arg-maxes, token count)."""
    legal_loss = legal_loss_mode(config.train)

    def eval_fn(params, rest, batch):
        loss, m = _loss(params, rest, graphdef, batch, legal_loss, None)
        return loss * m["tokens"], m["accuracy"] * m["tokens"], m["tokens"]

    in_batch = {k: batch_sharding(mesh, nd, config.mesh.rules) for k, nd in batch_keys.items()}
    return jax.jit(eval_fn, in_shardings=(param_shardings, rest_shardings, in_batch))


