"""Checkpoints: orbax CheckpointManager over `workdir/checkpoints`, and loading a model for inference.

A checkpoint step holds two items: "state" (step, params, optimizer state: sharded arrays) and
"data" (each process's grain iterator state, one JSON file per process). Orbax writes a step
into a temporary directory and renames it when complete, so a kill -9 mid-save leaves no
half-written step that counts; a step that is unreadable anyway (disk corruption, truncated
files) is moved to `workdir/corrupt_checkpoints/` with a warning and the previous one is used.

A third item, "checksums" (JSON), holds one exact checksum per array of the state, computed on
the device when the step is saved: a step whose files decode but hold other values (bytes
zeroed on disk) fails the comparison on restore and is treated as unreadable. The checksum is
a wrapping uint32 sum of each value's bits times a weight of its index: integer sums do not
depend on the order of reduction, so a restore onto another mesh computes the same numbers.
Steps saved before checksums existed are only checked for non-finite values. Saving refuses a
state holding NaN or inf, so a diverged run never replaces (or rotates away) a good step.
Workdirs may be local paths or URLs (gs://...): every access goes through `etils.epath.Path`.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import os
import sys

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from transcendence_jax.errors import UserError
from transcendence_jax.training.metrics import as_path
from transcendence_jax.training.sharding import with_shardings


def _dir(workdir):
    return as_path(workdir) / "checkpoints"


def make_manager(workdir, *, keep: int = 3, async_save: bool = True) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
    return ocp.CheckpointManager(_dir(workdir), item_names=("state", "data", "checksums"), options=options)


class _FrozenIterator:
    """The iterator's state captured now: an async save must not see batches drawn after this step."""

    def __init__(self, state):
        self._state = state

    def get_state(self):
        return self._state


