"""Shared fixtures. Tests that need ../shared skip with a clear message when it is absent."""

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_LICHESS = REPO.parent / "shared" / "data" / "lichess"


@pytest.fixture(scope="session")
def lichess_dir() -> pathlib.Path:
    if not SHARED_LICHESS.is_dir():
        pytest.skip(f"real Lichess games not found at {SHARED_LICHESS} (../shared is absent)")
    return SHARED_LICHESS
