"""The one JSONL helper, for the files runs append to a row at a time (games, model stats, metrics).

A process killed mid-write leaves a torn last line: `read` drops it and, with repair=True (the
run that will append again, on resume), rewrites a local file without it, so the next `append`
starts on a line of its own; a plain reader never writes (a read-only copy, or a live run's file). Any other line
that is not JSON means the file is not ours or was edited: a UserError naming file and line
(blank lines carry no row and are skipped). `rewrite` replaces a file all at once (a temporary
file renamed over it): a crash leaves the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

from transcendence_jax.errors import UserError


def read(path, *, repair: bool = False) -> list[dict]:
    """The rows of a JSONL file ([] when it does not exist); a local path or a URL (gs://...).
    repair: rewrite a local file whose last line is torn (only the process that appends to it)."""
    url = "://" in str(path)
    if url:
        from etils import epath

        if not epath.Path(path).exists():
            return []
        text = epath.Path(path).read_text()
    elif not os.path.exists(path):
        return []
    else:
        with open(path) as f:
            text = f.read()
    lines = text.splitlines()
    rows, torn = [], bool(text) and not text.endswith("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise UserError(f"{path}, line {i + 1}: not JSON ({line[:60]!r}); the file is not one this "
                                "program wrote whole: fix or delete that line") from None
            torn = True
    if torn and repair and not url:
        rewrite(path, rows)
    return rows


def append(path, rows: Iterable[dict]) -> None:
    """Append rows to a local file, one line each, flushed before returning."""
    try:
        with open(path, "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    except OSError as e:
        e.filename = e.filename or os.fspath(path)  # a failed write (a full disk) names no file
        raise


def rewrite(path, rows: Iterable[dict | str]) -> None:
    """Replace a local file's contents atomically: dicts become JSON lines, strings are written as they are."""
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w") as f:
        f.writelines(row if isinstance(row, str) else json.dumps(row) + "\n" for row in rows)
    os.replace(tmp, path)
