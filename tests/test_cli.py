"""The console script's own behaviour: one subcommand per stage, the import-time heap frozen, and
the allocator that keeps freed memory."""

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
    print("jemalloc" if "jemalloc" in open("/proc/self/maps").read() else "system malloc")
    print("frozen", gc.get_freeze_count())
'''


def _probe(tmp_path, mode: str, **env) -> str:
    """What the probe command printed, run as the console script or as a library call."""
    (tmp_path / "probe_command.py").write_text(textwrap.dedent(COMMAND))
    return subprocess.run([sys.executable, "-c", f"MODE = {mode!r}\n" + PROBE], cwd=tmp_path, check=True,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin:/sbin",
                               "TJ_COMPILATION_CACHE": "off", **env}).stdout


def _frozen(tmp_path, mode: str) -> int:
    return int(_probe(tmp_path, mode).split("frozen")[1])


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


def test_console_script_runs_on_an_allocator_that_keeps_freed_memory(tmp_path):
    """`transcendence ...` re-executes itself, once and with the same arguments, on jemalloc
    (`make setup` installs libjemalloc2); TJ_MALLOC=system and library calls keep the process's
    allocator."""
    assert _probe(tmp_path, "script").splitlines()[0] == "jemalloc", "is libjemalloc2 installed? (make setup)"
    assert _probe(tmp_path, "script", TJ_MALLOC="system").splitlines()[0] == "system malloc"
    assert _probe(tmp_path, "library").splitlines()[0] == "system malloc"


class _RaisesOnCollection:
    def __init__(self, error):
        self.error = error

    def __del__(self):
        raise self.error


def test_a_hook_installed_over_the_background_echoes_outlives_them():
    """The checkpoint reader's filter goes on top of the echoes' hook; their exit must not take it
    away, or the failed read's late "Event loop is closed" errors print at the end of a run."""
    from transcendence_jax.cli import BackgroundEchoes

    original, reported = sys.unraisablehook, []
    sys.unraisablehook = lambda u: reported.append(str(u.exc_value))  # Python's default, recorded
    try:
        with BackgroundEchoes():
            below = sys.unraisablehook

            def drops_closed_loops(u):
                if str(u.exc_value) != "Event loop is closed":
                    below(u)
            sys.unraisablehook = drops_closed_loops
        assert sys.unraisablehook is drops_closed_loops
        _RaisesOnCollection(RuntimeError("Event loop is closed"))
        _RaisesOnCollection(ValueError("a real error"))
    finally:
        sys.unraisablehook = original
    assert reported == ["a real error"]


def test_background_echoes_print_a_path_problem_no_one_reported(capsys):
    """Held echoes print on exit when they name a path problem (with their closed loops), and not
    when all they say is "Event loop is closed" (a failed read, already one warning line)."""
    import errno
    import os

    from transcendence_jax.cli import BackgroundEchoes

    with BackgroundEchoes():
        _RaisesOnCollection(RuntimeError("Event loop is closed"))
    assert capsys.readouterr().err == ""
    with BackgroundEchoes():
        _RaisesOnCollection(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/full/disk/file"))
        _RaisesOnCollection(RuntimeError("Event loop is closed"))
    stderr = capsys.readouterr().err
    assert "/full/disk/file" in stderr and "Event loop is closed" in stderr, stderr
