#!/usr/bin/env bash
# Run the quickstart as Colab would: a fresh virtual environment where transcendence_jax is not
# importable, so the notebook's install cell pip-installs the package from a git URL (with all
# its dependencies from PyPI), then the smallest demo top to bottom on a fresh kernel.
#
#   notebooks/colab_check.sh [REPO_URL]    # default: this checkout's HEAD, as a git URL
#
# (pip 23 rejects git+file:///path in a "name @ url" requirement; git+file://localhost/path works.)
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
REPO_URL="${1:-git+file://localhost${HERE}@$(git -C "$HERE" rev-parse HEAD)}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q nbclient nbformat ipykernel
"$WORK/venv/bin/python" -m ipykernel install --prefix "$WORK/venv" --name colab-check > /dev/null
export JUPYTER_PATH="$WORK/venv/share/jupyter" TJ_REPO_URL="$REPO_URL" TJ_SCALE=reduced TJ_POPULATIONS=diverse
export TJ_OUT="$WORK/out" TJ_STOCKFISH_GAMES=1
export TJ_OVERRIDES="games=120;games_per_pair=2;head_to_head=2;max_plies=30;analysis_positions=4;training.train.steps=10;training.train.eval_every=10;training.train.checkpoint_every=10;training.train.batch_size=8;training.train.eval_batches=1;training.train.log_every=5"
"$WORK/venv/bin/python" - "$HERE/notebooks/quickstart.ipynb" "$WORK" <<'PY'
import os, sys, time
import nbformat
from nbclient import NotebookClient

nb = nbformat.read(sys.argv[1], as_version=4)
t0 = time.time()
NotebookClient(nb, timeout=1800, kernel_name="colab-check", resources={"metadata": {"path": sys.argv[2]}}).execute()
installed = any("installing transcendence-jax" in o.get("text", "") for c in nb.cells if c.cell_type == "code"
                for o in c.outputs)
assert installed, "the install cell did not install the package: was transcendence_jax importable already?"
print(f"quickstart: installed from {os.environ['TJ_REPO_URL']} and ran top to bottom in {time.time() - t0:.0f} s")
PY
