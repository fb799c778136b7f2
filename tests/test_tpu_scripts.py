"""The TPU scripts in dry-run mode print the gcloud commands they would run."""

import os
import pathlib
import shlex
import subprocess

import pytest

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "tpu_scripts"
ENV = {**os.environ, "PROJECT": "proj", "ZONE": "us-central2-b", "TPU_NAME": "pod", "BUCKET": "gs://bkt",
       "ACCELERATOR_TYPE": "v4-32", "DATA": "lichess-2023-01-1000"}


def dry_run(script, *args, env=ENV):
    out = subprocess.run(["bash", str(SCRIPTS / script), "--dry-run", *args], env=env,
                         capture_output=True, text=True, check=True).stdout
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]


def test_create_uses_queued_resources():
    (create, describe) = dry_run("create.sh")
    assert create[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
    assert "--accelerator-type=v4-32" in create and "--node-id=pod" in create and "--project=proj" in create
    assert "--spot" not in create
    assert "--spot" in dry_run("create.sh", env={**ENV, "SPOT": "1"})[0]
    assert describe[4] == "describe"


def test_install_builds_wheel_and_installs_on_all_workers():
    cmds = dry_run("install.sh")
    assert cmds[0][:3] == ["python3", "-m", "build"]
    ssh = cmds[-1]
    assert ssh[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"] and "--worker=all" in ssh
    remote = next(a for a in ssh if a.startswith("--command="))
    assert "apt-get install -y -q stockfish" in remote and "[tpu]" in remote


def test_train_runs_on_every_worker_with_gcs_workdir_and_overrides():
    (ssh,) = dry_run("train.sh", "configs/paper_50m.py", "cf1000", "--config.train.steps=10")
    assert "--worker=all" in ssh
    remote = next(a for a in ssh if a.startswith("--command="))
    assert "gsutil -m -q cp -r gs://bkt/data/lichess-2023-01-1000 /tmp/data/" in remote
    assert ("transcendence train --config configs/paper_50m.py --workdir gs://bkt/runs/cf1000 "
            "--config.data.path=/tmp/data/lichess-2023-01-1000 --config.train.steps=10") in remote


def test_eval_data_teardown():
    (ev,) = dry_run("eval.sh", "cf1000", "--games", "10")
    assert "--worker=0" in ev and "transcendence eval --workdir gs://bkt/runs/cf1000" in ev[-1]
    (data,) = dry_run("data.sh", "2023-01", "1000")
    assert "transcendence data build /tmp/lichess_db_standard_rated_2023-01.pgn.zst --max-rating 1000" in data[-1]
    (down,) = dry_run("teardown.sh")
    assert down[3:5] == ["queued-resources", "delete"] and "--force" in down


@pytest.mark.parametrize("script", ["create.sh", "install.sh", "train.sh", "eval.sh", "data.sh", "teardown.sh"])
def test_help(script):
    out = subprocess.run(["bash", str(SCRIPTS / script), "--help"], capture_output=True, text=True, check=True)
    assert "Usage:" in out.stdout and "--dry-run" in out.stdout


def test_missing_arguments_fail_clearly():
    r = subprocess.run(["bash", str(SCRIPTS / "train.sh"), "--dry-run"], env=ENV, capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr
