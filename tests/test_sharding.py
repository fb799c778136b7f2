"""Mesh and logical-axis rules: params land sharded as the rules say on 8 CPU devices.

The 8-device checks run in a subprocess (XLA_FLAGS must be set before jax is imported, and
other test files may already have imported it in this process).
"""

import json
import os
import subprocess
import sys

SMALL = ["model.num_layers=2", "model.num_heads=4", "model.embed_dim=32", "model.mlp_dim=64",
         "model.max_len=16", "model.board_input=True"]


def _script(out: str) -> None:
    import jax
    import numpy as np
    from flax import nnx

    from transcendence_jax.config import load_config
    from transcendence_jax.errors import UserError
    from transcendence_jax.model import Transformer
    from transcendence_jax.training import sharding

    assert jax.device_count() == 8
    report = {"filled": list(sharding.make_mesh((-1, 2, 2)).devices.shape)}
    rng = np.random.default_rng(0)
    tok = rng.integers(5, 1973, (8, 16)).astype(np.int32)
    boards = rng.integers(0, 13, (8, 16, 64)).astype(np.uint8)
    config = load_config("tiny", SMALL)
    reference = np.asarray(Transformer(config.model, rngs=nnx.Rngs(0))(tok, boards))
    for shape in [(2, 2, 2), (1, 8, 1), (1, 2, 4)]:
        config = load_config("tiny", [*SMALL, f"mesh.shape={shape}"])
        mesh = sharding.mesh_from_config(config)
        abstract = nnx.eval_shape(lambda: Transformer(config.model, rngs=nnx.Rngs(0)))
        graphdef, abs_params, abs_rest = nnx.split(abstract, nnx.Param, ...)
        shardings = sharding.state_shardings(abs_params, mesh, config.mesh.rules)

        def init():
            return nnx.split(Transformer(config.model, rngs=nnx.Rngs(0)), nnx.Param, ...)[1:]

        with jax.set_mesh(mesh):
            params, rest = jax.jit(init, out_shardings=(shardings, sharding.state_shardings(abs_rest, mesh, ())))()
            batch = sharding.shard_batch({"tokens": tok, "boards": boards}, mesh, config.mesh.rules)
            logits = jax.jit(lambda p, r, t, b: nnx.merge(graphdef, p, r, copy=True)(t, b))(
                params, rest, batch["tokens"], batch["boards"])
        entry = {"max_diff": float(np.abs(np.asarray(logits) - reference).max()),
                 "batch_shard": list(batch["tokens"].addressable_shards[0].data.shape), "params": {}}
        variables = jax.tree.leaves(abs_params, is_leaf=lambda x: isinstance(x, nnx.Variable))
        for (path, v), var in zip(jax.tree_util.tree_leaves_with_path(params), variables, strict=True):
            entry["params"][jax.tree_util.keystr(path)] = {
                "shape": list(v.shape), "shard": list(v.addressable_shards[0].data.shape),
                "axes": list(var.get_metadata()["out_sharding"])}
        report[str(shape)] = entry
    errors = []
    for bad in [(3, 1, 1), (2, 2, 1), (-1, 3, 1), (2, 0, 4)]:
        try:
            sharding.make_mesh(bad)
        except UserError as e:
            errors.append(str(e))
    try:
        sharding.check_batch(6, sharding.make_mesh((2, 2, 2)))
    except UserError as e:
        errors.append(str(e))
    report["errors"] = errors
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    _script(sys.argv[1])
    sys.exit(0)

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharding") / "report.json"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.abspath(__file__), str(out)], env=env, cwd=root,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


MESH_SIZES = {"(2, 2, 2)": dict(data=2, fsdp=2, tensor=2), "(1, 8, 1)": dict(data=1, fsdp=8, tensor=1),
              "(1, 2, 4)": dict(data=1, fsdp=2, tensor=4)}
RULES = {"embed": "fsdp", "mlp": "tensor", "heads": "tensor", "vocab": "tensor"}


def test_minus_one_fills_remaining_devices(report):
    assert report["filled"] == [2, 2, 2]


