"""Replicates trained together (`train --seeds N`: one vmapped step over stacked state).

Each replicate must compute what its solo run computes, resume exactly after kill -9 (also when
the replicates' newest checkpoints differ), and load and play alone. Same tiny model and random
games as test_train.py, through the CLI in subprocesses.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess

import numpy as np
import pytest
from test_train import PY, env, losses, train_cmd, wait_for_checkpoints

STEPS = ["train.steps=32", "train.checkpoint_every=4"]
SEEDS = 3


def stacked_cmd(workdir, data_dir, *overrides):
    return [*train_cmd(workdir, data_dir, *STEPS, *overrides), f"--seeds={SEEDS}"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir, cache):
    """The three solo runs (seeds 0, 1, 2; two at a time) and one uninterrupted stacked run."""
    out = tmp_path_factory.mktemp("together")
    procs = [subprocess.Popen(train_cmd(out / f"solo{s}", data_dir, *STEPS, f"train.seed={s}"), env=env(1, cache),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for s in range(SEEDS)]
    stacked = subprocess.run(stacked_cmd(out / "stacked", data_dir), env=env(1, cache), capture_output=True,
                             text=True, timeout=600)
    assert stacked.returncode == 0, stacked.stderr[-3000:]
    for proc in procs:
        log = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, log[-3000:]
    return out


def test_each_replicate_has_its_solo_losses(runs):
    """Float tolerance: vmap batches each matmul, which may sum in another order (seen: <= 2e-7 relative)."""
    for s in range(SEEDS):
        solo, together = losses(runs / f"solo{s}"), losses(runs / "stacked" / f"seed{s}")
        assert sorted(solo) == sorted(together) == list(range(1, 33))
        np.testing.assert_allclose([together[k] for k in solo], [solo[k] for k in solo], rtol=1e-5)
        config = json.loads((runs / "stacked" / f"seed{s}" / "config.json").read_text())
        assert config["train"]["seed"] == s
    first = [losses(runs / "stacked" / f"seed{s}")[32] for s in range(SEEDS)]
    assert len(set(first)) == SEEDS  # three different models, not one copied


def test_kill_and_resume_is_exact(tmp_path, data_dir, cache, runs):
    """kill -9 after two checkpoints, then drop seed 2's newest (as if killed between the
    replicates' saves): the rerun takes every replicate back to their newest common step and
    ends with the uninterrupted stacked run's losses, bit for bit."""
    work = tmp_path / "killed"
    victim = subprocess.Popen(stacked_cmd(work, data_dir), env=env(1, cache),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoints(work / "seed2", victim, 2)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    saved = sorted(int(p.name) for p in (work / "seed2" / "checkpoints").iterdir() if p.name.isdigit())
    assert len(saved) >= 2 and saved[-1] < 32, saved  # it really died mid-run
    shutil.rmtree(work / "seed2" / "checkpoints" / str(saved[-1]))
    resumed = subprocess.run(stacked_cmd(work, data_dir), env=env(1, cache), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"restarts from step {saved[-2]}" in resumed.stderr, resumed.stderr[-3000:]
    for s in range(SEEDS):
        assert losses(work / f"seed{s}") == losses(runs / "stacked" / f"seed{s}")


def test_one_replicate_loads_and_plays_alone(tmp_path, runs):
    import jax

    from transcendence_jax.play import arena
    from transcendence_jax.play.players import ModelPlayer
    from transcendence_jax.sampling.sampler import Sampler
    from transcendence_jax.training.checkpoint import load_model

    model, config, step = load_model(str(runs / "stacked" / "seed1"))
    solo, _, _ = load_model(str(runs / "solo1"))
    assert step == 32 and config.train.seed == 1
    from flax import nnx

    for a, b in zip(jax.tree.leaves(nnx.state(model, nnx.Param)), jax.tree.leaves(nnx.state(solo, nnx.Param))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    sampler = Sampler(model, max_games=2, legal="mask", seed=0)
    players = [ModelPlayer("seed1@1", sampler, 1.0), ModelPlayer("seed1@0.5", sampler, 0.5)]
    results = arena.play_games(arena.round_robin(players, 2), out_dir=str(tmp_path / "games"), max_plies=40,
                               progress=False)
    assert len(results) == 2 and all(r["result"] in ("1-0", "0-1", "1/2-1/2") for r in results)
    assert all(len(r["moves"]) > 0 for r in results)


def test_replicates_of_other_shapes_are_refused(tmp_path, data_dir):
    from transcendence_jax.config import load_config
    from transcendence_jax.errors import UserError
    from transcendence_jax.training.train import train_together

    a = load_config("tiny", [f"data.path={data_dir}"])
    b = load_config("tiny", [f"data.path={data_dir}", "model.embed_dim=64"])
    with pytest.raises(UserError, match="differ too: model.embed_dim"):
        train_together([a, b], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(UserError, match="share a workdir"):
        train_together([a, a], [tmp_path / "a", tmp_path / "a"])
    r = subprocess.run([PY, "-m", "transcendence_jax", "train", "--config", "tiny", "--workdir", str(tmp_path / "c"),
                        "--seeds=0"], env=env(1), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: --seeds 0"), r.stderr


def test_a_sweep_trains_its_points_together(tmp_path):
    """train_together=true in a sweep of one model shape: every point's data, then one stacked
    training of all their models, then each point's tournament (its training found done)."""
    out = tmp_path / "sweep"
    r = subprocess.run([PY, "-m", "transcendence_jax", "sweep", "diversity", "--size", "reduced", "--out", str(out),
                        "--workers", "2", "--config.base.train_together=true"], env=env(1), capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "training 2 models together" in (out / "stages" / "training" / "log.txt").read_text()
    points = sorted(p for p in out.iterdir() if (p / "point.json").exists())
    assert len(points) == 2
    seeds_and_data = set()
    for point in points:
        (workdir,) = point.glob("*/train")
        config = json.loads((workdir / "config.json").read_text())
        seeds_and_data.add(config["data"]["path"])
        assert "nothing to do" in (point / "log.txt").read_text()
    assert len(seeds_and_data) == 2  # each point's model on its own experts' games
