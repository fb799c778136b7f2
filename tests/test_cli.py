"""The console script's own behaviour: one subcommand per stage, and the import-time heap frozen."""

import subprocess
import sys
import textwrap

PROBE = '''
import gc, sys
from transcendence_jax import cli
cli.COMMANDS.append((("probe",), "probe_command", "report the garbage collector's frozen objects"))
sys.argv = ["transcendence", "probe"]
if sys.argv[1:] == ["probe"] and MODE == "library":
    cli.main(["probe"])
else:
    sys.exit(cli.main())  # what the `transcendence` console script runs
'''

COMMAND = '''
import gc
def add_arguments(parser):
    pass
def run(args):
    print("frozen", gc.get_freeze_count())
'''


def _frozen(tmp_path, mode: str) -> int:
    (tmp_path / "probe_command.py").write_text(textwrap.dedent(COMMAND))
    out = subprocess.run([sys.executable, "-c", f"MODE = {mode!r}\n" + PROBE], cwd=tmp_path, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin",
                                                             "TJ_COMPILATION_CACHE": "off"}).stdout
    return int(out.split("frozen")[1])


def test_console_script_freezes_the_import_heap(tmp_path):
    """`transcendence ...` (main() with no argv) freezes the heap before the command runs; a library
    call, main([...]), leaves the caller's garbage collector alone."""
    assert _frozen(tmp_path, "script") > 1000
    assert _frozen(tmp_path, "library") == 0


def test_console_script_entry_point():
    """The installed `transcendence` script is cli.main, and `python -m transcendence_jax` is the same program."""
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "transcendence"]
    assert script.value == "transcendence_jax.cli:main"
    out = subprocess.run([sys.executable, "-m", "transcendence_jax", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and all(c in out.stdout for c in ("data", "train", "eval", "uci", "demo"))
