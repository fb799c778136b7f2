"""Device mesh and logical -> mesh axis rules (MaxText style).

The model annotates every parameter with logical axis names ("vocab", "embed", "mlp", "heads",
"head_dim"); `config.mesh.rules` maps each to a mesh axis ("data", "fsdp", "tensor"), a tuple
of them, or None (replicated). The mesh shape (data, fsdp, tensor) comes from
`config.mesh.shape`, where one -1 takes the remaining devices. Meshes use Auto axis types
(jax.make_mesh defaults to Explicit), so jit's in/out shardings decide the layouts.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from transcendence_jax.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # what the "batch" rule says by default


def resolve_mesh_shape(shape: Sequence[int], num_devices: int | None = None) -> tuple[int, int, int]:
    """(data, fsdp, tensor) with a -1 filled in; UserError when it does not fit the devices."""
    n = jax.device_count() if num_devices is None else num_devices
    shape = [int(s) for s in shape]
    if len(shape) != 3 or shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise UserError(f"config.mesh.shape must be 3 positive ints (data, fsdp, tensor) with at most "
                        f"one -1, got {tuple(shape)}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if n % known:
            raise UserError(f"config.mesh.shape {tuple(shape)} does not divide the {n} devices: "
                            f"make the product of the fixed axes a divisor of {n}")
        shape[shape.index(-1)] = n // known
    if math.prod(shape) != n:
        raise UserError(f"config.mesh.shape {tuple(shape)} needs {math.prod(shape)} devices but {n} are "
                        f"present: set --config.mesh.shape so the product is {n} (or use -1 on one axis)")
    return tuple(shape)


def make_mesh(shape: Sequence[int] = (-1, 1, 1), devices=None) -> Mesh:
    """A (data, fsdp, tensor) mesh with Auto axis types over `devices` (default: all)."""
    devices = jax.devices() if devices is None else list(devices)
    shape = resolve_mesh_shape(shape, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def mesh_from_config(config) -> Mesh:
    return make_mesh(tuple(config.mesh.shape))


def check_batch(batch_size: int, mesh: Mesh, what: str = "config.train.batch_size") -> None:
    """UserError unless the batch splits evenly over the data-parallel axes (data * fsdp)."""
    dp = mesh.shape["data"] * mesh.shape["fsdp"]
    if batch_size % dp:
        raise UserError(f"{what} {batch_size} does not divide over the {dp} data-parallel devices "
                        f"(mesh data x fsdp = {mesh.shape['data']} x {mesh.shape['fsdp']}): "
                        f"use a multiple of {dp}")


def _rules_dict(rules) -> dict[str, tuple[str, ...]]:
    """Rules as pairs or a mapping (config.json turns tuples into lists) -> name: mesh axes."""
    items = rules.items() if isinstance(rules, Mapping) else rules
    out = {}
    for logical, axes in items:
        if axes is None:
            out[logical] = ()
        elif isinstance(axes, str):
            out[logical] = (axes,)
        else:
            out[logical] = tuple(axes)
        for a in out[logical]:
            if a not in MESH_AXES:
                raise UserError(f"config.mesh.rules maps {logical!r} to unknown mesh axis {a!r}: "
                                f"use {', '.join(MESH_AXES)} or None")
    return out


def logical_to_spec(axes: Sequence[str | None], rules, mesh: Mesh | None = None,
                    shape: Sequence[int] | None = None) -> P:
    """PartitionSpec for an array with these logical axes. A mesh axis is used at most once, and
    (given mesh and shape) mesh axes that do not divide their dimension are left out."""
    rules = rules if isinstance(rules, dict) and all(isinstance(v, tuple) for v in rules.values()) \
        else _rules_dict(rules)
    used, spec = set(), []
    for i, name in enumerate(axes):
        mesh_axes = [a for a in rules.get(name, ()) if a not in used] if name is not None else []
        if mesh is not None:
            mesh_axes = [a for a in mesh_axes if mesh.shape[a] > 1]
            if shape is not None:
                while mesh_axes and shape[i] % math.prod(mesh.shape[a] for a in mesh_axes):
                    mesh_axes.pop()  # drop the innermost axis until the dimension divides
        used.update(mesh_axes)
        spec.append(None if not mesh_axes else mesh_axes[0] if len(mesh_axes) == 1 else tuple(mesh_axes))
    while spec and spec[-1] is None:
        spec.pop()
    return P(*spec)


def _is_var(x) -> bool:
    return isinstance(x, nnx.Variable)


def state_shardings(tree: Any, mesh: Mesh, rules) -> Any:
    """NamedShardings for a pytree of nnx Variables (abstract or concrete) or arrays: a Variable
    with logical axes (`out_sharding` metadata) is sharded by the rules, anything else replicated.
    Variables keep their structure (each wraps its NamedSharding), so the result zips with the
    tree in jax.tree.map and serves as jit in/out_shardings."""
    rules = _rules_dict(rules)

    def one(x):
        if _is_var(x):
            axes = x.get_metadata().get("out_sharding")
            spec = logical_to_spec(axes, rules, mesh, x.shape) if axes else P()
            return x.replace(NamedSharding(mesh, spec))
        return NamedSharding(mesh, P())

    return jax.tree.map(one, tree, is_leaf=_is_var)


def with_shardings(tree: Any, shardings: Any) -> Any:
    """jax.ShapeDtypeStructs of `tree`'s leaves carrying `shardings` (a tree of the same shape):
    what jit lowers against and what a checkpoint restores into, with nothing allocated."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def abstract_params(model_config, mesh: Mesh, rules):
    """The model's parameters laid out on `mesh`, with nothing allocated: (graphdef, params as
    sharded ShapeDtypeStructs, the other variables (abstract), the parameters' shardings). The
    one place training and inference (`checkpoint.load_model`) build it."""
    from transcendence_jax.model import Transformer

    abstract_model = nnx.eval_shape(lambda: Transformer(model_config, rngs=nnx.Rngs(0)))
    graphdef, params, rest = nnx.split(abstract_model, nnx.Param, ...)
    shardings = state_shardings(params, mesh, rules)
    return graphdef, with_shardings(params, shardings), rest, shardings


