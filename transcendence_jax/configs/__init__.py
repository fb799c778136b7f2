"""The canonical config files, packaged so an installed wheel finds them by name.

`configs/*.py` at the repository root re-export these (same names), for `--config configs/tiny.py`.
"""

NAMES = ("tiny", "paper_50m", "paper_302m", "paper_707m")
