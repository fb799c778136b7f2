"""The notebooks: committed without outputs, and they run top to bottom on the CPU.

The quickstart runs the reduced demo at its smallest (one population, a few games, ten training
steps) in a tmp dir through the env vars its parameter cell reads; explore.ipynb then runs on the
workdir it trained. Executed with nbclient on the python3 kernel of this interpreter.
"""

import pathlib
import time

import nbformat
import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))

# The smallest demo that still runs every stage: ~120 expert games, 10 training steps, a few games a pair.
TINY_DEMO = ";".join([
    "games=120", "games_per_pair=2", "head_to_head=2", "max_plies=30", "analysis_positions=4",
    "training.train.steps=10", "training.train.eval_every=10", "training.train.checkpoint_every=10",
    "training.train.batch_size=8", "training.train.eval_batches=1", "training.train.log_every=5",
])


def test_the_three_notebooks_exist():
    assert {p.stem for p in ALL} >= {"quickstart", "explore", "theory"}


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; strip them before committing"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), f"{path.name} has no parameters cell"


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_first_code_cell_installs_and_a_colab_badge_opens_the_notebook(path):
    """Colab runs a notebook alone: its first code cell must install the package from the one
    repository URL make_notebooks.py sets, and its title carries an Open in Colab badge there."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(source)
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code").source
    assert '"pip", "install"' in first and f'os.environ.get("TJ_REPO_URL", "{source.REPO_URL}")' in first
    assert 'find_spec("transcendence_jax") is None' in first
    url = f"https://colab.research.google.com/github/{source.GITHUB}/blob/{source.BRANCH}/notebooks/{path.name}"
    assert f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})" in nb.cells[0].source
    text = "".join(c.source for c in nb.cells)
    assert "transcendence evaluate" not in text


def test_committed_notebooks_match_their_source(tmp_path):
    """notebooks/make_notebooks.py writes them: edits belong there, not in the .ipynb files."""
    import subprocess
    import sys

    subprocess.run([sys.executable, str(NOTEBOOKS / "make_notebooks.py"), str(tmp_path)], check=True,
                   capture_output=True)
    for path in ALL:
        fresh = tmp_path / path.name
        assert fresh.exists(), f"{path.name} is not written by make_notebooks.py"
        assert nbformat.read(fresh, as_version=4) == nbformat.read(path, as_version=4), (
            f"{path.name} differs from what notebooks/make_notebooks.py writes: edit the source and regenerate")


def _execute(name: str, cwd: pathlib.Path, env: dict, monkeypatch, timeout: int = 600):
    """Run notebooks/<name>.ipynb in `cwd` with `env` set; returns (notebook, all text and data outputs)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    for k, v in env.items():
        monkeypatch.setenv(k, v)  # the kernel inherits this process's environment
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    start = time.time()
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{name}.ipynb failed after {time.time() - start:.0f}s:\n{str(e)[-3000:]}")
    texts, mimes = [], set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            for mime, value in out.get("data", {}).items():
                mimes.add(mime)
                if mime in ("text/plain", "text/markdown"):
                    texts.append(value)
    return "\n".join(texts), mimes


@pytest.mark.slow
def test_quickstart_then_explore_execute(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    out = tmp_path / "run"
    text, mimes = _execute("quickstart", tmp_path, {
        "TJ_SCALE": "reduced", "TJ_POPULATIONS": "diverse", "TJ_OVERRIDES": TINY_DEMO, "TJ_OUT": str(out),
        "TJ_STOCKFISH_GAMES": "2"}, monkeypatch)
    # The demo's printed table, the notebook's Markdown table, the verdict and the figure.
    assert "player" in text and "W/D/L" in text and "95% CI" in text
    assert "| player | Elo | 95% CI | games |" in text
    assert "| model@0.001 |" in text and "| expert0 |" in text and "| base |" in text
    assert "transcend" in text
    assert "image/png" in mimes and (out / "transcendence.png").exists() and (out / "results.json").exists()
    assert "| tau = 0.001 | tau = 1.0 |" in text  # the sampled-moves table of the API section
    assert "loaded" in text and "at step 10" in text

    text, mimes = _execute("explore", tmp_path, {"TJ_WORKDIR": str(out / "diverse" / "train"),
                                                 "TJ_MAX_BLIND": "8"}, monkeypatch)
    assert "step 10" in text and "blind positions" in text
    assert "image/svg+xml" in mimes and "image/png" in mimes
    # the games come from what the demo wrote: its tournament's games.pgn, a game of the model
    assert f"games in {out / 'diverse' / 'tournament' / 'games.pgn'}" in text
    assert "model@0.001 - " in text or " - model@0.001 " in text


@pytest.mark.slow
def test_explore_runs_on_the_shipped_model_without_a_workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    text, mimes = _execute("explore", tmp_path, {"TJ_WORKDIR": str(tmp_path / "none"), "TJ_MAX_BLIND": "4"},
                           monkeypatch)
    assert "pretrained:demo: step 600" in text and "fresh games of the demo's diverse experts" in text
    assert "blind positions" in text and "image/svg+xml" in mimes


@pytest.mark.slow
def test_theory_executes(tmp_path, monkeypatch):
    text, mimes = _execute("theory", tmp_path, {"JAX_PLATFORMS": "cpu"}, monkeypatch, timeout=300)
    assert "| diverse |" in text and "| clones |" in text
    assert "image/png" in mimes and "image/svg+xml" in mimes
    # The diversity condition: the diverse mixture's arg-max errs less often than its best expert.
    row = next(line for line in text.splitlines() if line.startswith("| diverse |"))
    cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
    best_expert, argmax = float(cells[2]), float(cells[4])
    assert argmax < best_expert, row
