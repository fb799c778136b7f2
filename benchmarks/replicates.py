"""Trainings per hour: R seeds of the demo's model trained together (`train --seeds R`, one
vmapped step) against the same R trainings one after another (`train` R times), end to end as
the CLI runs them: start-up, compilation (one fresh persistent cache for the run, as a user's
first time: the solo runs after the first hit it), data loading, checkpoints, metrics.
Wall time and CPU time (user + system of the training processes) for each.

  .venv/bin/python benchmarks/replicates.py                    # 4 seeds x 150 steps (minutes)
  .venv/bin/python benchmarks/replicates.py --replicates 2 --steps 50

The data: the demo's experts' games (configs/demo.py), --games of them, built once into --data.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

from machine import report_load


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall s, CPU s) of one CLI command; stops the benchmark on failure."""
    wall, cpu = time.perf_counter(), child_cpu()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return time.perf_counter() - wall, child_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=4)
    parser.add_argument("--steps", type=int, default=150, help="training steps of each replicate")
    parser.add_argument("--games", type=int, default=2000, help="expert games of the dataset")
    parser.add_argument("--data", default="/tmp/tj-replicates-data", help="the dataset (built when absent)")
    args = parser.parse_args()
    report_load()

    from transcendence_jax.demo import demo_config
    from transcendence_jax.experiment import generate

    cfg = demo_config()
    generate(cfg, "diverse", args.data, games=args.games)  # skipped when already built
    root = tempfile.mkdtemp(prefix="tj-replicates-")
    env = dict(os.environ, TJ_COMPILATION_CACHE=os.path.join(root, "xla-cache"))
    base = [sys.executable, "-m", "transcendence_jax", "train", "--config", "tiny",
            f"--config.data.path={args.data}", f"--config.train.steps={args.steps}",
            f"--config.train.decay_steps={args.steps}", "--config.train.batch_size=24",
            f"--config.train.checkpoint_every={args.steps}", f"--config.train.eval_every={args.steps}"]
    print(f"the demo's model (configs/tiny.py, batch 24), {args.steps} steps, {args.replicates} seeds, "
          f"{args.games} expert games in {args.data}", flush=True)

    solo_wall = solo_cpu = 0.0
    for seed in range(args.replicates):
        wall, cpu = timed_run([*base, f"--config.train.seed={seed}", "--workdir", f"{root}/solo{seed}"], env)
        print(f"  solo seed {seed}: {wall:6.1f} s wall, {cpu:6.1f} s CPU", flush=True)
        solo_wall, solo_cpu = solo_wall + wall, solo_cpu + cpu
    wall, cpu = timed_run([*base, f"--seeds={args.replicates}", "--workdir", f"{root}/together"], env)
    print(f"  {args.replicates} together: {wall:6.1f} s wall, {cpu:6.1f} s CPU", flush=True)
    print(f"\none after another: {solo_wall:.1f} s wall, {solo_cpu:.1f} s CPU; together: {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU\ntrainings per hour together / one after another: {solo_wall / wall:.2f}x wall, "
          f"{solo_cpu / cpu:.2f}x CPU")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
