"""Training: mesh-independent losses, kill -9 and resume, corrupt-checkpoint fallback, config errors.

Training runs in subprocesses (XLA_FLAGS fixes the CPU device count before jax starts) on a
2-layer width-32 model and a dataset of random legal games written with write_dataset.
This file doubles as the subprocess script: `python tests/test_train.py meshes DATA OUT`.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
PY = sys.executable

# The tiny config shrunk to seconds per run.
OVERRIDES = [
    "model.num_layers=2", "model.num_heads=2", "model.embed_dim=32", "model.mlp_dim=64", "model.max_len=64",
    "model.dropout=0.0", "model.board_input=False", "model.dtype=float32", "model.param_dtype=float32",
    "model.remat=False", "data.seq_len=32", "data.packing=pad", "data.worker_count=0", "data.seed=0",
    "train.batch_size=8", "train.grad_accum=1", "train.steps=4", "train.warmup_steps=2", "train.decay_steps=50",
    "train.lr=0.001", "train.eval_every=0", "train.checkpoint_every=2", "train.keep_checkpoints=5",
    "train.log_every=1", "train.legal_loss=False",
]


def write_games(out_dir: str, num_games: int = 96, seed: int = 0) -> str:
    """Random legal games (10-40 plies) as a `data build` output directory."""
    import chess

    from transcendence_jax.data.build import write_dataset
    from transcendence_jax.data.records import GameRecord
    from transcendence_jax.tokenizer import encode_game

    rng = random.Random(seed)

    def games():
        for _ in range(num_games):
            board, moves = chess.Board(), []
            for _ in range(rng.randint(10, 40)):
                legal = list(board.legal_moves)
                if not legal:
                    break
                moves.append(rng.choice(legal))
                board.push(moves[-1])
            result = rng.choice(["1-0", "0-1", "1/2-1/2"])
            yield GameRecord(tokens=encode_game(moves), result=result)  # result is its own field

    write_dataset(games(), out_dir, num_shards=2, val_fraction=0.2, seed=seed)
    return out_dir


def env(devices: int = 1, cache: str | None = None, **extra) -> dict:
    e = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **extra)
    e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    if cache:  # compile once for the several processes of one test
        e.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return e


def train_cmd(workdir, data_dir, *overrides) -> list[str]:
    return [PY, "-m", "transcendence_jax", "train", "--config", "tiny", "--workdir", str(workdir),
            f"--config.data.path={data_dir}", *[f"--config.{o}" for o in (*OVERRIDES, *overrides)]]


def losses(workdir) -> dict[int, float]:
    from transcendence_jax.metrics import read_metrics

    return {r["step"]: r["loss"] for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))}


# ---------------------------------------------------------------------------- subprocess side


def _config(data_dir, *overrides):
    from transcendence_jax.config import load_config

    return load_config("tiny", [*OVERRIDES, f"data.path={data_dir}", *overrides])


def _script_meshes(data_dir: str, out: str) -> None:
    """8 devices: (2,2,2) for 4 steps; (1,8,1) for 2 steps, then restored onto (8,1,1) for 2 more."""
    import jax
    import numpy as np

    from transcendence_jax import sharding
    from transcendence_jax.train import init_train_state, make_optimizer, train

    assert jax.device_count() == 8
    train(_config(data_dir, "mesh.shape=(2, 2, 2)"), f"{out}/m222")
    train(_config(data_dir, "mesh.shape=(1, 8, 1)", "train.steps=2"), f"{out}/resharded")
    train(_config(data_dir, "mesh.shape=(8, 1, 1)"), f"{out}/resharded")  # restores (1,8,1) state onto (8,1,1)

    # Parameters (and their Adam moments) are laid out as the rules say, not replicated.
    config = _config(data_dir, "mesh.shape=(2, 2, 2)")
    mesh = sharding.make_mesh((2, 2, 2))
    tx, _ = make_optimizer(config.train)
    _, state, _, _, _ = init_train_state(config, mesh, tx)
    rules = dict(config.mesh.rules)
    report = {}
    for path, v in jax.tree_util.tree_leaves_with_path(state["params"]):
        name = jax.tree_util.keystr(path)
        spec = list(v.sharding.spec) + [None] * (v.ndim - len(v.sharding.spec))
        split = [int(np.prod([mesh.shape[a] for a in ((s,) if isinstance(s, str) else s or ())])) for s in spec]
        report[name] = {"shape": list(v.shape), "shard": list(v.addressable_shards[0].data.shape), "split": split}
    mu = [x for x in jax.tree.leaves(state["opt_state"]) if getattr(x, "ndim", 0) >= 2]
    report["_moments_sharded"] = all(np.prod(x.addressable_shards[0].data.shape) < x.size for x in mu if x.size >= 64)
    report["_rules"] = {k: v for k, v in rules.items()}
    with open(f"{out}/shardings.json", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    globals()[f"_script_{sys.argv[1]}"](*sys.argv[2:])
    sys.exit(0)


# ---------------------------------------------------------------------------- tests

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return write_games(str(tmp_path_factory.mktemp("games")))


def test_config_errors_before_compile():
    from transcendence_jax.config import load_config
    from transcendence_jax.errors import UserError
    from transcendence_jax.train import check_config

    with pytest.raises(UserError, match="nonexistent"):
        load_config("tiny", ["train.nonexistent=1"])
    config = load_config("tiny", [*OVERRIDES, "mesh.shape=(3, -1, 1)"])
    with pytest.raises(UserError, match="does not divide the 8 devices"):
        check_config(config, num_devices=8)
    config = load_config("tiny", [*OVERRIDES, "mesh.shape=(2, 2, 2)"])
    with pytest.raises(UserError, match="needs 8 devices but 4"):
        check_config(config, num_devices=4)
    config = load_config("tiny", [*OVERRIDES, "mesh.shape=(4, -1, 1)", "train.batch_size=12"])
    with pytest.raises(UserError, match="8 data-parallel devices"):
        check_config(config, num_devices=8)
    assert check_config(config, num_devices=4) == (4, 1, 1)


def test_cli_reports_bad_mesh_in_one_line(tmp_path, data_dir):
    t0 = time.time()
    r = subprocess.run(train_cmd(tmp_path / "w", data_dir, "mesh.shape=(3, -1, 1)"), env=env(8),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: config.mesh.shape (3, -1, 1) does not divide the 8 devices"), r.stderr
    assert len(lines) == 1, r.stderr
    assert not (tmp_path / "w" / "checkpoints").exists()
    assert time.time() - t0 < 60


def test_meshes_and_one_device_give_same_losses(tmp_path, data_dir):
    cache = str(tmp_path / "cache")
    eight = subprocess.Popen([PY, __file__, "meshes", data_dir, str(tmp_path)], env=env(8),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    one = subprocess.run(train_cmd(tmp_path / "one", data_dir, "mesh.shape=(-1, 1, 1)"), env=env(1, cache),
                         capture_output=True, text=True, timeout=600)
    log = eight.communicate(timeout=600)[0]
    assert one.returncode == 0, one.stderr[-3000:]
    assert eight.returncode == 0, log[-3000:]
    ref = losses(tmp_path / "one")
    assert sorted(ref) == [1, 2, 3, 4] and len(set(ref.values())) == 4
    for run in ("m222", "resharded"):
        got = losses(tmp_path / run)
        assert sorted(got) == [1, 2, 3, 4], run
        np.testing.assert_allclose([got[s] for s in range(1, 5)], [ref[s] for s in range(1, 5)], rtol=2e-5, err_msg=run)

    report = json.loads((tmp_path / "shardings.json").read_text())
    rules = report.pop("_rules")
    assert report.pop("_moments_sharded")
    sharded = [k for k, v in report.items() if v["shard"] != v["shape"]]
    assert sharded, report  # some parameters are split, each as its spec says
    for name, v in report.items():
        assert v["shard"] == [d // k for d, k in zip(v["shape"], v["split"])], (name, v, rules)


def _wait_for_checkpoint(workdir: pathlib.Path, proc, timeout=300) -> int:
    """The first finalized checkpoint step (orbax renames a step's tmp dir when it is complete)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        ckpts = workdir / "checkpoints"
        steps = [int(p.name) for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() else []
        if steps:
            return max(steps)
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint appeared in {workdir} (rc {proc.poll()})")


def test_kill_resume_and_corrupt_fallback(tmp_path, data_dir):
    steps = ["train.steps=40", "train.checkpoint_every=8"]
    cache = str(tmp_path / "cache")
    # Uninterrupted reference.
    ref = subprocess.run(train_cmd(tmp_path / "ref", data_dir, *steps), env=env(1, cache),
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_losses = losses(tmp_path / "ref")
    assert sorted(ref_losses) == list(range(1, 41))

    # kill -9 right after the first checkpoint lands.
    work = tmp_path / "killed"
    victim = subprocess.Popen(train_cmd(work, data_dir, *steps), env=env(1, cache),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(work, victim)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    survived = sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit())
    assert survived and survived[-1] < 40, survived  # it really died mid-run

    resumed = subprocess.run(train_cmd(work, data_dir, *steps), env=env(1, cache),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = losses(work)
    assert got == ref_losses  # bit-identical: same batches, same state

    # Corrupt the newest checkpoint (step 40): the run falls back to step 32 and warns.
    for f in (work / "checkpoints" / "40" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    again = subprocess.run(train_cmd(work, data_dir, *steps), env=env(1, cache),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "warning: checkpoint step 40" in again.stderr and "falling back" in again.stderr, again.stderr[-3000:]
    assert (work / "corrupt_checkpoints" / "40").is_dir()
    assert (work / "checkpoints" / "40").is_dir()  # rewritten by the rerun of steps 33-40
    assert losses(work) == ref_losses


def test_load_model_for_inference(tmp_path, data_dir):
    from transcendence_jax.checkpoint import load_model
    from transcendence_jax.errors import UserError

    with pytest.raises(UserError, match="not a training workdir"):
        load_model(str(tmp_path / "nothing"))
    r = subprocess.run(train_cmd(tmp_path / "w", data_dir, "train.steps=2"), env=env(1),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "w" / "loss.png").stat().st_size > 1000
    assert list((tmp_path / "w" / "tensorboard").iterdir())
    model, config, step = load_model(str(tmp_path / "w"))
    assert step == 2 and config.model.embed_dim == 32
    import jax.numpy as jnp

    logits = model(jnp.ones((1, 5), jnp.int32))
    assert logits.shape == (1, 5, config.model.vocab_size) and bool(jnp.isfinite(logits).all())