def _as_uint32(x):
    """The bits of each value as uint32 (a trailing axis of 2 for 64-bit types)."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
    return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)


def _checksum(x):
    bits = _as_uint32(x)
    index = jnp.zeros(bits.shape, jnp.uint32)  # each value's row-major position
    for axis in range(bits.ndim):
        index = index * jnp.uint32(bits.shape[axis]) + jax.lax.broadcasted_iota(jnp.uint32, bits.shape, axis)
    return jnp.sum(bits * (index * jnp.uint32(2654435761) + jnp.uint32(1)), dtype=jnp.uint32)


def _non_finite_count(x):
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros((), jnp.int32)
    return jnp.sum(~jnp.isfinite(x), dtype=jnp.int32)


@jax.jit
def _digest_arrays(tree):
    """(non-finite counts, checksums): two trees of scalars shaped like `tree`."""
    return jax.tree.map(_non_finite_count, tree), jax.tree.map(_checksum, tree)


def digest(tree) -> dict[str, list[int]]:
    """{leaf path: [non-finite values, checksum]} of a tree of (sharded) arrays: one device pass,
    a few bytes to the host."""
    bad, sums = jax.device_get(_digest_arrays(tree))
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]
    return {p: [int(b), int(c)] for p, b, c in zip(paths, jax.tree.leaves(bad), jax.tree.leaves(sums))}


def non_finite(sums: dict[str, list[int]]) -> dict[str, int]:
    """{leaf path: count} of the leaves of a `digest` holding NaN or inf."""
    return {path: bad for path, (bad, _) in sums.items() if bad}


def describe_non_finite(bad: dict[str, int]) -> str:
    """'12 NaN/inf values in 3 arrays (first: ['params']...)' for a message."""
    arrays = f"{len(bad)} arrays" if len(bad) > 1 else "1 array"
    return f"{sum(bad.values())} NaN/inf values in {arrays} (first: {next(iter(bad))})"


def save(manager: ocp.CheckpointManager, step: int, state, data_iter, sums: dict[str, list[int]]) -> None:
    """Start an async save of `state` (whose `digest` is `sums`: it must be finite) and the data
    iterator position after `step` steps."""
    import grain

    if non_finite(sums):
        raise UserError(f"refusing to save checkpoint step {step}: {describe_non_finite(non_finite(sums))}")
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(_FrozenIterator(data_iter.get_state())),
        checksums=ocp.args.JsonSave({leaf: checksum for leaf, (_, checksum) in sums.items()})), force=True)


def _saved_checksums(manager: ocp.CheckpointManager, workdir, step: int) -> dict[str, int] | None:
    """The checksums written with `step` (None for a step saved before they existed)."""
    if not (_dir(workdir) / str(step) / "checksums").exists():
        return None
    return manager.restore(step, args=ocp.args.Composite(checksums=ocp.args.JsonRestore()))["checksums"]


def verify(sums: dict[str, list[int]], saved: dict[str, int] | None) -> str | None:
    """Why a restored tree, of `digest` `sums`, is not what was saved (non-finite values, or
    checksums that differ from those `saved` with the step), or None."""
    bad = non_finite(sums)
    if bad:
        return f"unusable: it holds {describe_non_finite(bad)}"
    saved = saved or {}
    differ = [path for path, (_, checksum) in sums.items() if saved.get(path, checksum) != checksum]
    if differ:
        return (f"corrupt: {len(differ)} arrays differ from the checksums written when it was saved "
                f"(first: {differ[0]}), its files were altered on disk")
    return None


def _is_failed_read_leftover(error, obj=None) -> bool:
    """An error surfacing after an orbax read failed: the read's other coroutines, collected later
    (Python reports them as unraisable, asyncio logs their tasks' "exception was never retrieved"),
    and TensorStore threads finishing into its closed event loop."""
    if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
        return True
    code = getattr(obj, "cr_code", None)  # an orbax coroutine that raised
    frames = [code.co_filename] if code else []
    tb = getattr(error, "__traceback__", None)
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return any(f"{os.sep}orbax{os.sep}" in f for f in frames)


def _drop_failed_read_leftovers(hook):
    def filtered(unraisable):
        if not _is_failed_read_leftover(unraisable.exc_value, unraisable.object):
            hook(unraisable)

    filtered.drops_failed_reads = True
    return filtered


class _FailedReadLogFilter(logging.Filter):
    """Drops asyncio's log records of a failed read's tasks (one traceback per task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_failed_read_leftover(record.exc_info[1]))


def _quiet_failed_read() -> None:
    """A failed orbax read leaves errors that Python prints or asyncio logs as they surface, now
    or later from other threads (dozens of tracebacks per bad step): from the first failure on,
    those (and only those) are dropped for the rest of the process, so each bad step is one
    warning line. What is still pending is collected now and again at exit, while the filters are
    in place."""
    if not getattr(sys.unraisablehook, "drops_failed_reads", False):
        sys.unraisablehook = _drop_failed_read_leftovers(sys.unraisablehook)
        logging.getLogger("asyncio").addFilter(_FailedReadLogFilter())
        atexit.register(gc.collect)
    gc.collect()


def _first_line(e: Exception) -> str:
    """`Type: first line` of an error, cut before orbax's TensorStore spec dump."""
    text = str(e).split(" See full TensorStore details")[0].splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _abstract(tree):
    """ShapeDtypeStructs carrying each array's (target) sharding: restore lays shards out directly."""
    return with_shardings(tree, jax.tree.map(lambda x: x.sharding, tree))


def restore_latest(manager: ocp.CheckpointManager, target_state, data_iter, workdir):
    """(step, state) from the newest readable checkpoint, or None when there is none.

    `target_state` (arrays, or jax.ShapeDtypeStructs with shardings: nothing need be allocated)
    gives shapes and target shardings (any mesh: restoring onto a different mesh reshards);
    `data_iter` is set to the saved position. Unreadable steps, and steps whose values are not
    finite or not what was saved, are quarantined with one warning line each.
    """
    import grain

    abstract = _abstract(target_state)
    steps = sorted(manager.all_steps(), reverse=True)
    for i, step in enumerate(steps):
        problem = None
        try:
            args = {"state": ocp.args.StandardRestore(abstract)}
            if data_iter is not None:
                args["data"] = grain.checkpoint.CheckpointRestore(data_iter)
            state = manager.restore(step, args=ocp.args.Composite(**args))["state"]
            problem = verify(digest(state), _saved_checksums(manager, workdir, step))
        except Exception as e:  # any failure to read means: use an older step
            if "DataSource in checkpoint does not match" in str(e):
                # A readable checkpoint of other data files: not corruption. Keep it; say what to do.
                raise UserError(f"the checkpoints in {_dir(workdir)} were saved while reading other data files "
                                "(the dataset moved, or config.data changed); rerun with the config the workdir "
                                "was trained with (its config.json), or use a new --workdir") from None
            problem = f"unreadable ({_first_line(e)})"
        if problem is None:
            return step, state
        _quiet_failed_read()  # out of the except block: the failed read's frames can be freed now
        then = ("falling back to the previous checkpoint" if i + 1 < len(steps) else
                "falling back to a fresh start: no readable checkpoint is left, training restarts from step 0")
        print(f"warning: checkpoint step {step} in {_dir(workdir)} is {problem}; moved to corrupt_checkpoints/; "
              f"{then}", file=sys.stderr)
        _quarantine(workdir, step)
    return None


def _quarantine(workdir, step: int) -> None:
    """Move a bad step out of the manager's sight (process 0 moves; everyone waits for it)."""
    if jax.process_index() == 0:
        src = _dir(workdir) / str(step)
        dst = as_path(workdir) / "corrupt_checkpoints" / str(step)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            dst.rmtree()
        if src.exists():
            src.rename(dst)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"quarantine checkpoint {step}")


