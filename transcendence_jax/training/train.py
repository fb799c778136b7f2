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
from contextlib import ExitStack

import jax
import jax.numpy as jnp

from transcendence_jax.config import flatten
from transcendence_jax.errors import UserError
from transcendence_jax.training import checkpoint as ckpt
from transcendence_jax.training import guards
from transcendence_jax.training.metrics import MetricsWriter, as_path, is_url, peak_flops, run_header
from transcendence_jax.training.sharding import shard_batch
from transcendence_jax.training.step import (
    dropout_key,
    init_train_state,
    legal_loss_mode,
    make_eval_step,
    make_optimizer,
    make_stacked_train_step,
    make_train_step,
    stack_shardings,
)

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
    if legal_loss_mode(tc) == "device" and (config.data.packing != "pad" or not has_boards):
        raise UserError("config.train.legal_mask=device reads the side to move from the position in a padded row "
                        "and the pieces from the board planes: it needs data.packing=pad and data.boards "
                        "(or use legal_mask=host)")
    if legal_loss_mode(tc) == "host" and not config.data.legal:
        print("note: train.legal_loss needs legal masks: the loader will produce them (data.legal)", file=sys.stderr)
    return shape


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
              boards=bool(dc.boards or mc.board_input), legal=bool(dc.legal or legal_loss_mode(tc) == "host"),
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


def evaluate(eval_step, params, rest, val_loader, num_batches: int, mesh, rules) -> dict[str, float]:
    """Validation loss and accuracy (the arg-max's share of the targets, over the same softmax as
    the loss) over the first `num_batches` batches (the same ones every time)."""
    loss = correct = count = 0.0
    for i, batch in enumerate(iter(val_loader)):
        if i >= num_batches:
            break
        s, c, n = eval_step(params, rest, shard_batch(batch, mesh, rules))
        loss, correct, count = loss + float(s), correct + float(c), count + float(n)
    return {"val_loss": loss / max(count, 1e-8), "val_accuracy": correct / max(count, 1e-8)}


def train(config, workdir, *, allow_config_change: bool = False) -> dict:
    """Train (or resume) in `workdir` (a local path or a gs:// URL); returns the final metrics
    (loss, val_loss, step...). Process 0 holds the workdir's lock for the run (`workdir_lock`);
    resuming under other settings needs `allow_config_change` (`guards.check_resume`)."""
    return train_together([config], [workdir], allow_config_change=allow_config_change)[0]


REPLICATE_KEYS = ("train.seed", "data.path", "data.seed")  # what replicates trained together may differ in


def shape_key(config) -> str:
    """What replicates trained together must share: the config without `REPLICATE_KEYS`."""
    import json

    flat = flatten(config.to_dict())
    return json.dumps({k: v for k, v in sorted(flat.items()) if k not in REPLICATE_KEYS}, default=str)


def check_replicates(configs, workdirs) -> None:
    """UserError unless the configs differ only in `REPLICATE_KEYS` (one shape, one schedule) and
    each has a workdir of its own."""
    if not configs or len(configs) != len(workdirs):
        raise UserError(f"{len(configs)} configs for {len(workdirs)} workdirs: give one workdir per replicate")
    if len({str(as_path(w)) for w in workdirs}) < len(workdirs):
        raise UserError("two replicates share a workdir: give each its own")
    first = flatten(configs[0].to_dict())
    for config in configs[1:]:
        other = flatten(config.to_dict())
        differ = sorted(k for k in first.keys() | other.keys()
                        if first.get(k) != other.get(k) and k not in REPLICATE_KEYS)
        if differ:
            raise UserError(f"replicates train together only when their configs differ in {', '.join(REPLICATE_KEYS)}"
                            f" alone; these differ too: {', '.join(differ[:6])}")


def train_together(configs, workdirs, *, allow_config_change: bool = False) -> list[dict]:
    """Train replicates of one shape (configs differing only in seeds and data: `check_replicates`)
    in one jitted step over a stacked leading axis (`jax.vmap`); one replicate is a plain run.
    Each workdir gets what its solo run writes (config.json, its checkpoints, metrics) and resumes
    or loads alone; a stacked resume restarts every replicate from their newest common step.
    Returns each replicate's final metrics."""
    from transcendence_jax import workdir_lock

    check_replicates(configs, workdirs)
    with ExitStack() as locks:
        if jax.process_index() == 0:
            for workdir in workdirs:
                locks.enter_context(workdir_lock.hold(as_path(workdir), "train", "--workdir"))
        return _train(configs, [as_path(w) for w in workdirs], allow_config_change)


