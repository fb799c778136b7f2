"""What the allocator costs our train step: wall and system (kernel) CPU time of JAX steps, back to
back and after an idle pause, with the page faults they take, on the allocator this process runs
on (`transcendence`'s jemalloc, or glibc's with TJ_MALLOC=system).

XLA:CPU allocates each step's temporaries afresh; glibc returns blocks over 32 MB to the kernel on
free, so each step faults and zeroes its pages again (system time), and on a VM that reports free
pages to its host (this machine: `page_reporting`), a step after a pause waits for the host too.

  .venv/bin/python benchmarks/allocator.py                     # the 26M shape (minutes)
  TJ_MALLOC=system .venv/bin/python benchmarks/allocator.py    # the same on glibc's malloc
  .venv/bin/python benchmarks/allocator.py --demo
"""

from __future__ import annotations

import argparse
import resource
import time

from machine import report_load
from train_throughput import DEMO_SHAPE, SHAPE_26M, JaxBench, make_config, random_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", action="store_true", help="the demo's model (else the 26M shape)")
    ap.add_argument("--pauses", type=float, nargs="+", default=[0, 0, 5, 0, 20, 0],
                    help="idle seconds before each step")
    a = ap.parse_args()
    report_load()
    a = argparse.Namespace(**vars(a), **(DEMO_SHAPE if a.demo else SHAPE_26M))
    jb = JaxBench(make_config(a), random_batch(a))
    jb.step(), jb.step()  # compiled, warm
    print(f"{'pause s':>8s} {'step s':>8s} {'system s':>9s} {'page faults':>12s}  peak RSS")
    for pause in a.pauses:
        time.sleep(pause)
        before = resource.getrusage(resource.RUSAGE_SELF)
        seconds = jb.step()
        after = resource.getrusage(resource.RUSAGE_SELF)
        print(f"{pause:8.0f} {seconds:8.3f} {after.ru_stime - before.ru_stime:9.2f} "
              f"{after.ru_minflt - before.ru_minflt:12d}  {after.ru_maxrss / 2**20:.1f} GiB", flush=True)


if __name__ == "__main__":
    main()
