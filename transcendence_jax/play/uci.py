"""`transcendence uci --workdir DIR --temperature T`: the trained model as a UCI engine.

Any UCI client (python-chess, cutechess, lichess-bot, a chess GUI) can play it. The model
samples one move per `go` at the given temperature from the game so far (the `position`
command's moves are the prompt), renormalised over the legal moves, so it never plays an
illegal move; time controls are ignored (a move takes one decode step). The game is one
Sampler slot: a `position` that extends the previous one (same start, its moves and more)
feeds only the new moves; any other position starts the slot afresh. `go infinite` and
`go ponder` hold their bestmove until `stop` or `ponderhit`, as the protocol asks.

The model loads and compiles in a background thread so that `uci` is answered without waiting
for it (clients time the handshake); `isready` and `go` wait for it. Supported: uci, isready,
ucinewgame, setoption (Temperature, Seed), position startpos|fen ... [moves ...], go ... (its
limits and searchmoves are ignored), stop, ponderhit, quit.
"""

from __future__ import annotations

import argparse
import sys
import threading

import chess

from transcendence_jax.errors import UserError
from transcendence_jax.play.arena import position_problems

GAME_ID = "uci"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True, help="a `transcendence train` workdir")
    parser.add_argument("--temperature", type=float, default=0.001,
                        help="sampling temperature (<= 0.001 is the arg-max; default 0.001)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of the sampler")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")


class UciEngine:
    """The UCI protocol over a Sampler; `load()` returns the model and runs in a thread."""

    def __init__(self, load, *, temperature: float, seed: int = 0, out=sys.stdout):
        self.temperature, self.seed, self.out = temperature, seed, out
        self.board = chess.Board()
        self.pending = None  # the bestmove of a `go infinite` / `go ponder`, sent on stop or ponderhit
        self.sampler, self.error = None, None
        self._thread = threading.Thread(target=self._load, args=(load,), daemon=True)
        self._thread.start()

    def _load(self, load) -> None:
        try:
            from transcendence_jax.sampling.sampler import Sampler

            self.sampler = Sampler(load(), max_games=1, seed=self.seed)
            self.sampler.sample([("warmup", chess.Board(), self.temperature)])  # compile now, not at `go`
            self.sampler.release("warmup")
        except Exception as e:  # reported on the next command that needs the model
            self.error = e

    def _ready(self):
        self._thread.join()
        if self.error is not None:
            if isinstance(self.error, UserError):
                raise self.error
            raise UserError(f"model failed to load: {self.error!r}")
        return self.sampler

    def send(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def handle(self, line: str) -> bool:
        """Answer one command; False after `quit`."""
        words = line.split()
        if not words:
            return True
        cmd, rest = words[0], words[1:]
        if cmd == "uci":
            self.send("id name transcendence-jax")
            self.send("id author transcendence-jax")
            self.send(f"option name Temperature type string default {self.temperature}")
            self.send(f"option name Seed type spin default {self.seed} min 0 max 2147483647")
            self.send("uciok")
        elif cmd == "isready":
            self._ready()
            self.send("readyok")
        elif cmd == "setoption":
            self._setoption(rest)
        elif cmd == "ucinewgame":
            self._ready().release(GAME_ID)
            self.board = chess.Board()
        elif cmd == "position":
            self._position(rest)
        elif cmd == "go":
            move = self._go()
            if "infinite" in rest or "ponder" in rest:
                self.pending = move
            else:
                self.send(f"bestmove {move}")
        elif cmd in ("stop", "ponderhit"):
            if self.pending is not None:
                self.send(f"bestmove {self.pending}")
                self.pending = None
        elif cmd == "quit":
            return False
        elif cmd not in ("debug", "register"):
            self.send(f"info string unknown command {cmd!r}")
        return True

    def _setoption(self, words: list[str]) -> None:
        text = " ".join(words)
        name, _, value = text.removeprefix("name ").partition(" value ")
        try:
            if name.strip().lower() == "temperature":
                from transcendence_jax.sampling.temperature import check_temperature

                self.temperature = check_temperature(float(value))  # ValueError: not a number, NaN, < 0
            elif name.strip().lower() == "seed":
                self._ready().reseed(int(value))
            else:
                self.send(f"info string unknown option {name.strip()!r}")
        except ValueError:
            self.send(f"info string bad value {value!r} for option {name.strip()!r}")

    def _position(self, words: list[str]) -> None:
        try:
            if words[:1] == ["startpos"]:
                board, words = chess.Board(), words[1:]
            elif words[:1] == ["fen"]:
                end = words.index("moves") if "moves" in words else len(words)
                board, words = chess.Board(" ".join(words[1:end])), words[end:]
            else:
                raise ValueError("expected `startpos` or `fen`")
            for uci in words[1:] if words[:1] == ["moves"] else []:
                if not board.push_uci(uci):  # the null move 0000: no move token, not a game move
                    raise ValueError(f"null move {uci!r}")
            if not board.is_valid():
                raise ValueError(position_problems(board))
        except (ValueError, IndexError) as e:
            self.send(f"info string bad position ({e}); keeping the previous one")
            return
        old = self.board
        extends = (board.root().fen() == old.root().fen()
                   and board.move_stack[:len(old.move_stack)] == old.move_stack)
        if not extends and self.sampler is not None:
            self.sampler.release(GAME_ID)  # another game or line: the cache holds none of it
        self.board = board

    def _go(self) -> str:
        sampler = self._ready()
        if self.board.is_game_over():
            return "0000"
        (choice,) = sampler.sample([(GAME_ID, self.board, self.temperature)])
        self.send(f"info string temperature {self.temperature} illegal_draws {choice.illegal}")
        return choice.move.uci()

    def loop(self, lines) -> None:
        for line in lines:
            if not self.handle(line.strip()):
                break


def run(args: argparse.Namespace) -> int:
    def load():
        from transcendence_jax.training.checkpoint import load_model

        return load_model(args.workdir, step=args.step)[0]

    from transcendence_jax.sampling.temperature import check_temperature

    try:
        check_temperature(args.temperature, "--temperature")
    except ValueError as e:
        raise UserError(str(e)) from None
    engine = UciEngine(load, temperature=args.temperature, seed=args.seed)
    engine.loop(sys.stdin)
    engine._thread.join()  # never exit while jax is still loading or compiling in the thread
    return 0
