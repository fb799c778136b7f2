"""Training that goes wrong stops or says so: divergence, corrupt checkpoints, two processes on one
workdir, a resume under other settings (issue 19). Same tiny runs as test_train.py, in subprocesses."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_train import PY, env, losses, train_cmd  # noqa: E402

BASE = ["train.steps=8", "train.checkpoint_every=4"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, data_dir, cache) -> pathlib.Path:
    """8 steps, checkpoints at 4 and 8: each test works on a copy."""
    work = tmp_path_factory.mktemp("base") / "w"
    r = train(work, data_dir, cache, *BASE)
    assert r.returncode == 0, r.stderr[-3000:]
    return work


def train(work, data_dir, cache, *overrides, flags=()) -> subprocess.CompletedProcess:
    return subprocess.run([*train_cmd(work, data_dir, *overrides), *flags], env=env(1, cache), capture_output=True,
                          text=True, timeout=600)


def copy(src: pathlib.Path, tmp_path) -> pathlib.Path:
    dst = tmp_path / "w"
    shutil.copytree(src, dst)
    return dst


def steps_of(work) -> list[int]:
    return sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit())


def error_line(stderr: str) -> str:
    """The last line of a failed command, after checking that nothing else went wrong loudly."""
    assert "Traceback" not in stderr and "pybind11" not in stderr, stderr[-3000:]
    return stderr.strip().splitlines()[-1]


def zero_16kb_silently(step_dir: pathlib.Path, tmp_path) -> None:
    """Zero 16 KB inside one of the step's data files, at a place where the files still decode:
    orbax then reads other values (parameters or Adam moments) without any error."""
    import jax
    import orbax.checkpoint as ocp

    def read(state_dir):
        return [np.asarray(x) for x in jax.tree.leaves(ocp.PyTreeCheckpointer().restore(state_dir))]

    original = read(step_dir / "state")
    # Which places still decode varies from run to run: every data file, twenty places each.
    for f in sorted((step_dir / "state").rglob("d/*"), key=lambda f: -f.stat().st_size):
        data = f.read_bytes()
        for twentieth in range(1, 20):
            at = len(data) * twentieth // 20
            f.write_bytes(data[:at] + bytes(16384) + data[at + 16384:])
            trial = tmp_path / f"trial-{f.name}-{twentieth}"
            shutil.copytree(step_dir / "state", trial)
            try:
                values = read(trial)
            except Exception:  # this place breaks the decoding: try another
                continue
            if any(not np.array_equal(a, b) for a, b in zip(original, values)):
                return
        f.write_bytes(data)
    raise AssertionError(f"no silent 16 KB corruption found in {step_dir}")


def test_diverging_run_stops_before_saving(tmp_path, data_dir, cache):
    """lr 1e30: the first non-finite step stops the run with one line; every checkpoint left is finite."""
    from transcendence_jax.training.checkpoint import load_model

    work = tmp_path / "w"
    r = train(work, data_dir, cache, "train.lr=1e30", "train.warmup_steps=1", "train.steps=20",
              "train.checkpoint_every=1", "train.keep_checkpoints=2")
    assert r.returncode == 2, r.stderr[-3000:]
    line = error_line(r.stderr)
    assert line.startswith("error: training diverged at step "), line
    bad_step = int(line.split("at step ")[1].split()[0])
    kept = steps_of(work)
    assert kept and max(kept) < bad_step, (kept, line)
    assert f"its last checkpoint, step {max(kept)}, is intact" in line
    for step in kept:  # load_model refuses non-finite parameters: these load
        assert load_model(str(work), step)[2] == step


def test_non_finite_checkpoint_refused_and_skipped(tmp_path, base_run, data_dir, cache):
    """A NaN checkpoint (as training saved them before the guard): load_model and eval refuse it
    in one line; a resumed run quarantines it and continues from the step before."""
    import jax
    import orbax.checkpoint as ocp

    from transcendence_jax.errors import UserError
    from transcendence_jax.training.checkpoint import load_model

    work = copy(base_run, tmp_path)
    nan_dir = work / "checkpoints" / "8"
    state = ocp.PyTreeCheckpointer().restore(nan_dir / "state")
    state = jax.tree.map(lambda x: np.full(np.shape(x), np.nan, np.float32) if np.ndim(x) >= 2 else np.asarray(x),
                         state)
    shutil.rmtree(nan_dir / "state")
    shutil.rmtree(nan_dir / "checksums")
    ocp.PyTreeCheckpointer().save(nan_dir / "state", state)
    with pytest.raises(UserError, match=r"checkpoint step 8 .* holds \d+ NaN/inf values .* training diverged"):
        load_model(str(work))
    r = subprocess.run([PY, "-m", "transcendence_jax", "eval", "--workdir", str(work), "--games", "1",
                        "--temperatures", "1", "--opponents", "sf1", "--out", str(tmp_path / "ev")],
                       env=env(1, cache), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "holds" in error_line(r.stderr) and "NaN/inf" in r.stderr, r.stderr[-3000:]

    resumed = train(work, data_dir, cache, *BASE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "warning: checkpoint step 8" in resumed.stderr and "NaN/inf" in resumed.stderr, resumed.stderr[-3000:]
    assert (work / "corrupt_checkpoints" / "8").is_dir()
    assert losses(work) == losses(base_run)


def test_silently_corrupt_checkpoint_fails_its_checksum(tmp_path, base_run, data_dir, cache):
    """16 KB zeroed inside a data file of step 8 (it still decodes): a resumed run sees it,
    quarantines it and redoes steps 5-8 exactly."""
    work = copy(base_run, tmp_path)
    zero_16kb_silently(work / "checkpoints" / "8", tmp_path)
    resumed = train(work, data_dir, cache, *BASE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning: checkpoint step 8")]
    # Zeroed bytes decode as other values: some checksum differs (or some value is NaN/inf)
    assert len(warnings) == 1 and ("differ from the checksums" in warnings[0] or "NaN/inf" in warnings[0]), warnings
    assert (work / "corrupt_checkpoints" / "8").is_dir()
    assert losses(work) == losses(base_run)


def test_load_model_checks_checksums(tmp_path, base_run):
    """Step 8's parameters replaced on disk by step 4's (readable, finite, wrong): load_model
    says so and falls back to step 4; asked for step 8, it refuses."""
    from transcendence_jax.errors import UserError
    from transcendence_jax.training.checkpoint import load_model

    work = copy(base_run, tmp_path)
    shutil.rmtree(work / "checkpoints" / "8" / "state")
    shutil.copytree(work / "checkpoints" / "4" / "state", work / "checkpoints" / "8" / "state")
    assert load_model(str(work))[2] == 4
    with pytest.raises(UserError, match=r"no readable checkpoint .*differ from the checksums"):
        load_model(str(work), 8)


def test_unreadable_checkpoints_one_line_each(tmp_path, base_run, data_dir, cache):
    """Every checkpoint unreadable (16 KB zeroed in the middle of each data file): one warning
    line per step, no tracebacks, and the last one says the run restarts from step 0."""
    work = copy(base_run, tmp_path)
    for f in (work / "checkpoints").rglob("d/*"):
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2] + bytes(16384) + data[len(data) // 2 + 16384:])
    r = train(work, data_dir, cache, *BASE)
    assert r.returncode == 0, r.stderr[-3000:]
    # The failed reads' other tasks (logged by asyncio) and tensorstore's late callbacks into their
    # closed event loops (unraisable, some after main() returned) print nothing.
    assert not any(noise in r.stderr for noise in ("Traceback", "pybind11", "TensorStore")), r.stderr[-3000:]
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: checkpoint step")]
    assert [w.split()[3] for w in warnings] == ["8", "4"], r.stderr[-3000:]
    assert "previous checkpoint" in warnings[0] and "restarts from step 0" in warnings[1], warnings
    assert losses(work) == losses(base_run)


def test_resume_with_other_settings_is_refused(tmp_path, base_run, data_dir, cache):
    work = copy(base_run, tmp_path)
    saved = (work / "config.json").read_text()
    r = train(work, data_dir, cache, "train.steps=12", "train.checkpoint_every=4", "train.batch_size=16",
              "train.lr=0.002")
    assert r.returncode == 2, r.stderr[-3000:]
    line = error_line(r.stderr)
    assert "trained with other settings (train.batch_size: 8 -> 16, train.lr: 0.001 -> 0.002)" in line, line
    assert "--allow-config-change" in line and (work / "config.json").read_text() == saved
    assert steps_of(work) == [4, 8]

    r = train(work, data_dir, cache, "train.steps=12", "train.checkpoint_every=4")  # extending a run is fine
    assert r.returncode == 0 and "trained: step 12" in r.stdout, r.stderr[-3000:]
    r = train(work, data_dir, cache, "train.steps=16", "train.checkpoint_every=4", "train.lr=0.002",
              flags=["--allow-config-change"])
    assert r.returncode == 0 and "trained: step 16" in r.stdout, r.stderr[-3000:]
    assert "changed settings (train.lr: 0.001 -> 0.002)" in r.stderr
    assert json.loads((work / "config.json").read_text())["train"]["lr"] == 0.002
    assert sorted(losses(work)) == list(range(1, 17))


def test_second_trainer_refused_and_killed_lock_taken_over(tmp_path, base_run, data_dir, cache):
    """A second `train` on a running workdir gets one line and changes nothing; once the first is
    killed with -9, a rerun takes the workdir over and its metrics rows stay one per step, in order."""
    from test_train import wait_for_checkpoints

    work = copy(base_run, tmp_path)
    first = subprocess.Popen([*train_cmd(work, data_dir, "train.steps=400", "train.checkpoint_every=4")],
                             env=env(1, cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_checkpoints(work, first, 3)  # 4, 8 and one written by the first process
        second = train(work, data_dir, cache, "train.steps=400", "train.checkpoint_every=4")
        assert first.poll() is None  # still running: the refusal was the lock's
        assert second.returncode == 2, second.stderr[-3000:]
        line = error_line(second.stderr)
        assert line == (f"error: {work} is in use by another `transcendence train` (process {first.pid}); wait for "
                        "it to finish or stop it, or pass another --workdir"), line
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    last = steps_of(work)[-1]
    r = train(work, data_dir, cache, f"train.steps={last + 4}", "train.checkpoint_every=4")
    assert r.returncode == 0, r.stderr[-3000:]
    steps = [row["step"] for row in map(json.loads, (work / "metrics.jsonl").read_text().splitlines())]
    assert steps == list(range(1, last + 5))


def test_second_eval_on_one_out_dir_refused(tmp_path, base_run, cache):
    """`eval` holds its output directory the same way (here the test holds it)."""
    from transcendence_jax import workdir_lock

    out = tmp_path / "eval"
    with workdir_lock.hold(out, "eval", "--out"):
        r = subprocess.run([PY, "-m", "transcendence_jax", "eval", "--workdir", str(base_run), "--games", "1",
                            "--temperatures", "1", "--opponents", "sf1", "--max-plies", "6", "--out", str(out)],
                           env=env(1, cache), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    line = error_line(r.stderr)
    assert line.startswith(f"error: {out} is in use by another `transcendence eval` (process "), line
    assert not (out / "games.jsonl").exists()


def test_load_model_skips_a_step_whose_checksums_are_unreadable(tmp_path, base_run):
    """Step 8's checksums file garbled (its parameters intact): one warning, step 4 is loaded; the
    parameters were read first, so the step must not be verified against another step's sums."""
    from transcendence_jax.training.checkpoint import load_model

    work = copy(base_run, tmp_path)
    (metadata,) = (work / "checkpoints" / "8" / "checksums").glob("metadata")
    metadata.write_bytes(b"\x00garbled")
    assert load_model(str(work))[2] == 4
