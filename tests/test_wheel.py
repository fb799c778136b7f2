"""The package as a user installs it: a wheel from `python -m build`, in a fresh virtual env.

Builds from a copy of the sources (so the repo gets no build/ or egg-info), installs the wheel
with its dependencies from the package index (pip's cache makes this a couple of minutes), then,
from a directory outside the repo (so only packaged files can be found), runs the README's
"Library API" example, the packaged configs and the console script.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# The README's "Library API" example; used until the README has that section.
FALLBACK_EXAMPLE = 'import transcendence_jax as tj; print(tj.__version__, len(tj.__all__)); tj.load_config("tiny")'


def _pypi_reachable() -> bool:
    try:
        with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def readme_example(readme: str) -> str | None:
    """The first fenced code block after a heading that names "Library API", if any."""
    m = re.search(r"^#+ .*Library API.*$", readme, re.MULTILINE | re.IGNORECASE)
    if not m:
        return None
    block = re.search(r"^```[ \t]*(?:python|py)?[ \t]*\n(.*?)^```", readme[m.end():], re.MULTILINE | re.DOTALL)
    return block.group(1) if block else None


def test_readme_example_extraction():
    text = "# x\n```\nnot this\n```\n## The Library API\nprose\n```python\nimport transcendence_jax as tj\n```\n"
    assert readme_example(text) == "import transcendence_jax as tj\n"
    assert readme_example("# no such section\n```python\nx = 1\n```\n") is None


def _run(cmd, cwd, timeout, env=None):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    command = " ".join(map(str, cmd))
    assert proc.returncode == 0, f"{command} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv(tmp_path):
    if not _pypi_reachable():
        pytest.skip("no network to PyPI (https://pypi.org unreachable in 5 s): cannot build or install the wheel")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "transcendence_jax", src / "transcendence_jax",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(src)], tmp_path, 600)
    (wheel,) = (tmp_path / "dist").glob("transcendence_jax-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for config in ("tiny", "paper_50m", "paper_302m", "paper_707m"):
        assert f"transcendence_jax/configs/{config}.py" in names, f"{config} config not packaged"
    assert not any(n.startswith(("tests/", "notebooks/", "benchmarks/")) for n in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, 300)
    bin_dir = venv / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], tmp_path, 1200)

    # Outside the repo, with nothing of it on the path: only the installed wheel can answer.
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", JAX_PLATFORMS="cpu")
    python = str(bin_dir / "python")
    example = readme_example((REPO / "README.md").read_text()) or FALLBACK_EXAMPLE
    _run([python, "-c", example], work, 300, env)

    out = _run([python, "-c", (
        "import transcendence_jax as tj\n"
        "print(tj.__file__)\n"
        "for name in ('tiny', 'paper_50m'):\n"
        "    c = tj.load_config(name, ['train.steps=7'])\n"
        "    print(name, c.model.num_layers, c.train.steps)\n"
        "print('public names', len([getattr(tj, n) for n in tj.__all__]))\n")], work, 300, env)
    assert str(venv) in out.splitlines()[0], f"imported from outside the fresh venv: {out}"
    assert "tiny 4 7" in out and "paper_50m 16 7" in out, out
    assert "public names " in out, out  # every public name imports: the wheel declares all it needs

    help_text = _run([str(bin_dir / "transcendence"), "--help"], work, 120, env)
    for command in ("data", "train", "eval", "uci", "demo"):
        assert re.search(rf"^\s+{command}\b", help_text, re.MULTILINE), f"`transcendence --help` lacks {command}"
    assert "usage: transcendence" in _run([python, "-m", "transcendence_jax", "--help"], work, 120, env)
