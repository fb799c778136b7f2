"""One process at a time in a directory: `train` holds its workdir, `eval` its output directory.

Two trainers on one workdir would interleave metrics rows and overwrite each other's
checkpoints; two evals on one output directory would play the same games twice. The lock is
a POSIX record lock (`fcntl.lockf`) on `DIR/.lock`, which holds the holder's process id for
the message. The kernel releases it when the process exits in any way, kill -9 included, so a
stale lock never blocks anyone: the file stays, the lock does not. Record locks belong to the
process, not to children it forks (data-loader workers), and work over NFS.

URL directories (gs://...) are not locked: object stores have no locks, and there the runs
are launched by a pod script (one per workdir) rather than by hand.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os

from transcendence_jax.errors import UserError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def hold(directory, command: str, option: str):
    """Hold `directory`'s lock (creating the directory) for `transcendence <command>`; another
    process holding it is a UserError naming `option` (the flag that picks another directory)."""
    directory = os.fspath(directory)
    if "://" in directory:
        yield
        return
    path = os.path.join(directory, LOCK_FILE)
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"cannot use {directory} for `transcendence {command}`: {e.strerror}; "
                        f"pass a writable directory as {option}") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            holder = os.pread(fd, 100, 0).decode(errors="replace").split()
            who = f" (process {holder[0]})" if holder else ""
            raise UserError(f"{directory} is in use by another `transcendence {command}`{who}; wait for it to "
                            f"finish or stop it, or pass another {option}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