class Replicate:
    """One run's own parts: its config, workdir, data iterators, checkpoints, divergence guard and metrics."""

    def __init__(self, config, workdir, index: int | None):
        self.config, self.workdir = config, workdir  # local paths made absolute; gs://... left as a URL
        self.train_loader, self.val_loader = _loaders(config)
        self.data_iter = iter(self.train_loader)
        self.manager = ckpt.make_manager(workdir, keep=config.train.keep_checkpoints)
        self.guard = guards.FiniteGuard(workdir / "checkpoints", index)
        self.writer = None

    def start(self, mesh, tx, allow_config_change: bool, max_step: int | None = None):
        """(graphdef, state, rest, state_shardings, rest_shardings): restored from the newest readable
        checkpoint (at or below `max_step`), else fresh. Checkpoints past `max_step` are deleted."""
        for step in [s for s in self.manager.all_steps() if max_step is not None and s > max_step]:
            self.manager.delete(step)
        resuming = bool(self.manager.all_steps())
        if resuming:
            guards.check_resume(self.workdir / "config.json", self.config, allow_config_change)
        graphdef, state, rest, state_shardings, rest_shardings = init_train_state(
            self.config, mesh, tx, params=not resuming)
        if resuming:
            start = ckpt.restore_latest(self.manager, state, self.data_iter, self.workdir)
            self.manager.close()
            # a new manager forgets the quarantined steps
            self.manager = ckpt.make_manager(self.workdir, keep=self.config.train.keep_checkpoints)
            if start is None:  # every step was unreadable (and quarantined): start afresh
                graphdef, state, rest, state_shardings, rest_shardings = init_train_state(self.config, mesh, tx)
                self.data_iter = iter(self.train_loader)
            else:
                state = start[1]
        return graphdef, state, rest, state_shardings, rest_shardings


def _train(configs, workdirs, allow_config_change: bool) -> list[dict]:
    from transcendence_jax.model import flops_per_token
    from transcendence_jax.training import sharding

    config, R = configs[0], len(configs)
    stacked = R > 1
    tc = config.train
    mesh_shape = check_config(config, jax.device_count(), jax.process_count())
    mesh = sharding.make_mesh(mesh_shape)
    is_main = jax.process_index() == 0
    tx, schedule = make_optimizer(tc)
    runs = [Replicate(c, w, i if stacked else None) for i, (c, w) in enumerate(zip(configs, workdirs))]
    # Resuming: restore straight into the sharded abstract state, never building a random one first.
    starts = [run.start(mesh, tx, allow_config_change) for run in runs]
    start_step = min(int(s[1]["step"]) for s in starts)
    for i, run in enumerate(runs):  # a stacked run killed between two replicates' saves: back to the common step
        if int(starts[i][1]["step"]) > start_step:
            print(f"note: {run.workdir} restarts from step {start_step}, its replicates' newest common checkpoint",
                  file=sys.stderr)
            starts[i] = run.start(mesh, tx, allow_config_change, max_step=start_step)
    graphdef, _, _, state_shardings, rest_shardings = starts[0]
    if stacked:
        state = jax.device_put(_stack([s[1] for s in starts]), stack_shardings(state_shardings))
        rest = jax.device_put(_stack([s[2] for s in starts]), stack_shardings(rest_shardings))
    else:
        state, rest = starts[0][1], starts[0][2]
    for run in runs:
        run.guard.last_saved = start_step if start_step else None
        if is_main:
            run.workdir.mkdir(parents=True, exist_ok=True)
            (run.workdir / "config.json").write_text(run.config.to_json_best_effort(indent=2))
    if start_step >= tc.steps:
        print(f"{', '.join(map(str, workdirs))} already hold step {start_step} >= train.steps {tc.steps}: "
              "nothing to do", file=sys.stderr)

    batches = [next(run.data_iter) for run in runs] if start_step < tc.steps else None
    batch_keys = {k: v.ndim for k, v in (batches[0] if batches else {}).items()}
    if stacked:
        stacked_step = make_stacked_train_step(config, graphdef, tx, schedule, mesh, state_shardings,
                                               rest_shardings, batch_keys)
        keys = jnp.stack([dropout_key(c.train) for c in configs])
        step_fn = lambda state, batches: stacked_step(
            state, rest, sharding.shard_batch(_stack(batches), mesh, config.mesh.rules, stacked=True), keys)
    else:
        solo_step = make_train_step(config, graphdef, tx, schedule, mesh, state_shardings, rest_shardings, batch_keys)
        step_fn = lambda state, batches: solo_step(state, rest, sharding.shard_batch(batches[0], mesh,
                                                                                      config.mesh.rules))
    eval_fn = make_eval_step(config, graphdef, mesh, state_shardings["params"], rest_shardings, batch_keys)
    tokens_per_step = tc.batch_size * config.data.seq_len
    peak = peak_flops(jax.devices()[0].device_kind)
    flops_step = flops_per_token(config.model, config.data.seq_len) * tokens_per_step * R
    if is_main:
        num_params = sum(x.size for x in jax.tree.leaves(state["params"])) // R
        print(run_header(config, mesh, num_params), file=sys.stderr, flush=True)
        if stacked:
            print(f"replicates: {R} trained together (seeds {', '.join(str(c.train.seed) for c in configs)}), "
                  f"progress shown for {runs[0].workdir}", file=sys.stderr, flush=True)
    for i, run in enumerate(runs):
        run.writer = MetricsWriter(run.workdir, total_steps=tc.steps, initial_step=start_step, enabled=is_main,
                                   config=run.config, progress_desc="train" if i == 0 else None)
    last = [{"step": start_step} for _ in runs]
    t_mark, steps_timed, t_paused = None, 0, 0.0
    try:
        with jax.set_mesh(mesh):
            for step in range(start_step + 1, tc.steps + 1):
                if batches is None:
                    batches = [next(run.data_iter) for run in runs]
                state, m = step_fn(state, batches)
                batches = None
                for run in runs:
                    run.guard.add(step, m)
                saving = step % tc.checkpoint_every == 0 or step == tc.steps
                logging = step % tc.log_every == 0 or step == tc.steps
                if logging or saving:  # the moments that wait for the device anyway
                    for run in runs:
                        run.guard.check()
                if t_mark is None:  # the first step compiles: time from its end
                    jax.block_until_ready(m["loss"])
                    t_mark, steps_timed, t_paused = time.perf_counter(), 0, 0.0
                else:
                    steps_timed += 1
                rows = [{} for _ in runs]
                if logging:
                    host = jax.device_get({k: v for k, v in m.items() if k != "tokens"})
                    speed = {}
                    if steps_timed:
                        dt = time.perf_counter() - t_mark - t_paused
                        speed["tokens_per_s"] = steps_timed * tokens_per_step / max(dt, 1e-9)
                        speed["mfu"] = (flops_step * steps_timed / dt / (peak * jax.device_count())) if peak else None
                        t_mark, steps_timed, t_paused = time.perf_counter(), 0, 0.0
                    rows = [{k: float(v[i] if stacked else v) for k, v in host.items()} | speed for i in range(R)]
                t0 = time.perf_counter()
                for i, run in enumerate(runs):
                    evaluating = run.val_loader is not None and (step % tc.eval_every == 0 or step == tc.steps)
                    if not (evaluating or saving):
                        continue
                    state_i = _replicate(state, i) if stacked else state
                    rest_i = _replicate(rest, i) if stacked else rest
                    if evaluating:
                        rows[i].update(evaluate(eval_fn, state_i["params"], rest_i, run.val_loader,
                                                tc.eval_batches, mesh, config.mesh.rules))
                    if saving:
                        sums = ckpt.digest(state_i)
                        run.guard.check_state(step, sums)
                        ckpt.save(run.manager, step, state_i, run.data_iter, sums)
                        run.guard.last_saved = step
                t_paused += time.perf_counter() - t0
                for i, run in enumerate(runs):
                    if rows[i]:
                        run.writer.write(step, rows[i])
                        last[i].update(rows[i], step=step)
                runs[0].writer.progress(step, rows[0].get("loss"), rows[0].get("tokens_per_s"))
        for run in runs:
            run.manager.wait_until_finished()
    finally:
        for run in runs:
            run.manager.close()
            if run.writer is not None:
                run.writer.close()
    return last