@pytest.mark.parametrize("mesh", list(MESH_SIZES))
def test_params_sharded_per_rules_and_forward_unchanged(report, mesh):
    entry, sizes = report[mesh], MESH_SIZES[mesh]
    split = 0
    for name, p in entry["params"].items():
        for dim, shard, axis in zip(p["shape"], p["shard"], p["axes"]):
            mesh_axis = RULES.get(axis)
            n = sizes[mesh_axis] if mesh_axis else 1
            expected = dim // n if dim % n == 0 else dim  # a dimension the axis does not divide stays whole
            assert shard == expected, (mesh, name, p)
            split += shard != dim
    assert split > 0
    assert entry["max_diff"] < 1e-4  # sharded forward == single-device forward
    assert entry["batch_shard"][0] == 8 // (sizes["data"] * sizes["fsdp"])


def test_bad_mesh_and_batch_are_user_errors(report):
    errors = report["errors"]
    assert len(errors) == 5, errors
    assert "does not divide the 8 devices" in errors[0] or "needs" in errors[0]
    assert "needs 4 devices but 8" in errors[1]
    assert "does not divide the 8 devices" in errors[2]
    assert "3 positive ints" in errors[3]
    assert "does not divide over the 4 data-parallel devices" in errors[4]


def test_logical_to_spec_pure():
    from transcendence_jax.config import DEFAULT_RULES
    from transcendence_jax.errors import UserError
    from transcendence_jax.training import sharding

    assert sharding.logical_to_spec(("embed", "mlp"), DEFAULT_RULES) == sharding.P("fsdp", "tensor")
    assert sharding.logical_to_spec(("vocab", None), DEFAULT_RULES) == sharding.P("tensor")
    # A mesh axis is used once: the second "embed" stays whole.
    assert sharding.logical_to_spec(("embed", "embed"), DEFAULT_RULES) == sharding.P("fsdp")
    # config.json round trip turns tuples into lists; rules as a dict work too.
    as_lists = [[k, list(v) if isinstance(v, tuple) else v] for k, v in DEFAULT_RULES]
    assert sharding.logical_to_spec(("heads",), as_lists) == sharding.P("tensor")
    assert sharding.logical_to_spec(("heads",), {"heads": None}) == sharding.P()
    with pytest.raises(UserError, match="unknown mesh axis 'model'"):
        sharding.logical_to_spec(("mlp",), {"mlp": "model"})
    assert sharding.resolve_mesh_shape((1, -1, 2), num_devices=8) == (1, 4, 2)
    with pytest.raises(UserError, match="does not divide the 6 devices"):
        sharding.resolve_mesh_shape((4, -1, 1), num_devices=6)


def test_load_config_names_paths_and_overrides():
    import jax
    from flax import nnx

    from transcendence_jax.config import load_config
    from transcendence_jax.errors import UserError
    from transcendence_jax.model import Transformer

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    by_path = load_config(os.path.join(root, "transcendence_jax", "configs", "paper_50m.py"))
    assert by_path.to_dict() == load_config("paper_50m").to_dict()
    # `configs/X.py`, the spelling of the docs and TPU scripts, names the packaged file from any directory.
    assert load_config("configs/paper_50m.py").to_dict() == load_config("paper_50m").to_dict()
    demo = load_config("configs/demo.py", ["--config.training.train.steps=7", "games=30"])
    assert (demo.training.train.steps, demo.games, demo.training.model.embed_dim) == (7, 30, 128)
    c = load_config("tiny", ["--config.train.steps=1e3", "train.lr=1e-3", "model.board_input=false",
                             "mesh.shape=1,8,1", "data.path=/tmp/x"])
    assert (c.train.steps, c.train.lr, c.model.board_input, c.mesh.shape, c.data.path) == \
        (1000, 1e-3, False, (1, 8, 1), "/tmp/x")
    for bad, match in [("train.nonexistent=1", "unknown config key 'train.nonexistent'"),
                       ("train.steps=ten", "expected a int"), ("model=1", "names a section"),
                       ("train.steps", "no '='")]:
        with pytest.raises(UserError, match=match):
            load_config("tiny", [bad])
    with pytest.raises(UserError, match="not found"):
        load_config("paper_9b")
    sizes = {}
    for name in ["tiny", "paper_50m", "paper_302m", "paper_707m"]:
        cfg = load_config(name).model
        abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
        sizes[name] = sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param))) / 1e6
    assert 1.0 < sizes["tiny"] < 1.6 and 45 < sizes["paper_50m"] < 60
    assert 290 < sizes["paper_302m"] < 320 and 690 < sizes["paper_707m"] < 730, sizes
