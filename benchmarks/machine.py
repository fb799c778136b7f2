"""What every benchmark prints first: the date, the load average and the cores, with a warning when
the load makes timings noise (above half the cores: other work shares the cores, and two frameworks
slow down differently under load, so ratios taken then are not ratios)."""

import os
import sys
import time


def report_load() -> float:
    """Print the machine's state; return the 1-minute load average."""
    one, five, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    print(f"{time.strftime('%Y-%m-%d %H:%M')}: load average {one:.2f} (5 min {five:.2f}) on {cores} cores", flush=True)
    if one > cores / 2:
        print(f"warning: load average {one:.2f} is above half of the {cores} cores: these timings are not "
              "comparable with an idle machine's; rerun when it is idle", file=sys.stderr, flush=True)
    return one