def load_model(workdir, step: int | None = None, *, mesh_shape=(-1, 1, 1)):
    """(model, config, step) from a training workdir, for inference (sampler, uci, eval).

    `workdir` may also be an experiment or demo folder (its train/ workdir) or `pretrained:NAME`,
    a model shipped in the package (locate.resolve_workdir). Parameters are restored onto a mesh
    over this machine's devices (default: all on the data axis, so parameters are replicated and
    batches split; a pretrained model stays on the default device); `step` None means the newest
    readable. The model carries its step as `model.checkpoint_step` (evaluate_model records it).
    """
    from ml_collections import ConfigDict

    from transcendence_jax.model import Transformer
    from transcendence_jax.training import sharding
    from transcendence_jax.training.locate import PRETRAINED, resolve_workdir

    workdir = resolve_workdir(workdir)
    if workdir.startswith(PRETRAINED):
        from transcendence_jax import pretrained

        name = workdir.removeprefix(PRETRAINED)
        if step is not None and step != pretrained.info(name)["step"]:
            raise UserError(f"{workdir} ships only step {pretrained.info(name)['step']}, not step {step}")
        model, config, step = pretrained.load(name)
        model.checkpoint_step = step
        return model, config, step
    config = ConfigDict(json.loads((as_path(workdir) / "config.json").read_text()))
    manager = make_manager(workdir, async_save=False)
    steps = saved_steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        raise UserError(f"{workdir} has no checkpoint yet: train until config.train.checkpoint_every steps have run")
    if step is not None:
        if step not in steps:
            raise UserError(f"{workdir} has no checkpoint at step {step}; it has steps {sorted(steps)}")
        steps = [step]
    mesh = sharding.make_mesh(mesh_shape)
    graphdef, abstract, rest, _ = sharding.abstract_params(config.model, mesh, config.mesh.rules)
    error = None
    for s in steps:
        params = None
        try:
            # Only the params of the "state" item are read; the optimizer state stays on disk.
            item = {"params": abstract}
            restored = manager.restore(s, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
                item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                partial_restore=True)))
            saved = _saved_checksums(manager, workdir, s)  # before params: both read, or the step is skipped
            params = restored["state"]["params"]
        except Exception as e:
            error = _first_line(e)
            print(f"warning: checkpoint step {s} in {_dir(workdir)} is unreadable ({error}); "
                  "trying the previous one", file=sys.stderr)
        if params is None:
            _quiet_failed_read()  # out of the except block: the failed read's frames can be freed now
            continue
        sums = digest({"params": params})  # the paths the checksums were saved under
        if non_finite(sums):
            manager.close()
            raise UserError(f"checkpoint step {s} in {_dir(workdir)} holds {describe_non_finite(non_finite(sums))}: "
                            "its training diverged; pick an earlier step (this workdir has steps "
                            f"{sorted(saved_steps)}) or retrain with a lower config.train.lr")
        error = verify(sums, saved)
        if error:
            print(f"warning: checkpoint step {s} in {_dir(workdir)} is {error}; trying the previous one",
                  file=sys.stderr)
            continue
        # Non-parameter variables (dropout RNG streams) come from a fresh model.
        if jax.tree.leaves(rest):
            rest = nnx.state(Transformer(config.model, rngs=nnx.Rngs(0)), nnx.Not(nnx.Param))
        model = nnx.merge(graphdef, params, rest)
        model.checkpoint_step = s
        manager.close()
        return model, config, s
    manager.close()
    raise UserError(f"no readable checkpoint in {_dir(workdir)} (the last tried: {error})")
