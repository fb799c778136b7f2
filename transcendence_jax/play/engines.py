"""UCI engines (Stockfish) as arena players, served by a pool of engine processes.

Strength must not depend on the machine or on how many engines share its cores, so the default
limits are nodes or depth, never time. Stockfish's "Skill Level" L picks its handicapped move at
search depth 1 + L (Skill::time_to_pick), so `sfL` = skill L searched to depth L + 1 applies the
paper's move-choice rule (skill L at 0.1 s a move) on any machine; `sfL@0.1s` is its clock itself.

A pool runs one engine process per worker thread; one that dies or hangs (no answer within
`timeout` seconds) is killed, replaced, and asked the same position again. Every search starts
with `ucinewgame` (a cleared hash), so a node- or depth-limited move depends only on its game,
not on what the process searched before. (Skill below 20 draws its handicapped move from a
clock-seeded generator: those opponents are never reproducible move for move.) The pool speaks
UCI over the pipes itself (`UCIProcess`): python-chess's engine module spends much more of this
process's CPU a move, holding the GIL the sampler needs.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import chess
import chess.engine

from transcendence_jax.errors import UserError
from transcendence_jax.play.players import MoveChoice

INSTALL_HINT = "install it with `apt-get install stockfish` or set STOCKFISH_PATH to the binary"


def find_stockfish(path: str | None = None) -> str:
    """The Stockfish binary: the flag, then $STOCKFISH_PATH, then PATH, then /usr/games."""
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise UserError(f"engine {path!r} is not an executable file; pass the path of a UCI engine")
        return path
    env = os.environ.get("STOCKFISH_PATH")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise UserError(f"STOCKFISH_PATH={env!r} is not an executable file; {INSTALL_HINT}")
        return env
    found = shutil.which("stockfish") or shutil.which("stockfish", path="/usr/games")
    if not found:
        raise UserError(f"Stockfish not found (flag, STOCKFISH_PATH, PATH, /usr/games); {INSTALL_HINT}")
    return found


def search_hash_mb(limit: chess.engine.Limit) -> int:
    """The hash size for a search: 1 MB for small, clock-free ones (depth <= 7 or <= 2,000 nodes),
    16 MB (Stockfish's default) otherwise. Clearing a 16 MB table before every move costs about as
    much as a small search; small searches are far from filling 1 MB and play the same moves."""
    small = limit.time is None and ((limit.depth is not None and limit.depth <= 7)
                                    or (limit.nodes is not None and limit.nodes <= 2000))
    return 1 if small else 16


class EngineFailed(Exception):
    """The engine process exited, stopped answering, or gave no move."""


class UCIProcess:
    """One UCI engine process over its pipes: the commands a move needs and nothing else. No
    threads: an engine left running quits by itself when this process exits (EOF)."""

    def __init__(self, path: str, timeout: float):
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: it never blocks the engine; read when it dies
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, bufsize=0)
        self.pid, self._sent = self.proc.pid, {}
        self._partial, self._lines = b"", collections.deque()  # output read but not yet taken
        try:
            answer = self.ask("uci", until="uciok", timeout=timeout)
        except EngineFailed as e:
            how = self.how_it_ended()
            self.kill()  # not a UCI engine, or too slow to start: leave no process behind
            raise EngineFailed(f"{e}{how}") from None
        self.options = {line.split(" type ")[0][len("option name "):]
                        for line in answer if line.startswith("option name ")}

    def send(self, *lines: str) -> None:
        data = "".join(f"{line}\n" for line in lines).encode()
        try:
            while data:
                data = data[os.write(self.proc.stdin.fileno(), data):]
        except (OSError, ValueError) as e:
            raise EngineFailed(f"engine exited ({e})") from e

    def ask(self, *commands: str, until: str, timeout: float) -> list[str]:
        """Send `commands`; the lines answered up to and including the first that starts with `until`."""
        self.send(*commands)
        deadline, lines, fd = time.monotonic() + timeout, [], self.proc.stdout.fileno()
        while True:
            while self._lines:
                lines.append(self._lines.popleft())
                if lines[-1].startswith(until):
                    return lines
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise EngineFailed(f"no {until!r} within {timeout:g} s")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EngineFailed("engine exited")
            *done, self._partial = (self._partial + chunk).split(b"\n")
            self._lines.extend(line.decode(errors="replace").strip() for line in done)

    def setoption(self, name: str, value) -> None:
        if name in self.options and self._sent.get(name) != value:
            self.send(f"setoption name {name} value {value}")
            self._sent[name] = value

    def play(self, board: chess.Board, limit: chess.engine.Limit, timeout: float) -> chess.Move:
        """The engine's move in `board` (its game from the root, so repetitions count), searched
        from a cleared hash."""
        self.ask("ucinewgame", "isready", until="readyok", timeout=timeout)
        root = board.root().fen()
        moves = " ".join(m.uci() for m in board.move_stack)
        go = "".join(f" {k} {v}" for k, v in (("nodes", limit.nodes), ("depth", limit.depth),
                                               ("movetime", limit.time and round(1000 * limit.time))) if v)
        position = ("position startpos" if root == chess.STARTING_FEN else f"position fen {root}") + \
            (f" moves {moves}" if moves else "")
        word = self.ask(position, "go" + go, until="bestmove", timeout=timeout)[-1].split()
        move = chess.Move.from_uci(word[1]) if len(word) > 1 and word[1] != "(none)" else None
        if move is None or not board.is_legal(move):
            raise EngineFailed(f"engine answered {' '.join(word)!r}")
        return move

    def how_it_ended(self) -> str:
        """", exit code N, stderr: ..." once the process has exited by itself ("" while it runs)."""
        try:
            code = self.proc.wait(timeout=1)  # its output ends a moment before it exits
        except subprocess.TimeoutExpired:
            return ""
        how = f", killed by signal {-code}" if code < 0 else f", exit code {code}"
        self._stderr.seek(0)
        tail = self._stderr.read()[-300:].decode(errors="replace").strip().replace("\n", " | ")
        return how + (f", stderr: {tail}" if tail else ", nothing on stderr")

    def quit(self) -> None:
        try:
            self.send("quit")
            self.proc.wait(timeout=2)
        except (EngineFailed, subprocess.TimeoutExpired):
            self.kill()
        self.proc.stdout.close()
        self.proc.stdin.close()

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._stderr.close()


class EnginePool:
    """One engine process per worker thread; `choose` asks all its requests in parallel."""

    START_TRIES = 3  # starts of an engine process before giving up
    _shared: dict[tuple, "EnginePool"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, path: str | None = None, *, workers: int | None = None, threads: int = 1,
                 hash_mb: int | None = None, timeout: float = 30.0, retries: int = 3):
        self.path = find_stockfish(path)
        self.workers = workers or os.cpu_count() or 1
        self.options = {"Threads": threads}
        self.hash_mb = hash_mb  # None: by the search (search_hash_mb)
        self.timeout, self.retries = timeout, retries
        self.restarts = 0  # engine processes replaced after a crash or a hang
        self._local = threading.local()
        self._engines: list[UCIProcess] = []
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="engine")
        self._key = None

    @classmethod
    def shared(cls, path: str | None = None, *, threads: int = 1, hash_mb: int | None = None) -> "EnginePool":
        """The pool every EnginePlayer with these settings uses unless given one (one backend)."""
        key = (find_stockfish(path), threads, hash_mb)
        with cls._shared_lock:
            pool = cls._shared.get(key)
            if pool is None or pool._executor is None:
                pool = cls._shared[key] = cls(key[0], threads=threads, hash_mb=hash_mb)
                pool._key = key
        return pool

    def pids(self) -> list[int]:
        with self._lock:
            return [e.pid for e in self._engines]

    def _start(self) -> UCIProcess:
        """A new engine process. One that dies while starting (a transient failure on a loaded
        machine) is started again, START_TRIES times in all; the error then says how it died."""
        for _ in range(self.START_TRIES):
            try:
                # Starting is slow on a loaded machine: a generous limit, apart from the move timeout.
                engine = UCIProcess(self.path, timeout=max(30.0, self.timeout))
                break
            except (OSError, EngineFailed) as e:
                failure = f"{type(e).__name__}: {e}" if isinstance(e, OSError) else str(e)
        else:
            raise UserError(f"cannot start engine {self.path!r}: it died while starting, {self.START_TRIES} times "
                            f"(last: {failure}); check that it is a UCI engine that runs on this machine "
                            f"(run it and type `uci`), or pass another with --stockfish or STOCKFISH_PATH")
        for name, value in self.options.items():
            engine.setoption(name, value)
        with self._lock:
            self._engines.append(engine)
        return engine

    def _kill(self, engine: UCIProcess) -> None:
        with self._lock:
            if engine in self._engines:
                self._engines.remove(engine)
        engine.kill()

    def _play(self, player: "EnginePlayer", game_id: str, board: chess.Board) -> chess.Move:
        """One move in this worker thread's engine; a dead or hung engine is replaced."""
        for attempt in range(self.retries + 1):
            engine = getattr(self._local, "engine", None)
            if engine is None:
                engine = self._local.engine = self._start()
            try:
                engine.setoption("Skill Level", 20 if player.skill is None else player.skill)
                engine.setoption("Hash", self.hash_mb or search_hash_mb(player.limit))  # sent when it changes
                return engine.play(board, player.limit, self.timeout + (player.limit.time or 0.0))
            except EngineFailed as e:
                self._kill(engine)
                self._local.engine = None
                self.restarts += 1
                if attempt == self.retries:
                    raise UserError(f"engine {self.path} failed {attempt + 1} times on game {game_id} "
                                    f"at {board.fen()} ({e}); finished games are kept, rerun to resume") from e
        raise AssertionError("unreachable")

    def choose(self, requests):
        futures = [self._executor.submit(self._play, p, s.game_id, s.board.copy()) for p, s in requests]
        return [MoveChoice(f.result()) for f in futures]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            engines, self._engines = self._engines, []
        for engine in engines:
            engine.quit()
        with EnginePool._shared_lock:
            if self._key is not None and EnginePool._shared.get(self._key) is self:
                del EnginePool._shared[self._key]


class EnginePlayer:
    """A UCI engine at a fixed strength. Players sharing a pool are one arena backend."""

    def __init__(self, name: str, *, path: str | None = None, skill: int | None = None,
                 nodes: int | None = None, depth: int | None = None, movetime: float | None = None,
                 threads: int = 1, hash_mb: int | None = None, pool: EnginePool | None = None):
        if nodes is None and depth is None and movetime is None:
            if skill is not None:  # the paper's move-choice rule, machine-independent (see top)
                depth = skill + 1
            else:
                raise UserError(f"engine player {name!r} has no limit; give nodes, depth or movetime")
        if ((nodes is not None and nodes < 1) or (depth is not None and depth < 1)
                or (movetime is not None and movetime < 1e-3)):
            raise UserError(f"engine player {name!r}: nodes and depth must be >= 1 and movetime >= 0.001 s "
                            "(a zero limit would mean an unbounded search)")
        self.name, self.skill, self.nodes, self.depth, self.movetime = name, skill, nodes, depth, movetime
        self.limit = chess.engine.Limit(nodes=nodes, depth=depth, time=movetime)
        self.backend = pool or EnginePool.shared(path, threads=threads, hash_mb=hash_mb)

    def describe(self) -> dict:
        return {k: v for k, v in dict(skill=self.skill, nodes=self.nodes, depth=self.depth,
                                      movetime=self.movetime).items() if v is not None}


def parse_engine_spec(spec: str, *, path: str | None = None, pool: EnginePool | None = None) -> EnginePlayer:
    """An opponent from a spec: `sf3` (skill 3 at depth 4), `sf3@0.1s` (skill 3 at 0.1 s a move,
    the paper's), or `key=value` pairs among skill, nodes, depth, movetime (e.g. `nodes=50`,
    `skill=5,depth=8`). The spec is the player's name."""
    spec = spec.strip()
    kw: dict = {}
    try:
        if spec.startswith("sf"):
            level, _, time_ = spec[2:].partition("@")
            kw["skill"] = int(level)
            if time_:
                kw["movetime"] = float(time_.removesuffix("s"))
            else:
                kw["depth"] = kw["skill"] + 1
        else:
            for part in spec.split(","):
                key, _, value = part.partition("=")
                if key not in ("skill", "nodes", "depth", "movetime"):
                    raise ValueError(key)
                kw[key] = float(value) if key == "movetime" else int(value)
    except ValueError:
        raise UserError(f"opponent {spec!r} not understood; use sfN, sfN@0.1s or skill=N,nodes=N,depth=N,movetime=S "
                        "(separate opponents with ',' or ';')") from None
    if kw.get("skill") is not None and not 0 <= kw["skill"] <= 20:
        raise UserError(f"opponent {spec!r}: Stockfish skill levels are 0..20")
    return EnginePlayer(spec, path=path, pool=pool, **kw)
