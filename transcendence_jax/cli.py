"""`transcendence <command>`: one subcommand per stage, each defined in its own module.

A subcommand module exposes `add_arguments(parser)` and `run(args)`; it is imported only
when its command runs, so `transcendence --help` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes.util
import errno
import gc
import importlib
import logging
import os
import re
import sys
import traceback

from transcendence_jax.errors import UserError

# (command words, module, one-line help)
COMMANDS = [
    (("data", "build"), "transcendence_jax.data.build",
     "build ArrayRecord datasets from PGN / .zst / .bz2 / Lichess CSV"),
    (("data", "experts"), "transcendence_jax.experts.population", "generate games of synthetic imperfect experts"),
    (("train",), "transcendence_jax.training.train", "train a decoder from a config"),
    (("eval",), "transcendence_jax.play.evaluate", "play a temperature grid against opponents and rate it"),
    (("uci",), "transcendence_jax.play.uci", "run a trained model as a UCI engine"),
    (("demo",), "transcendence_jax.demo", "an experiment config end to end (default: the demo's, on 2 CPU cores)"),
    (("sweep",), "transcendence_jax.sweep", "a grid of experiments (configs/sweeps/), resumable, one point or all"),
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, as `(default: X)` (an option with no help text gets
    just that), except where there is nothing to show (None, a flag's False) or the help already
    says it."""

    def add_argument(self, action):
        if action.help is None and self._shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        super().add_argument(action)

    @staticmethod
    def _shows_default(action) -> bool:
        return bool(action.option_strings) and action.default is not None and action.default is not False \
            and action.default is not argparse.SUPPRESS

    def _get_help_string(self, action):
        help_ = action.help or ""
        if not self._shows_default(action) or "default" in help_:
            return help_
        return super()._get_help_string(action)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from transcendence_jax import __version__

    parser = argparse.ArgumentParser(prog="transcendence", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"transcendence-jax {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module, help_ in COMMANDS:
        target = subs
        if len(words) == 2:
            if words[0] not in groups:
                group = subs.add_parser(words[0], help=f"{words[0]} subcommands", formatter_class=HelpFormatter)
                groups[words[0]] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            target = groups[words[0]]
        sub = target.add_parser(words[-1], help=help_, description=help_, formatter_class=HelpFormatter)
        sub.set_defaults(_module=module)
        # Only the command actually invoked imports its module to declare its arguments.
        if list(words) == argv[: len(words)]:
            importlib.import_module(module).add_arguments(sub)
    return parser


def retain_freed_memory() -> None:
    """Re-run this command with jemalloc keeping the memory it frees (TJ_MALLOC=system: don't).

    XLA:CPU allocates a step's temporaries afresh every step, and glibc hands blocks over 32 MB
    back to the kernel on free: every step faults and zeroes its memory again, and on a VM that
    reports free pages to its host, a step after a pause also waits for the host to back them.
    jemalloc with one arena that never purges reuses the pages instead (benchmarks/RESULTS.md,
    "The allocator": faster steps for the demo and 26M shapes, a higher peak RSS at 26M). An
    allocator is chosen when a process starts, hence the re-exec with LD_PRELOAD, before JAX is
    imported. Nothing happens off Linux, where jemalloc is already preloaded, or where
    libjemalloc is not installed (`apt-get install libjemalloc2`; `make setup` does)."""
    if sys.platform != "linux" or os.environ.get("TJ_MALLOC", "").lower() == "system":
        return
    preload = os.environ.get("LD_PRELOAD", "")
    library = ctypes.util.find_library("jemalloc")
    if "jemalloc" in preload or library is None:
        return
    env = dict(os.environ, LD_PRELOAD=f"{library} {preload}".strip())
    env.setdefault("MALLOC_CONF", "narenas:1,dirty_decay_ms:-1,muzzy_decay_ms:-1")
    os.execve(sys.executable, sys.orig_argv, env)


def keep_compiled_programs() -> None:
    """Let a rerun of train, eval, uci or demo load its XLA programs from disk instead of
    compiling them again (JAX's persistent compilation cache, for compiles over 0.5 s): in the
    folder TJ_COMPILATION_CACHE names ("off": none), else JAX_COMPILATION_CACHE_DIR if set, else
    ~/.cache/transcendence_jax/xla. Set through the environment before JAX is imported, so
    subprocesses (the demo's populations) share it."""
    chosen = os.environ.get("TJ_COMPILATION_CACHE", "")
    if chosen.lower() == "off":
        os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
        return
    if chosen:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = chosen
    else:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "transcendence_jax", "xla"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


def freeze_imports() -> None:
    """Move the objects alive now (the imports: jax, flax, numpy) out of the garbage collector's
    reach. Games allocate python-chess objects that live as long as the game and set off full
    collections; without this each one rescans the whole import-time heap."""
    gc.freeze()


# errno -> (what went wrong, the remedy) for the path and disk problems a user fixes outside the program.
_FULL = ("disk full writing", "free space there or write elsewhere, then rerun (train and eval resume "
         "from what they finished)")
PATH_PROBLEMS = {
    errno.ENOSPC: _FULL,
    errno.EDQUOT: _FULL,
    errno.EROFS: ("cannot write", "that filesystem is read-only: pick a path on a writable one"),
    errno.EACCES: ("cannot access", "pick a path you may write, or change its permissions"),
    errno.EPERM: ("cannot access", "pick a path you may write, or change its permissions"),
    errno.ENOTDIR: ("cannot use", "a part of that path is a file, not a directory: pick another path"),
    errno.EISDIR: ("cannot write", "that path is a directory: name a file instead"),
    errno.EEXIST: ("cannot create", "something already exists there: remove it or pick another path"),
}


def path_problem(error: BaseException) -> str | None:
    """`<what> <path>: <reason>; <remedy>` when `error` (or what caused it) is a path or disk
    problem from PATH_PROBLEMS, else None. Native writers (tensorstore, under orbax) report these
    as text with the OS error code, so their messages are read too."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError):
            number, path = error.errno, error.filename2 or error.filename
        else:
            code = re.search(r"os_error_code='(\d+)'|\[Errno (\d+)\]", str(error))
            number = code and int(code.group(1) or code.group(2))
            paths = re.findall(r'["\'](/[^"\']+)["\']', str(error))  # the file named last is the one that failed
            path = paths[-1] if paths else None
        if number in PATH_PROBLEMS:
            what, remedy = PATH_PROBLEMS[number]
            return f"{what}{f' {path}' if path else ''}: {os.strerror(number)}; {remedy}"
        # What caused it; what it happened while handling only when it is itself an OS error (a
        # TypeError raised during an OSError's cleanup is a bug to show, not a path problem).
        error = error.__cause__ or (error.__context__ if isinstance(error, OSError) or number else None)
    return None


class BackgroundEchoes:
    """Holds what background threads say about a path or disk failure: orbax's writer threads and
    asyncio log it with tracebacks, and callbacks into their closed event loops raise "Event loop
    is closed". The main thread meets the same failure and main() reports it in one line
    (`forget()`); when it does not, what was held is printed on exit, so nothing is lost, unless
    all of it is "Event loop is closed": that only echoes a failure reported elsewhere (a failed
    checkpoint read, one warning line). A hook installed on top of this one while it was active
    (the checkpoint reader's filter) stays in place on exit: this one then passes everything on."""

    LOGGERS = ("absl", "asyncio")  # orbax logs through absl

    def __init__(self):
        self.held: list[tuple[str, bool]] = []  # (what was said, whether it names a path problem)
        self._hook = sys.unraisablehook
        self._active = False

    def _hold(self, error, text) -> bool:
        """Holds `text` (formatted only when held) if `error` is an echo; says whether it was."""
        if error is None:
            return False
        problem = path_problem(error) is not None
        if problem or (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            self.held.append((text(), problem))
            return True
        return False

    def _unraisable(self, u) -> None:
        if not (self._active and self._hold(u.exc_value, lambda: "".join(
                traceback.format_exception(u.exc_type, u.exc_value, u.exc_traceback)))):
            self._hook(u)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self._hold(record.exc_info[1] if record.exc_info else None,
                              lambda: logging.Formatter().format(record))

    def __enter__(self):
        self._active = True
        sys.unraisablehook = self._unraisable
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def forget(self) -> None:
        """The failure was reported: finalize the failed writers' tasks now and drop their echoes.
        Left alone, they would be finalized at the interpreter's shutdown, after its import system
        is gone, each printing a traceback that ends in "ImportError: sys.meta_path is None"."""
        gc.collect()
        self.held = []

    def __exit__(self, *exc):
        self._active = False
        if sys.unraisablehook == self._unraisable:  # a bound method: equal, not identical
            sys.unraisablehook = self._hook
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)
        if any(problem for _, problem in self.held):
            for text, _ in self.held:
                print(text, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """The console script (`argv` None: this process is the command's own) or a call from Python.

    A UserError, or a path or disk problem (path_problem), is one line `error: ...` and exit 2."""
    own_process = argv is None
    if own_process:
        retain_freed_memory()
    argv = sys.argv[1:] if own_process else argv
    keep_compiled_programs()
    echoes = BackgroundEchoes() if own_process else None
    with echoes or contextlib.nullcontext():
        try:
            args = build_parser(argv).parse_args(argv)
            command = importlib.import_module(args._module)
            if own_process:  # not when called as a library: the caller's objects are its own business
                freeze_imports()
            return command.run(args) or 0
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as e:
            problem = path_problem(e)
            if problem is None:
                raise
        # Out of the except block: the error's traceback, and the failed writers it holds, are freed.
        print(f"error: {problem}", file=sys.stderr)
        if echoes is not None:
            echoes.forget()
        return 2


if __name__ == "__main__":
    sys.exit(main())
