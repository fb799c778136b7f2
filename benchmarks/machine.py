"""What every benchmark does first: run on the allocator the `transcendence` command runs on, and
print the date, the load average, the cores and that allocator, with a warning when the load makes
timings noise (above half the cores: other work shares the cores, and two frameworks slow down
differently under load, so ratios taken then are not ratios)."""

import os
import sys
import time

from transcendence_jax.cli import retain_freed_memory


def report_load() -> float:
    """Re-execute this benchmark on `transcendence`'s allocator (TJ_MALLOC=system: glibc's), print
    the machine's state; return the 1-minute load average."""
    retain_freed_memory()
    one, five, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    allocator = "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "the system's malloc"
    print(f"{time.strftime('%Y-%m-%d %H:%M')}: load average {one:.2f} (5 min {five:.2f}) on {cores} cores, "
          f"{allocator}", flush=True)
    if one > cores / 2:
        print(f"warning: load average {one:.2f} is above half of the {cores} cores: these timings are not "
              "comparable with an idle machine's; rerun when it is idle", file=sys.stderr, flush=True)
    return one
