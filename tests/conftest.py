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
