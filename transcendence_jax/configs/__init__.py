"""The packaged config files: `--config NAME` (or `configs/NAME.py`) finds them in an installed wheel.

Model and training: tiny (the CPU demo's decoder), paper_50m, paper_302m, paper_707m (the paper's
shapes). Experiments: demo (diverse vs clones on 2 CPU cores), demo_reduced (its smoke test),
demo_gpu (one GPU).
"""

NAMES = ("tiny", "paper_50m", "paper_302m", "paper_707m", "demo", "demo_reduced", "demo_gpu")
