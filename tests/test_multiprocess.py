"""A two-process jax.distributed run on 127.0.0.1 (2 CPU devices each) trains and checkpoints."""

from __future__ import annotations

import socket
import subprocess

from test_train import env, losses, train_cmd, write_games


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_and_checkpoint(tmp_path):
    data_dir = write_games(str(tmp_path / "games"))
    work = tmp_path / "w"
    port = _free_port()
    procs = [subprocess.Popen(train_cmd(work, data_dir, "train.steps=3", "mesh.shape=(-1, 1, 1)"),
                              env=env(2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                                      JAX_PROCESS_ID=str(i)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    assert "trained: step 3" in logs[0] and "trained:" not in logs[1]  # only process 0 reports
    assert sorted(losses(work)) == [1, 2, 3]  # one metrics.jsonl row a step: only process 0 writes
    for step in (2, 3):
        data = work / "checkpoints" / str(step) / "data"
        assert sorted(f.name for f in data.glob("process_*.json")) == ["process_0-of-2.json", "process_1-of-2.json"]
        assert (work / "checkpoints" / str(step) / "state").is_dir()