def batch_sharding(mesh: Mesh, ndim: int, rules=None) -> NamedSharding:
    """Rows split over the "batch" rule's mesh axes (default data and fsdp), the rest replicated."""
    axes = _rules_dict(rules).get("batch", BATCH_AXES) if rules is not None else BATCH_AXES
    axes = tuple(a for a in axes if mesh.shape[a] > 1)
    lead = None if not axes else axes[0] if len(axes) == 1 else axes
    return NamedSharding(mesh, P(lead, *([None] * (ndim - 1))))


def batch_shardings(batch: Mapping[str, Any], mesh: Mesh, rules=None) -> dict:
    """NamedShardings for a batch dict (leading axis = rows)."""
    return {k: batch_sharding(mesh, np.ndim(v), rules) for k, v in batch.items()}


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh, rules=None, *, stacked: bool = False) -> dict:
    """This process's rows -> global arrays split over the batch axes (multi-host safe).
    `stacked`: each array has a leading replicate axis before its rows (kept whole)."""
    n = jax.process_count()
    out = {}
    for k, v in batch.items():
        lead, rows = ((v.shape[0],), v.shape[1:]) if stacked else ((), v.shape)
        check_batch(rows[0] * n, mesh, f"batch[{k!r}] rows")
        sharding = batch_sharding(mesh, len(rows), rules)
        if stacked:
            sharding = NamedSharding(mesh, P(None, *sharding.spec))
        out[k] = jax.make_array_from_process_local_data(sharding, v, (*lead, rows[0] * n, *rows[1:]))
    return out
