"""Training: mesh-independent losses, kill -9 and resume, corrupt-checkpoint fallback, config errors,
workdir paths (gs:// URLs), load_model.

Training runs in subprocesses (XLA_FLAGS fixes the CPU device count before jax starts) on a
2-layer width-32 model and a dataset of random legal games written with write_dataset. One
uninterrupted 40-step one-device run (`ref_run`) is the reference the mesh, kill/resume and
load_model tests all compare with; the 8-device script starts at once and overlaps it.
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
    "model.dropout=0.0", "model.board_input=False", "model.board_head=False", "model.dtype=float32",
    "model.param_dtype=float32",
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
    from transcendence_jax.data.tokenizer import encode_game

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
    """A CPU jax with `devices` devices. LLVM optimisation level 0 cuts XLA:CPU compile time by
    ~40% on these tiny programs (the runs compile far longer than they compute); every run of the
    tests uses it, so losses stay comparable (measured: the same losses to 4 decimals as level 2)."""
    e = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **extra)
    e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
    if cache:  # compile once for the several processes of one test
        e.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return e


def train_cmd(workdir, data_dir, *overrides) -> list[str]:
    return [PY, "-m", "transcendence_jax", "train", "--config", "tiny", "--workdir", str(workdir),
            f"--config.data.path={data_dir}", *[f"--config.{o}" for o in (*OVERRIDES, *overrides)]]


def losses(workdir) -> dict[int, float]:
    from transcendence_jax.training.metrics import read_metrics

    return {r["step"]: r["loss"] for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))}


# ---------------------------------------------------------------------------- subprocess side


def _config(data_dir, *overrides):
    from transcendence_jax.config import load_config

    return load_config("tiny", [*OVERRIDES, f"data.path={data_dir}", *overrides])


def _script_meshes(data_dir: str, out: str) -> None:
    """8 devices, one run through three meshes: steps 1-2 on (2,2,2), step 3 restored onto (1,8,1),
    step 4 restored onto (8,1,1). Then the step-2 checkpoint is read back onto (2,2,2) (nothing
    initialised) to report how parameters and Adam moments are laid out."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    from transcendence_jax.training import checkpoint, sharding
    from transcendence_jax.training.step import init_train_state, make_optimizer
    from transcendence_jax.training.train import train

    assert jax.device_count() == 8
    for shape, steps in (("(2, 2, 2)", 2), ("(1, 8, 1)", 3), ("(8, 1, 1)", 4)):
        train(_config(data_dir, f"mesh.shape={shape}", f"train.steps={steps}"), f"{out}/meshes")

    config = _config(data_dir, "mesh.shape=(2, 2, 2)")
    mesh = sharding.make_mesh((2, 2, 2))
    tx, _ = make_optimizer(config.train)
    _, abstract, _, _, _ = init_train_state(config, mesh, tx, params=False)
    manager = checkpoint.make_manager(f"{out}/meshes", async_save=False)
    state = manager.restore(2, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
    manager.close()
    assert int(state["step"]) == 2
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

STEPS = ["train.steps=40", "train.checkpoint_every=8"]  # the reference run: 5 checkpoints


@pytest.fixture(scope="module")
def mesh_run(tmp_path_factory, data_dir):
    """The 8-device script, started at once so that it overlaps the reference run."""
    out = tmp_path_factory.mktemp("meshes")
    proc = subprocess.Popen([PY, __file__, "meshes", data_dir, str(out)], env=env(8),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def ref_run(tmp_path_factory, data_dir, cache, mesh_run) -> pathlib.Path:
    """An uninterrupted one-device CLI run of 40 steps: the reference every other test compares with.

    Asks for `mesh_run` only to start the 8-device script first: it runs beside this run and the
    kill/resume and load_model tests, and test_meshes (last in the file) collects it."""
    work = tmp_path_factory.mktemp("ref") / "w"
    r = subprocess.run(train_cmd(work, data_dir, *STEPS), env=env(1, cache), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trained: step 40" in r.stdout, r.stdout[-2000:]
    assert sorted(losses(work)) == list(range(1, 41))
    return work


def test_config_errors_before_compile():
    from transcendence_jax.config import load_config
    from transcendence_jax.errors import UserError
    from transcendence_jax.training.train import check_config

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


def test_workdir_paths_keep_urls():
    """gs:// workdirs stay URLs (no os.path.abspath mangling); local ones become absolute."""
    from transcendence_jax.training import checkpoint
    from transcendence_jax.training.metrics import MetricsWriter, as_path, is_url

    assert is_url("gs://b/x") and not is_url("runs/x")
    assert str(as_path("gs://b/x") / "config.json") == "gs://b/x/config.json"
    assert str(checkpoint._dir("gs://b/runs/x")) == "gs://b/runs/x/checkpoints"
    assert str(as_path("runs/x")) == os.path.join(os.getcwd(), "runs/x")
    assert str(checkpoint._dir("runs/x")) == os.path.join(os.getcwd(), "runs/x", "checkpoints")
    assert str(MetricsWriter("gs://b/x", total_steps=1, enabled=False).workdir) == "gs://b/x"


def test_url_data_path_is_a_user_error():
    from transcendence_jax.errors import UserError
    from transcendence_jax.training.train import _loaders

    with pytest.raises(UserError, match=r"gs://b/data is a URL.*local files only.*gsutil -m cp -r gs://b/data"):
        _loaders(_config("gs://b/data"))


def test_metrics_mirror_copies_to_workdir_and_resumes(tmp_path):
    """The local-mirror path a gs:// workdir takes (forced here on a local dir): files reach the
    workdir at each sync and at close; a resumed writer continues the workdir's rows."""
    from transcendence_jax.training.metrics import MetricsWriter, read_metrics

    work = tmp_path / "w"
    w = MetricsWriter(work, total_steps=4, mirror=True, sync_every_s=0)
    assert w.local != str(work)
    w.write(1, {"loss": 2.0})
    assert [r["step"] for r in read_metrics(work / "metrics.jsonl")] == [1]  # synced at once (sync_every_s=0)
    w.write(2, {"loss": 1.5})
    w.write(3, {"loss": 1.0})
    w.close()
    assert not os.path.exists(w.local)
    assert (work / "loss.png").stat().st_size > 1000 and list((work / "tensorboard").iterdir())
    assert [r["step"] for r in read_metrics(work / "metrics.jsonl")] == [1, 2, 3]
    w = MetricsWriter(work, total_steps=4, initial_step=2, mirror=True, sync_every_s=1e9)  # resumed at step 2
    w.write(3, {"loss": 0.9})
    assert [r["step"] for r in read_metrics(work / "metrics.jsonl")] == [1, 2, 3]  # not synced yet
    w.close()
    assert [(r["step"], r["loss"]) for r in read_metrics(work / "metrics.jsonl")] == [(1, 2.0), (2, 1.5), (3, 0.9)]


def wait_for_checkpoints(workdir: pathlib.Path, proc, count: int, timeout=300) -> list[int]:
    """Finalized checkpoint steps once there are `count` (orbax renames a step's tmp dir when complete)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        ckpts = workdir / "checkpoints"
        steps = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) if ckpts.is_dir() else []
        if len(steps) >= count:
            return steps
        time.sleep(0.01)
    raise AssertionError(f"fewer than {count} checkpoints appeared in {workdir} (rc {proc.poll()})")


def test_kill_resume_and_corrupt_fallback(tmp_path, data_dir, cache, ref_run):
    """kill -9 after two checkpoints, corrupt the newer one: the rerun warns, quarantines it,
    resumes from the older one and reproduces the uninterrupted run's losses bit for bit. Then
    with every checkpoint corrupt, a rerun starts afresh and reproduces them again."""
    work = tmp_path / "killed"
    victim = subprocess.Popen(train_cmd(work, data_dir, *STEPS), env=env(1, cache),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoints(work, victim, 2)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    survived = sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit())
    assert len(survived) >= 2 and survived[-1] < 40, survived  # it really died mid-run
    newest, older = survived[-1], survived[-2]
    assert max(losses(work)) >= newest - 1 > older  # rows past `older`: the rerun must drop and redo them

    for f in (work / "checkpoints" / str(newest) / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    resumed = subprocess.run(train_cmd(work, data_dir, *STEPS), env=env(1, cache),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"warning: checkpoint step {newest}" in resumed.stderr, resumed.stderr[-3000:]
    assert "falling back" in resumed.stderr, resumed.stderr[-3000:]
    assert (work / "corrupt_checkpoints" / str(newest)).is_dir()
    assert (work / "checkpoints" / str(newest)).is_dir()  # rewritten by the rerun of the steps after `older`
    assert losses(work) == losses(ref_run)  # bit-identical: same batches, same state

    # Every checkpoint unreadable: all are quarantined and the run starts afresh (same losses again).
    for f in (work / "checkpoints").rglob("*"):
        if f.is_file() and "state" in f.parts:
            f.write_bytes(b"garbage")
    fresh = subprocess.run(train_cmd(work, data_dir, *STEPS), env=env(1, cache), capture_output=True, text=True,
                           timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert fresh.stderr.count("falling back") == 5, fresh.stderr[-3000:]  # keep_checkpoints=5: steps 8..40
    assert sorted(int(p.name) for p in (work / "corrupt_checkpoints").iterdir()) == [8, 16, 24, 32, 40]
    assert losses(work) == losses(ref_run)


def test_load_model_for_inference(tmp_path, ref_run):
    from transcendence_jax.errors import UserError
    from transcendence_jax.training.checkpoint import load_model

    with pytest.raises(UserError, match="not a training workdir"):
        load_model(str(tmp_path / "nothing"))
    with pytest.raises(UserError, match="no checkpoint at step 3; it has steps"):
        load_model(str(ref_run), step=3)
    assert (ref_run / "loss.png").stat().st_size > 1000
    assert list((ref_run / "tensorboard").iterdir())
    model, config, step = load_model(str(ref_run))
    assert step == 40 and config.model.embed_dim == 32
    import jax.numpy as jnp

    logits = model(jnp.ones((1, 5), jnp.int32))
    assert logits.shape == (1, 5, config.model.vocab_size) and bool(jnp.isfinite(logits).all())


def test_meshes_and_one_device_give_same_losses(mesh_run, ref_run):
    """(2,2,2), (1,8,1) and (8,1,1) over 8 devices match one device step for step."""
    proc, out = mesh_run
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log[-3000:]
    ref = losses(ref_run)
    assert len({ref[s] for s in range(1, 5)}) == 4
    got = losses(out / "meshes")
    assert sorted(got) == [1, 2, 3, 4]  # steps 1-2 on (2,2,2), 3 on (1,8,1), 4 on (8,1,1)
    np.testing.assert_allclose([got[s] for s in range(1, 5)], [ref[s] for s in range(1, 5)], rtol=2e-5)

    report = json.loads((out / "shardings.json").read_text())
    rules = report.pop("_rules")
    assert report.pop("_moments_sharded")
    sharded = [k for k, v in report.items() if v["shard"] != v["shape"]]
    assert sharded, report  # some parameters are split, each as its spec says
    for name, v in report.items():
        assert v["shard"] == [d // k for d, k in zip(v["shape"], v["split"])], (name, v, rules)
