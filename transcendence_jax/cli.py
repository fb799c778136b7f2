"""`transcendence <command>`: one subcommand per stage, each defined in its own module.

A subcommand module exposes `add_arguments(parser)` and `run(args)`; it is imported only
when its command runs, so `transcendence --help` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

from transcendence_jax.errors import UserError

# (command words, module, one-line help)
COMMANDS = [
    (("data", "build"), "transcendence_jax.data.build",
     "build ArrayRecord datasets from PGN / .zst / .bz2 / Lichess CSV"),
    (("data", "experts"), "transcendence_jax.experts.population", "generate games of synthetic imperfect experts"),
    (("train",), "transcendence_jax.training.train", "train a decoder from a config"),
    (("eval",), "transcendence_jax.play.evaluate", "play a temperature grid against opponents and rate it"),
    (("uci",), "transcendence_jax.play.uci", "run a trained model as a UCI engine"),
    (("demo",), "transcendence_jax.demo", "the whole experiment on the embedded default, on a laptop CPU"),
]


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transcendence", description=__doc__.splitlines()[0])
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module, help_ in COMMANDS:
        target = subs
        if len(words) == 2:
            if words[0] not in groups:
                group = subs.add_parser(words[0], help=f"{words[0]} subcommands")
                groups[words[0]] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            target = groups[words[0]]
        sub = target.add_parser(words[-1], help=help_, description=help_)
        sub.set_defaults(_module=module)
        # Only the command actually invoked imports its module to declare its arguments.
        if list(words) == argv[: len(words)]:
            importlib.import_module(module).add_arguments(sub)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    """The console script (`argv` None: this process is the command's own) or a call from Python."""
    own_process = argv is None
    argv = sys.argv[1:] if own_process else argv
    keep_compiled_programs()
    args = build_parser(argv).parse_args(argv)
    try:
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


if __name__ == "__main__":
    sys.exit(main())