def _stack(trees: list):
    """Trees of one structure -> one tree, each leaf with a leading replicate axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _replicate(tree, i: int):
    """Replicate i of a stacked tree (what its solo run would hold)."""
    return jax.tree.map(lambda leaf: leaf[i], tree)


# ---------------------------------------------------------------------------- CLI


def add_arguments(parser) -> None:
    from transcendence_jax.config import add_config_arguments

    add_config_arguments(parser, help="a config file or a packaged name (tiny, paper_50m...)")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and plots go here; reruns resume")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train this many replicates together in one stacked step (seeds train.seed, +1, ...), "
                             "each in WORKDIR/seed<k> and each resumable and loadable alone")
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
    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: at least one")
    if args.seeds == 1:
        configs, workdirs = [config], [args.workdir]
    else:
        configs = [load_config(args.config, [*args.overrides, f"train.seed={config.train.seed + i}"])
                   for i in range(args.seeds)]
        workdirs = [f"{args.workdir.rstrip('/')}/seed{c.train.seed}" for c in configs]
    finals = train_together(configs, workdirs, allow_config_change=args.allow_config_change)
    if jax.process_index() == 0:
        for final, workdir in zip(finals, workdirs):
            parts = [f"step {final['step']}"]
            parts += [f"{k} {final[k]:.4f}" for k in ("loss", "val_loss") if final.get(k) is not None]
            if final.get("tokens_per_s"):
                parts.append(f"{final['tokens_per_s']:,.0f} tokens/s")
            print(f"trained: {', '.join(parts)}; workdir {workdir} (metrics.jsonl, loss.png, checkpoints/)")
    return 0
