"""`transcendence uci --workdir DIR | --pretrained NAME`: a trained model as a UCI engine.

Any UCI client (python-chess, cutechess, lichess-bot, a chess GUI) can play it. The model
samples one move per `go` at the given temperature from the game so far (the `position`
command's moves are the prompt), renormalised over the legal moves, so it never plays an
illegal move; time controls are ignored (a move takes one decode step). The game is one
Sampler slot: a `position` that extends the previous one feeds only the new moves; any other
position starts the slot afresh. `go infinite` and `go ponder` hold their bestmove until `stop`
or `ponderhit`, as the protocol asks.

What a `go` prints, as engines do (the model searches nothing: depth 1, one node):
- `info depth 1 seldepth 1 multipv 1 score cp S nodes 1 pv MOVE string MOVE P% at tau 1, Q% at
  tau T`: the move played, P its probability under the model's policy (tau 1, renormalised over
  the legal moves) and Q at the engine's temperature T (100% at T <= 0.001: the arg-max is a
  one-hot). With `setoption name MultiPV value k` (k > 1): k such lines, the policy's k likeliest
  moves (the move played is sampled at T; at T <= 0.001 it is line 1).
- S is not an evaluation of the position (the model has no value head): it is the policy's
  confidence in the move, P read as a win probability on the Elo scale, S = 400 log10(P / (1 - P))
  with P clipped to [1e-4, 1 - 1e-4]: 0 at P = 1/2, +191 at 3/4, -512 at 1/20 (one of 20 moves alike).
- `bestmove (none)` only when the side to move has no legal move (mate, stalemate); a drawn
  position with moves left (K v K) still gets a move. `bestmove 0000` (the null move) after a
  position the engine refused, with an `info string` saying why: an invalid one, or a `position
  fen` other than the standard start for a model without board input (its prompt is the moves
  alone, so it cannot be told where the pieces are).

The model loads and compiles in a background thread so that `uci` is answered at once (clients
time the handshake); `id name` gives the version, the checkpoint step (found jax-free; an
`info string` follows if load_model had to fall back to an older step) and the temperature.
`isready` and `go` wait for it. Supported: uci, isready, ucinewgame, setoption (Temperature,
Seed, MultiPV), position startpos|fen ... [moves ...], go ... (its limits and searchmoves are
ignored), stop, ponderhit, quit.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading

import chess

from transcendence_jax.errors import UserError
from transcendence_jax.play.openings import position_problems

GAME_ID = "uci"
MAX_MULTIPV = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--workdir", help="a `transcendence train` workdir, or an experiment or demo folder holding one")
    where.add_argument("--pretrained", metavar="NAME", help="a model shipped in the package (demo)")
    parser.add_argument("--temperature", type=float, default=0.001,
                        help="sampling temperature (<= 0.001: the arg-max, a one-hot)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of the sampler")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")


def score_cp(p: float) -> int:
    """The `score cp` of a move the policy plays with probability p (see the module docstring)."""
    p = min(max(p, 1e-4), 1 - 1e-4)
    return round(400 * math.log10(p / (1 - p)))


class UciEngine:
    """The UCI protocol over a Sampler. `load()` returns (model, step) and runs in a thread;
    `step` (None: unknown) and the temperature name the engine in `id name`."""

    def __init__(self, load, *, temperature: float, seed: int = 0, step: int | None = None, out=sys.stdout):
        from transcendence_jax import __version__

        self.temperature, self.seed, self.out, self.multipv = temperature, seed, out, 1
        self.name = f"transcendence-jax {__version__} step {'?' if step is None else step} tau {temperature:g}"
        self.step = step
        self.board: chess.Board | None = chess.Board()
        self.refused = ""  # why there is no board to play (a refused position)
        self.pending = None  # the bestmove of a `go infinite` / `go ponder`, sent on stop or ponderhit
        self.sampler, self.error, self.loaded_step = None, None, None
        self._thread = threading.Thread(target=self._load, args=(load,), daemon=True)
        self._thread.start()

    def _load(self, load) -> None:
        try:
            from transcendence_jax.sampling.sampler import Sampler

            model, self.loaded_step = load()
            self.sampler = Sampler(model, max_games=1, seed=self.seed)
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
        if self.step is not None and self.loaded_step != self.step:  # said once, from this thread
            self.send(f"info string loaded checkpoint step {self.loaded_step}, not step {self.step} "
                      "(the newer steps are unreadable)")
            self.step = self.loaded_step
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
            self.send(f"id name {self.name}")
            self.send("id author transcendence-jax")
            self.send(f"option name Temperature type string default {self.temperature}")
            self.send(f"option name Seed type spin default {self.seed} min 0 max 2147483647")
            self.send(f"option name MultiPV type spin default 1 min 1 max {MAX_MULTIPV}")
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
        option = name.strip().lower()
        try:
            if option == "temperature":
                from transcendence_jax.sampling.temperature import check_temperature

                self.temperature = check_temperature(float(value))  # ValueError: not a number, NaN, < 0
            elif option == "seed":
                self._ready().reseed(int(value))
            elif option == "multipv":
                if not 1 <= int(value) <= MAX_MULTIPV:
                    raise ValueError(value)
                self.multipv = int(value)
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
            if board.epd() != chess.Board().epd() and not self._ready().board_input:
                raise ValueError("this model reads moves only (no board input), so it can play only games from the "
                                 "standard start position")
            for uci in words[1:] if words[:1] == ["moves"] else []:
                if not board.push_uci(uci):  # the null move 0000: no move token, not a game move
                    raise ValueError(f"null move {uci!r}")
            if not board.is_valid():
                raise ValueError(position_problems(board))
        except (ValueError, IndexError) as e:
            self.board, self.refused = None, f"bad position ({e})"
            self.send(f"info string {self.refused}; no move until the next valid position")
            return
        old = self.board
        extends = (old is not None and board.root().fen() == old.root().fen()
                   and board.move_stack[:len(old.move_stack)] == old.move_stack)
        if not extends and self.sampler is not None:
            self.sampler.release(GAME_ID)  # another game or line: the cache holds none of it
        self.board = board

    def _go(self) -> str:
        """Sample the move, print its info lines, and return what `bestmove` says."""
        from transcendence_jax.data.tokenizer import move_token
        from transcendence_jax.sampling.policy import tempered

        sampler = self._ready()
        if self.board is None:
            self.send(f"info string no position to play: {self.refused}")
            return "0000"
        if not any(self.board.generate_legal_moves()):
            return "(none)"
        (choice,) = sampler.sample([(GAME_ID, self.board, self.temperature)])
        logits_V = sampler.last_logits[0]
        logits = {m: float(logits_V[move_token(m)]) for m in self.board.legal_moves}
        policy, played = tempered(logits, 1.0), tempered(logits, self.temperature, sampler.threshold)
        lines = [choice.move] if self.multipv == 1 else sorted(policy, key=policy.get, reverse=True)[:self.multipv]
        for i, move in enumerate(lines, 1):
            self.send(f"info depth 1 seldepth 1 multipv {i} score cp {score_cp(policy[move])} nodes 1 pv {move.uci()} "
                      f"string {move.uci()} {100 * policy[move]:.1f}% at tau 1, "
                      f"{100 * played[move]:.1f}% at tau {self.temperature:g}")
        return choice.move.uci()

    def loop(self, lines) -> None:
        try:
            for line in lines:
                if not self.handle(line.strip()):
                    break
        except BrokenPipeError:  # the client closed our output: it is gone, nothing to answer
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.out.fileno())  # Python's recipe: no error at exit


def run(args: argparse.Namespace) -> int:
    from transcendence_jax.sampling.temperature import check_temperature
    from transcendence_jax.training.locate import latest_step

    try:
        check_temperature(args.temperature, "--temperature")
    except ValueError as e:
        raise UserError(str(e)) from None
    where = f"pretrained:{args.pretrained}" if args.pretrained else args.workdir
    step = args.step if args.step is not None else latest_step(where)  # jax-free: `id name` is sent at once

    def load():
        from transcendence_jax.training.checkpoint import load_model

        model, _, loaded = load_model(where, step=args.step)
        return model, loaded

    engine = UciEngine(load, temperature=args.temperature, seed=args.seed, step=step)
    engine.loop(sys.stdin)
    engine._thread.join()  # never exit while jax is still loading or compiling in the thread
    return 0
