"""Shared fixtures. Tests that need ../shared skip with a clear message when it is absent."""

import atexit
import os
import pathlib
import shutil
import tempfile

import pytest

# The CLI keeps compiled XLA programs in ~/.cache (cli.keep_compiled_programs): the suite's CLI
# subprocesses use a throwaway folder instead.
if "TJ_COMPILATION_CACHE" not in os.environ:
    os.environ["TJ_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="tj-test-xla-")
    atexit.register(shutil.rmtree, os.environ["TJ_COMPILATION_CACHE"], True)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_LICHESS = REPO.parent / "shared" / "data" / "lichess"


@pytest.fixture(scope="session")
def lichess_dir() -> pathlib.Path:
    if not SHARED_LICHESS.is_dir():
        pytest.skip(f"real Lichess games not found at {SHARED_LICHESS} (../shared is absent)")
    return SHARED_LICHESS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """A small dataset of random games (test_train.write_games), one per test module that asks."""
    from test_train import write_games

    return write_games(str(tmp_path_factory.mktemp("games")))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    """One persistent compilation cache for a module's training runs (same programs)."""
    return str(tmp_path_factory.mktemp("cache"))
