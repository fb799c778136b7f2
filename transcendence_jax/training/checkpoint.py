"""Checkpoints: orbax CheckpointManager over `workdir/checkpoints`, and loading a model for inference.

A checkpoint step holds two items: "state" (step, params, optimizer state: sharded arrays) and
"data" (each process's grain iterator state, one JSON file per process). Orbax writes a step
into a temporary directory and renames it when complete, so a kill -9 mid-save leaves no
half-written step that counts; a step that is unreadable anyway (disk corruption, truncated
files) is moved to `workdir/corrupt_checkpoints/` with a warning and the previous one is used.
Workdirs may be local paths or URLs (gs://...): every access goes through `etils.epath.Path`.
"""

from __future__ import annotations

import json
import sys

import jax
import orbax.checkpoint as ocp
from flax import nnx

from transcendence_jax.errors import UserError
from transcendence_jax.training.metrics import as_path
from transcendence_jax.training.sharding import with_shardings


def _dir(workdir):
    return as_path(workdir) / "checkpoints"


def make_manager(workdir, *, keep: int = 3, async_save: bool = True) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
    return ocp.CheckpointManager(_dir(workdir), item_names=("state", "data"), options=options)


class _FrozenIterator:
    """The iterator's state captured now: an async save must not see batches drawn after this step."""

    def __init__(self, state):
        self._state = state

    def get_state(self):
        return self._state


def save(manager: ocp.CheckpointManager, step: int, state, data_iter) -> None:
    """Start an async save of `state` and the data iterator position after `step` steps."""
    import grain

    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(_FrozenIterator(data_iter.get_state()))), force=True)


def _abstract(tree):
    """ShapeDtypeStructs carrying each array's (target) sharding: restore lays shards out directly."""
    return with_shardings(tree, jax.tree.map(lambda x: x.sharding, tree))


def restore_latest(manager: ocp.CheckpointManager, target_state, data_iter, workdir):
    """(step, state) from the newest readable checkpoint, or None when there is none.

    `target_state` (arrays, or jax.ShapeDtypeStructs with shardings: nothing need be allocated)
    gives shapes and target shardings (any mesh: restoring onto a different mesh reshards);
    `data_iter` is set to the saved position. Unreadable steps are quarantined.
    """
    import grain

    abstract = _abstract(target_state)
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            args = {"state": ocp.args.StandardRestore(abstract)}
            if data_iter is not None:
                args["data"] = grain.checkpoint.CheckpointRestore(data_iter)
            restored = manager.restore(step, args=ocp.args.Composite(**args))
            return step, restored["state"]
        except Exception as e:  # any failure to read means: use an older step
            if "DataSource in checkpoint does not match" in str(e):
                # A readable checkpoint of other data files: not corruption. Keep it; say what to do.
                raise UserError(f"the checkpoints in {_dir(workdir)} were saved while reading other data files "
                                "(the dataset moved, or config.data changed); rerun with the config the workdir "
                                "was trained with (its config.json), or use a new --workdir") from None
            print(f"warning: checkpoint step {step} in {_dir(workdir)} is unreadable "
                  f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                  f"falling back to the previous checkpoint", file=sys.stderr)
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

    Parameters are restored onto a mesh over this machine's devices (default: all on the data
    axis, so parameters are replicated and batches split); `step` None means the newest readable.
    """
    from ml_collections import ConfigDict

    from transcendence_jax.model import Transformer
    from transcendence_jax.training import sharding

    config_path = as_path(workdir) / "config.json"
    if not config_path.exists() or not _dir(workdir).is_dir():
        raise UserError(f"{workdir} is not a training workdir (no config.json / checkpoints/): "
                        "train one with `transcendence train --config ... --workdir DIR`")
    config = ConfigDict(json.loads(config_path.read_text()))
    manager = make_manager(workdir, async_save=False)
    steps = sorted(manager.all_steps(), reverse=True)
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
        try:
            # Only the params of the "state" item are read; the optimizer state stays on disk.
            item = {"params": abstract}
            restored = manager.restore(s, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
                item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item), partial_restore=True)))
            params = restored["state"]["params"]
            # Non-parameter variables (dropout RNG streams) come from a fresh model.
            if jax.tree.leaves(rest):
                rest = nnx.state(Transformer(config.model, rngs=nnx.Rngs(0)), nnx.Not(nnx.Param))
            model = nnx.merge(graphdef, params, rest)
            manager.close()
            return model, config, s
        except Exception as e:
            error = e
            print(f"warning: checkpoint step {s} in {_dir(workdir)} is unreadable ({type(e).__name__}); "
                  "trying the previous one", file=sys.stderr)
    manager.close()
    raise UserError(f"no readable checkpoint in {_dir(workdir)} ({type(error).__name__}: {error})")
