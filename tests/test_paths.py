"""Full disks and unwritable paths: every command ends in one line `error: ...` and exit code 2.

A full disk is a real one: a small tmpfs mounted in a temporary directory (needs root, or a
container that allows mounts; skipped with the reason otherwise); a read-only path is a
read-only tmpfs (chmod does not stop root), and a path under a file fails with ENOTDIR.
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import subprocess

import pytest
from test_train import PY, env, train_cmd

from transcendence_jax import cli, jsonl
from transcendence_jax.errors import UserError
from transcendence_jax.play.engines import find_stockfish

try:
    find_stockfish()
    HAVE_STOCKFISH = True
except UserError:
    HAVE_STOCKFISH = False


@contextlib.contextmanager
def tmpfs(where: pathlib.Path, size: str, read_only: bool = False):
    """A tmpfs of `size` at `where`, unmounted afterwards; the test is skipped where mounting is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): needs root and mount rights")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> pathlib.Path:
    """A 2-step tiny workdir with one checkpoint, for eval."""
    work = tmp_path_factory.mktemp("trained") / "w"
    r = subprocess.run(train_cmd(work, data_dir, "train.steps=2"), env=env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return work


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """The run ended with exit 2 and a last stderr line `error: ...` holding `needles`, and no traceback."""
    assert r.returncode == 2, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(n in last for n in needles), r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "sys.meta_path" not in r.stderr, r.stderr[-3000:]
    return last


def test_train_on_a_full_disk_is_one_line(tmp_path, data_dir):
    """The first checkpoint does not fit: orbax's background writers fail, and the interpreter's
    shutdown used to print hundreds of lines ending in 'ImportError: sys.meta_path is None'."""
    with tmpfs(tmp_path / "disk", "300k") as disk:
        r = subprocess.run(train_cmd(disk / "w", data_dir, "train.steps=4"), env=env(), capture_output=True,
                           text=True, timeout=600)
    # The file is named when the failure reaching the main thread carries it; orbax's native writers
    # sometimes fail first with a message that has none (timing), so only the reason is required.
    last = _one_line_error(r, "No space left on device")
    assert "free space" in last


@pytest.mark.parametrize("where", ["read-only", "under a file", "a file"])
def test_train_workdir_that_cannot_be_written_is_one_line(tmp_path, data_dir, where):
    (tmp_path / "file").write_text("not a directory")
    with contextlib.ExitStack() as stack:
        if where == "read-only":
            workdir, reason = stack.enter_context(tmpfs(tmp_path / "ro", "1m", read_only=True)) / "w", "Read-only"
        elif where == "under a file":
            workdir, reason = tmp_path / "file" / "w", "Not a directory"
        else:
            workdir, reason = tmp_path / "file", "--workdir"
        r = subprocess.run(train_cmd(workdir, data_dir, "train.steps=2"), env=env(), capture_output=True,
                           text=True, timeout=600)
    _one_line_error(r, reason, str(tmp_path))


def test_eval_out_that_cannot_be_written_is_refused_before_loading(tmp_path, capsys):
    """Checked before the checkpoint loads (this workdir has none): the --out path is the error."""
    (tmp_path / "file").write_text("x")
    for out, reason in [(tmp_path / "file", "is a file"), (tmp_path / "file" / "eval", "is a file")]:
        assert cli.main(["eval", "--workdir", str(tmp_path), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --out ") and reason in err and "\n" not in err, err
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        assert cli.main(["eval", "--workdir", str(tmp_path), "--out", str(ro / "eval")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out ") and "Read-only" in err and "\n" not in err, err


@pytest.mark.skipif(not HAVE_STOCKFISH, reason="Stockfish not installed (apt-get install stockfish)")
def test_eval_on_a_full_disk_is_one_line_and_keeps_its_games(tmp_path, trained):
    """The disk fills while eval writes its games: one line naming the file; the games recorded
    before stay, and a rerun on a disk with room plays only the rest."""
    argv = [PY, "-m", "transcendence_jax", "eval", "--workdir", str(trained), "--temperatures", "1",
            "--opponents", "nodes=1", "--games", "30", "--max-plies", "40", "--bootstrap", "0"]
    with tmpfs(tmp_path / "disk", "24k") as disk:
        r = subprocess.run([*argv, "--out", str(disk / "eval")], env=env(), capture_output=True, text=True,
                           timeout=600)
        _one_line_error(r, "No space left on device", str(disk / "eval"))
        shutil.copytree(disk / "eval", tmp_path / "eval")
    kept = len(jsonl.read(tmp_path / "eval" / "games.jsonl"))
    assert 0 < kept < 30
    r = subprocess.run([*argv, "--out", str(tmp_path / "eval")], env=env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ids = [row["game_id"] for row in jsonl.read(tmp_path / "eval" / "games.jsonl")]
    assert len(ids) == len(set(ids)) == 30
    assert (tmp_path / "eval" / "games.pgn").read_text().count("[Event ") == 30
